"""``run -v``, ``--mount`` and ``--tmpfs`` values parsed as docker 20.10 parses them, with its error
texts (captured from docker 20.10's daemon and client)."""

from __future__ import annotations

import pytest

from builder.runtime.mounts import (MountError, MountRequest, check_duplicates, parse_mount, parse_size, parse_tmpfs,
                                    parse_volume)


# --- -v ---------------------------------------------------------------------------------------------
def test_named_volume_bind_and_anonymous_volume():
    assert parse_volume("data:/var/lib/data") == MountRequest("volume", "/var/lib/data", "data", mode="z", origin="-v")
    assert parse_volume("/srv/www:/usr/share/www/:ro") == MountRequest(
        "bind", "/usr/share/www", "/srv/www", readonly=True, create_source=True, propagation="rprivate", mode="ro",
        origin="-v")
    assert parse_volume("/cache") == MountRequest("volume", "/cache", origin="-v")


def test_modes_are_combined_and_nocopy_turns_copy_up_off():
    request = parse_volume("vol:/x:nocopy,ro")
    assert (request.readonly, request.copy_data, request.mode) == (True, False, "nocopy,ro")
    assert parse_volume("vol:/x:ro,Z").readonly
    assert parse_volume("vol:/x:cached").mode == "cached"
    bind = parse_volume("/tmp:/x:ro,rshared,z")
    assert (bind.readonly, bind.propagation) == (True, "rshared")
    assert not parse_volume("/tmp//a/../b:/x//y/:rw").readonly
    assert parse_volume("/tmp//a/../b:/x//y/:rw").source == "/tmp/b"
    assert parse_volume("/tmp//a/../b:/x//y/:rw").target == "/x/y"


@pytest.mark.parametrize("raw, message", [
    ("/x:rw", "invalid volume specification: '/x:rw'"),
    ("/tmp:", "invalid volume specification: '/tmp:'"),
    (":/x", "invalid volume specification: ':/x'"),
    ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
    ("vol:/x:bogus", "invalid mode: bogus"),
    ("vol:/x:ro,rw", "invalid mode: ro,rw"),
    ("vol:/x:ro,ro", "invalid mode: ro,ro"),
    ("/tmp:/", "invalid volume specification: '/tmp:/': invalid mount config for type \"bind\": invalid "
               "specification: destination can't be '/'"),
    ("ab:/", "invalid volume specification: 'ab:/': invalid mount config for type \"volume\": invalid "
             "specification: destination can't be '/'"),
    ("vv:rel", "invalid volume specification: 'vv:rel': invalid mount config for type \"volume\": invalid mount "
               "path: 'rel' mount path must be absolute"),
    ("rel", "invalid volume specification: 'rel': invalid mount config for type \"volume\": invalid mount path: "
            "'rel' mount path must be absolute"),
    ("/tmp:/x:nocopy", "invalid volume specification: '/tmp:/x:nocopy': invalid mount config for type \"bind\": "
                       "field VolumeOptions must not be specified"),
    ("vol:/x:rshared", "invalid volume specification: 'vol:/x:rshared': invalid mount config for type \"volume\": "
                       "field BindOptions must not be specified"),
    ("a:/x", "create a: volume name is too short, names should be at least two alphanumeric characters"),
    ("foo/bar:/x", 'create foo/bar: "foo/bar" includes invalid characters for a local volume name, only '
                   '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute '
                   "path"),
    ("./rel:/x", 'create ./rel: "./rel" includes invalid characters for a local volume name'),
    ("-a:/x", 'create -a: "-a" includes invalid characters'),
])
def test_bad_volume_values_fail_with_dockers_text(raw, message):
    with pytest.raises(MountError) as info:
        parse_volume(raw)
    assert str(info.value).startswith(message)


def test_a_relative_name_that_is_a_valid_volume_name_is_a_volume():
    assert parse_volume("rel:/x") == MountRequest("volume", "/x", "rel", mode="z", origin="-v")


# --- --mount ----------------------------------------------------------------------------------------
def test_mount_kinds_and_their_options():
    assert parse_mount("type=bind,source=/tmp,target=/x,readonly") == MountRequest(
        "bind", "/x", "/tmp", readonly=True, propagation="rprivate", origin="--mount")
    assert parse_mount("type=bind,src=/tmp,dst=/x,bind-propagation=rslave,ro=false").propagation == "rslave"
    assert parse_mount("src=data,destination=/d,volume-nocopy") == MountRequest(
        "volume", "/d", "data", copy_data=False, mode="z", origin="--mount")
    labelled = parse_mount('type=volume,src=data,dst=/d,volume-label=a=b,volume-label=c,"volume-nocopy=true"')
    assert labelled.labels == (("a", "b"), ("c", "")) and not labelled.copy_data
    assert parse_mount("type=volume,dst=/anon").source == ""
    tmpfs = parse_mount("type=tmpfs,dst=/run,tmpfs-size=64m,tmpfs-mode=1770")
    assert (tmpfs.type, tmpfs.tmpfs_size, tmpfs.tmpfs_mode) == ("tmpfs", 64 << 20, 0o1770)
    assert tmpfs.tmpfs_options == ("noexec", "nosuid", "nodev", "mode=1770", f"size={64 << 20}")
    assert parse_mount("type=tmpfs,dst=/ro,readonly=1").readonly
    assert parse_mount("TYPE=BIND,SRC=/tmp,DST=/x").type == "bind"


@pytest.mark.parametrize("raw, message", [
    ("src=ab", 'invalid argument "src=ab" for "--mount" flag: target is required'),
    ("type=,dst=/x", 'invalid argument "type=,dst=/x" for "--mount" flag: type is required'),
    ("type=volume,src=ab,dst=/x,bogus=1", "unexpected key 'bogus' in 'bogus=1'"),
    ("type=volume,src=ab,dst=/x,bogus", "invalid field 'bogus' must be a key=value pair"),
    ("type=volume,src=ab,dst=/x,readonly=maybe", "invalid value for readonly: maybe"),
    ("type=tmpfs,dst=/x,tmpfs-size=abc", 'invalid argument "type=tmpfs,dst=/x,tmpfs-size=abc" for "--mount" flag: '
                                         "invalid value for tmpfs-size: abc"),
    ("type=tmpfs,dst=/x,tmpfs-mode=999", "invalid value for tmpfs-mode: 999"),
    ("type=bind,src=/tmp,dst=/x,volume-nocopy", "cannot mix 'volume-*' options with mount type 'bind'"),
    ("type=volume,src=ab,dst=/x,bind-propagation=shared", "cannot mix 'bind-*' options with mount type 'volume'"),
    ("type=volume,src=ab,dst=/x,tmpfs-size=1m", "cannot mix 'tmpfs-*' options with mount type 'volume'"),
    ("type=bind,dst=/x", 'invalid mount config for type "bind": field Source must not be empty'),
    ("type=bind,src=rel,dst=/x", "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must "
                                 "be absolute"),
    ("type=bind,src=/tmp,dst=/x,bind-propagation=weird", 'invalid mount config for type "bind": invalid propagation '
                                                         "mode: weird"),
    ("type=volume,src=ab,dst=rel", "invalid mount config for type \"volume\": invalid mount path: 'rel' mount path "
                                   "must be absolute"),
    ("type=volume,src=ab,dst=/", "invalid mount config for type \"volume\": invalid specification: destination can't "
                                 "be '/'"),
    ("type=volume,dst=/x,ro", 'invalid mount config for type "volume": must not set ReadOnly mode when using '
                              "anonymous volumes"),
    ("type=tmpfs,src=ab,dst=/x", 'invalid mount config for type "tmpfs": field Source must not be specified'),
    ("type=foo,dst=/x", 'invalid mount config for type "foo": mount type unknown'),
    ("type=volume,src=foo/bar,dst=/x", 'create foo/bar: "foo/bar" includes invalid characters'),
    ("type=volume,src=ab,dst=/x,volume-driver=nfs", 'error looking up volume plugin nfs: plugin "nfs" not found'),
])
def test_bad_mount_values_fail_with_dockers_text(raw, message):
    with pytest.raises(MountError) as info:
        parse_mount(raw)
    assert message in str(info.value)


def test_sizes_as_go_units_reads_them():
    assert [parse_size(v) for v in ("64m", "1.5g", "512kb", "1GiB", "100", "2 M")] == [
        64 << 20, 3 << 29, 512 << 10, 1 << 30, 100, 2 << 20]
    for bad in ("abc", "1.2.3m", "-1", "1x"):
        with pytest.raises(ValueError):
            parse_size(bad)


# --- --tmpfs ----------------------------------------------------------------------------------------
def test_tmpfs_defaults_and_options():
    plain = parse_tmpfs("/run")
    assert plain == MountRequest("tmpfs", "/run", tmpfs_options=("noexec", "nosuid", "nodev"), origin="--tmpfs")
    full = parse_tmpfs("/run/:rw,size=64m,mode=1777,exec")
    assert (full.target, full.tmpfs_size, full.tmpfs_mode, full.readonly) == ("/run", 64 << 20, 0o1777, False)
    assert full.tmpfs_options == ("nosuid", "nodev", "rw", "size=64m", "mode=1777", "exec")
    assert parse_tmpfs("/x:ro,size=1k,size=2k").tmpfs_size == 2048
    assert parse_tmpfs("/x:ro").readonly
    assert parse_tmpfs("/x:uid=1000,nr_inodes=10").tmpfs_options[-2:] == ("uid=1000", "nr_inodes=10")


@pytest.mark.parametrize("raw, message", [
    ("rel", "invalid mount path: 'rel' mount path must be absolute"),
    ("/", "invalid specification: destination can't be '/'"),
    ("/x:bogus", 'invalid tmpfs option ["bogus"]'),
    ("/x:foo=bar", 'invalid tmpfs option ["foo" "bar"]'),
    ("/x:size=abc", 'invalid tmpfs option "size=abc": not a size'),
    ("/x:mode=999", 'invalid tmpfs option "mode=999": the mode must be octal'),
])
def test_bad_tmpfs_values(raw, message):
    with pytest.raises(MountError) as info:
        parse_tmpfs(raw)
    assert str(info.value) == message


def test_two_mounts_on_one_target_are_refused():
    requests = [parse_volume("ab:/x"), parse_tmpfs("/x/")]
    with pytest.raises(MountError, match="^Duplicate mount point: /x$"):
        check_duplicates(requests)
    check_duplicates([parse_volume("ab:/x"), parse_tmpfs("/y")])
