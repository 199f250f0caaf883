"""Volumes and run mounts in the real sandbox over busybox: data written through a named volume is
read back by another container, a new volume is filled from the image (docker's copy-up), binds,
tmpfs and read-only mounts behave as docker's do."""

from __future__ import annotations

import os
import stat

import pytest

from builder.build.sources import LayeredTree
from builder.runtime.copyup import copy_up
from builder.runtime.mounts import MountError, ResolvedMounts, parse_mount, parse_tmpfs, parse_volume, resolve_mounts
from builder.runtime.volumes import VolumeStore
from builder.sandbox import RunSpec, run, shell_argv
from test_sandbox_run import busybox_rootfs, mounts_mentioning, out  # noqa: F401  (fixtures)

CAPABILITY = bytes.fromhex("0100000200200000000000000000000000000000")
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture
def volumes(tmp_path):
    return VolumeStore(tmp_path / "root")


@pytest.fixture
def image_layer(tmp_path):
    """A layer on top of busybox with a /data directory worth copying: owners, modes, xattrs, a
    symlink, hard links, a fifo, a whiteout and an opaque directory over a lower layer."""
    lower = tmp_path / "layer-lower"
    (lower / "data" / "opaque").mkdir(parents=True)
    (lower / "data" / "opaque" / "hidden-by-opaque").write_text("lower\n")
    (lower / "data" / "whited").write_text("lower\n")
    (lower / "data" / "from-lower").write_text("lower\n")
    top = tmp_path / "layer-top"
    data = top / "data"
    (data / "sub").mkdir(parents=True)
    (data / "f").write_text("hi\n")
    os.chmod(data / "f", 0o600)
    os.setxattr(data / "f", "user.origin", b"image")
    os.link(data / "f", data / "f-hardlink")
    os.symlink("f", data / "link")
    os.mkfifo(data / "fifo")
    os.mknod(data / "whited", stat.S_IFCHR, os.makedev(0, 0))
    (data / "opaque").mkdir()
    os.setxattr(data / "opaque", "trusted.overlay.opaque", b"y")
    (data / "opaque" / "own").write_text("top\n")
    (data / "sub" / "deep").write_text("deep\n")
    os.utime(data / "sub" / "deep", (1_000_000_000, 1_000_000_000))
    os.utime(data / "sub", (1_100_000_000, 1_100_000_000))
    for path in (data / "sub" / "deep", data / "sub", data / "f", data / "link"):
        os.lchown(path, 1000, 1001)
    os.chown(data, 1000, 1001)
    os.chmod(data, 0o750)
    os.symlink("/data", top / "dlink")
    (top / "file").write_text("x\n")
    return [str(top), str(lower)]


def _sandbox(tmp_path, busybox_rootfs, layers, resolved: ResolvedMounts, command: str, **kw):
    """One container: a fresh writable layer over ``layers`` + busybox, with the resolved mounts."""
    base = tmp_path / f"ctr-{len(list(tmp_path.glob('ctr-*')))}"
    upper, work = base / "upper", base / "work"
    upper.mkdir(parents=True)
    work.mkdir()
    spec = RunSpec(argv=shell_argv(command), lower_dirs=(*layers, str(busybox_rootfs)), upper_dir=str(upper),
                   work_dir=str(work), env=(PATH,), binds=resolved.binds, tmpfs=resolved.tmpfs, **kw)
    return run(spec)


def _view(layers, busybox_rootfs):
    return LayeredTree([*layers, str(busybox_rootfs)], description="image")


def test_named_volume_data_outlives_the_container_and_is_seen_by_the_next(tmp_path, busybox_rootfs, volumes):
    view = _view([], busybox_rootfs)
    first = resolve_mounts([parse_volume("shared:/data")], [], volumes, view)
    assert first.volume_names == ("shared",) and first.anonymous == ()
    assert out(_sandbox(tmp_path, busybox_rootfs, [], first,
                        "echo written-by-first > /data/f; id -u > /data/uid; ls /data")) == "f\nuid\n"
    host = volumes.get("shared").mountpoint
    assert open(os.path.join(host, "f")).read() == "written-by-first\n"
    second = resolve_mounts([parse_mount("type=volume,src=shared,dst=/mnt/other,readonly")], [], volumes, view)
    text = out(_sandbox(tmp_path, busybox_rootfs, [], second,
                        "cat /mnt/other/f; touch /mnt/other/g 2>/dev/null || echo read-only"))
    assert text == "written-by-first\nread-only\n"
    assert sorted(os.listdir(host)) == ["f", "uid"]
    assert mounts_mentioning(host) == []


def test_image_volume_gets_an_anonymous_volume_filled_from_the_image(tmp_path, busybox_rootfs, volumes, image_layer):
    view = _view(image_layer, busybox_rootfs)
    resolved = resolve_mounts([], ["/data"], volumes, view)
    (name,) = resolved.anonymous
    assert resolved.volume_names == (name,) and len(name) == 64
    assert [p.inspect() for p in resolved.points] == [{
        "Type": "volume", "Name": name, "Source": volumes.get(name).mountpoint, "Destination": "/data",
        "Driver": "local", "Mode": "", "RW": True, "Propagation": ""}]
    data = volumes.get(name).mountpoint
    # on the host: what tar c | tar x would have made
    assert sorted(os.listdir(data)) == ["f", "f-hardlink", "fifo", "from-lower", "link", "opaque", "sub"]
    st = os.stat(data)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 1000, 1001)     # the image's directory
    f = os.lstat(os.path.join(data, "f"))
    assert (stat.S_IMODE(f.st_mode), f.st_uid, f.st_gid, f.st_nlink) == (0o600, 1000, 1001, 2)
    assert os.lstat(os.path.join(data, "f-hardlink")).st_ino == f.st_ino
    assert os.getxattr(os.path.join(data, "f"), "user.origin") == b"image"
    assert os.readlink(os.path.join(data, "link")) == "f" and os.lstat(os.path.join(data, "link")).st_uid == 1000
    assert stat.S_ISFIFO(os.lstat(os.path.join(data, "fifo")).st_mode)
    assert os.listdir(os.path.join(data, "opaque")) == ["own"]
    assert os.lstat(os.path.join(data, "sub")).st_mtime == 1_100_000_000
    assert os.lstat(os.path.join(data, "sub", "deep")).st_mtime == 1_000_000_000
    # in the container
    text = out(_sandbox(tmp_path, busybox_rootfs, image_layer, resolved,
                        "stat -c '%a %u:%g' /data; cat /data/link /data/opaque/own; ls /data/sub; "
                        "echo more >> /data/f"))
    assert text == "750 1000:1001\nhi\ntop\ndeep\n"
    assert open(os.path.join(data, "f")).read() == "hi\nmore\n"


def test_copy_up_only_into_an_empty_volume_and_not_with_nocopy(tmp_path, busybox_rootfs, volumes, image_layer):
    view = _view(image_layer, busybox_rootfs)
    used = volumes.create("used")
    with open(os.path.join(used.mountpoint, "mine"), "w") as fh:
        fh.write("kept\n")
    resolve_mounts([parse_volume("used:/data")], [], volumes, view)
    assert os.listdir(used.mountpoint) == ["mine"]
    assert stat.S_IMODE(os.stat(used.mountpoint).st_mode) == 0o755
    resolve_mounts([parse_volume("fresh:/data:nocopy")], [], volumes, view)
    assert os.listdir(volumes.get("fresh").mountpoint) == []
    # the first container to use an empty volume fills it; the next finds it full
    first = resolve_mounts([parse_volume("later:/data")], [], volumes, view)
    assert "f" in os.listdir(volumes.get("later").mountpoint)
    os.unlink(os.path.join(volumes.get("later").mountpoint, "f"))
    resolve_mounts([parse_volume("later:/data")], [], volumes, view)
    assert "f" not in os.listdir(volumes.get("later").mountpoint) and first.anonymous == ()
    # nothing in the image at that path: the volume stays as created
    resolve_mounts([parse_volume("elsewhere:/nothing/here")], [], volumes, view)
    assert os.listdir(volumes.get("elsewhere").mountpoint) == []


def test_volume_through_a_symlink_copies_what_the_link_points_to(tmp_path, busybox_rootfs, volumes, image_layer):
    view = _view(image_layer, busybox_rootfs)
    resolved = resolve_mounts([parse_volume("vialink:/dlink")], [], volumes, view)
    assert "f" in os.listdir(volumes.get("vialink").mountpoint)
    assert out(_sandbox(tmp_path, busybox_rootfs, image_layer, resolved, "cat /data/f")) == "hi\n"


def test_volume_over_a_file_is_refused_and_leaves_no_anonymous_volume(tmp_path, busybox_rootfs, volumes, image_layer):
    view = _view(image_layer, busybox_rootfs)
    with pytest.raises(MountError, match="^cannot mount volume over existing file, file exists /file$"):
        resolve_mounts([parse_volume("/file")], [], volumes, view)
    with pytest.raises(MountError, match="^cannot mount volume over existing file, file exists /file$"):
        resolve_mounts([parse_volume("/other"), parse_volume("ab:/file:nocopy")], ["/data"], volumes, view)
    assert [v.name for v in volumes.list()] == ["ab"]          # named ones stay, as docker's do


def test_requests_cover_image_volumes_and_duplicates_fail(tmp_path, busybox_rootfs, volumes, image_layer):
    view = _view(image_layer, busybox_rootfs)
    resolved = resolve_mounts([parse_tmpfs("/data")], ["/data", "/cache/"], volumes, view)
    assert [t.target for t in resolved.tmpfs] == ["/data"] and len(resolved.anonymous) == 1
    assert [p.destination for p in resolved.points] == ["/cache"]       # --tmpfs is not listed, as docker's
    with pytest.raises(MountError, match="^Duplicate mount point: /x$"):
        resolve_mounts([parse_volume("ab:/x"), parse_mount("type=tmpfs,dst=/x")], [], volumes, view)


def test_binds_tmpfs_and_read_only(tmp_path, busybox_rootfs, volumes):
    view = _view([], busybox_rootfs)
    host = tmp_path / "host"
    host.mkdir()
    (host / "in").write_text("from host\n")
    missing = tmp_path / "made" / "by-v"
    requests = [parse_volume(f"{host}:/h"), parse_volume(f"{host}:/hro:ro"), parse_volume(f"{missing}:/made"),
                parse_tmpfs("/scratch:size=1m,mode=700"), parse_mount("type=tmpfs,dst=/ro-tmp,readonly")]
    resolved = resolve_mounts(requests, [], volumes, view)
    assert missing.is_dir() and stat.S_IMODE(missing.stat().st_mode) == 0o755
    text = out(_sandbox(tmp_path, busybox_rootfs, [], resolved,
                        "cat /h/in; echo back > /h/out; touch /hro/x 2>/dev/null || echo ro-bind; "
                        "touch /made/x; grep -E ' /(scratch|ro-tmp) ' /proc/mounts | cut -d' ' -f2-4; "
                        "touch /ro-tmp/x 2>/dev/null || echo ro-tmpfs"))
    lines = text.splitlines()
    assert lines[:2] == ["from host", "ro-bind"]
    assert any(line.startswith("/scratch tmpfs rw,") and "size=1024k" in line and "mode=700" in line
               for line in lines[2:4]), lines
    assert any(line.startswith("/ro-tmp tmpfs ro,") for line in lines[2:4]), lines
    assert lines[4] == "ro-tmpfs"
    assert (host / "out").read_text() == "back\n" and (missing / "x").exists()
    with pytest.raises(MountError, match=f'^invalid mount config for type "bind": bind source path does not exist: '
                                         f"{tmp_path}/nope$"):
        resolve_mounts([parse_mount(f"type=bind,src={tmp_path}/nope,dst=/x")], [], volumes, view)
    assert not (tmp_path / "nope").exists()


def test_resolved_mounts_survive_a_round_trip_through_json(tmp_path, busybox_rootfs, volumes, image_layer):
    import json

    view = _view(image_layer, busybox_rootfs)
    resolved = resolve_mounts([parse_volume(f"{tmp_path}:/h:ro"), parse_tmpfs("/t:size=2m"),
                               parse_mount("type=volume,src=named,dst=/n,volume-nocopy")], ["/data"], volumes, view)
    again = ResolvedMounts.from_dict(json.loads(json.dumps(resolved.to_dict())))
    assert again == resolved
    assert [p.inspect()["Mode"] for p in resolved.points] == ["", "ro", "z"]


def test_copy_up_keeps_setuid_and_capabilities(tmp_path, busybox_rootfs):
    layer = tmp_path / "caps"
    (layer / "bin").mkdir(parents=True)
    tool = layer / "bin" / "tool"
    tool.write_bytes(b"\x7fELF")
    os.chown(tool, 0, 50)
    os.chmod(tool, 0o4750)
    os.setxattr(tool, "security.capability", CAPABILITY)          # cap_net_raw+ep, as setcap writes it
    dest = tmp_path / "dest"
    dest.mkdir()
    assert copy_up(LayeredTree([str(layer)], description="image"), "/bin", str(dest))
    st = os.lstat(dest / "tool")
    assert (oct(stat.S_IMODE(st.st_mode)), st.st_gid) == ("0o4750", 50)
    assert os.getxattr(dest / "tool", "security.capability") == CAPABILITY


def test_copy_up_of_devices_and_nested_hard_links(tmp_path):
    layer = tmp_path / "devs"
    (layer / "d" / "a").mkdir(parents=True)
    (layer / "d" / "b").mkdir()
    os.mknod(layer / "d" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(layer / "d" / "loop", stat.S_IFBLK | 0o640, os.makedev(7, 0))
    os.chmod(layer / "d" / "null", 0o666)                     # mknod's mode went through the umask
    os.chmod(layer / "d" / "loop", 0o640)
    os.chown(layer / "d" / "loop", 0, 6)
    (layer / "d" / "a" / "one").write_text("same inode\n")
    os.link(layer / "d" / "a" / "one", layer / "d" / "b" / "two")
    dest = tmp_path / "dest"
    dest.mkdir()
    assert copy_up(LayeredTree([str(layer)], description="image"), "/d", str(dest))
    null, loop = os.lstat(dest / "null"), os.lstat(dest / "loop")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3) and stat.S_IMODE(null.st_mode) == 0o666
    assert stat.S_ISBLK(loop.st_mode) and (stat.S_IMODE(loop.st_mode), loop.st_gid) == (0o640, 6)
    assert os.lstat(dest / "a" / "one").st_ino == os.lstat(dest / "b" / "two").st_ino
    assert not copy_up(LayeredTree([str(layer)], description="image"), "/d", str(dest))     # not empty: no copy


def test_copy_up_never_follows_what_a_container_swaps_in(tmp_path):
    """A container already using the (empty) volume replaces a directory being filled with a symlink
    to a host directory: nothing lands outside the volume."""
    layer = tmp_path / "img"
    (layer / "data" / "sub").mkdir(parents=True)
    (layer / "data" / "sub" / "payload").write_text("x\n")
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()

    class Racing(LayeredTree):
        def listdir(self, rel):
            if rel == "data/sub":                       # the copier has made dest/sub and is about to fill it
                os.rename(dest / "sub", dest / "moved")
                os.symlink(str(outside), dest / "sub")
            return super().listdir(rel)

    copy_up(Racing([str(layer)], description="image"), "/data", str(dest))
    assert os.listdir(outside) == []
    assert os.listdir(dest / "moved") == ["payload"]
