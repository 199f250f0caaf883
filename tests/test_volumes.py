"""Local volumes: the store (create, list, filters, remove, prune) and ``pybuild volume ...`` as a
user runs it, with docker 20.10's output and error texts."""

from __future__ import annotations

import json
import os
import re
import secrets

import pytest

from builder.runtime.volumes import NoSuchVolume, VolumeError, VolumeInUse, VolumeStore, natural_key
from image_fixtures import columns, fails, ok, pb


@pytest.fixture
def store(tmp_path):
    return VolumeStore(tmp_path / "root")


# --- the store ---------------------------------------------------------------------------------------
def test_create_makes_the_data_dir_and_is_idempotent(store, tmp_path):
    volume = store.create("data1", {"a": "b"})
    assert volume.mountpoint == str(tmp_path / "root" / "volumes" / "data1" / "_data")
    st = os.stat(volume.mountpoint)
    assert oct(st.st_mode & 0o7777) == "0o755" and (st.st_uid, st.st_gid) == (0, 0)
    assert oct(os.stat(store.root).st_mode & 0o777) == "0o701"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", volume.created_at)
    again = store.create("data1", {"other": "x"})          # docker returns the existing volume
    assert again == volume and dict(again.labels) == {"a": "b"}
    anonymous = store.create()
    assert re.fullmatch(r"[0-9a-f]{64}", anonymous.name) and anonymous.anonymous
    assert [v.name for v in store.list()] == sorted([anonymous.name, "data1"], key=natural_key)
    assert sorted(os.listdir(store.root)) == sorted([".lock", anonymous.name, "data1"])   # no temp leftovers


def test_bad_names_are_refused_with_dockers_text(store):
    with pytest.raises(VolumeError, match="^create x: volume name is too short, names should be at least two "
                                          "alphanumeric characters$"):
        store.create("x")
    with pytest.raises(VolumeError, match=re.escape('create a b: "a b" includes invalid characters for a local volume '
                                                    'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you '
                                                    "intended to pass a host directory, use absolute path")):
        store.create("a b")
    for name in ("../x", ".hidden", "a/b", "_ab"):
        with pytest.raises(VolumeError):
            store.create(name)
    assert store.list() == []


def test_inspect_object_is_dockers(store):
    volume = store.create("data2", {"a": "b", "c": ""})
    assert volume.inspect() == {"CreatedAt": volume.created_at, "Driver": "local", "Labels": {"a": "b", "c": ""},
                                "Mountpoint": volume.mountpoint, "Name": "data2", "Options": None, "Scope": "local"}
    assert store.create("plain").inspect()["Labels"] is None
    with pytest.raises(NoSuchVolume, match="^get nope: no such volume$"):
        store.get("nope")
    for name in ("..", ".lock", "a/../data2", ""):
        with pytest.raises(NoSuchVolume):
            store.get(name)


def test_list_filters(store):
    store.create("web1", {"tier": "front"})
    store.create("web10", {"tier": "front", "env": "prod"})
    store.create("web2")
    store.create("db", {"tier": "back"})
    in_use = {"web1": ["c1"], "db": ["c2", "c3"]}

    def names(*filters):
        return [v.name for v in store.list(filters, in_use)]

    assert names() == ["db", "web1", "web2", "web10"]                  # natural order, as docker's CLI
    assert names("dangling=true") == names("dangling=1") == ["web2", "web10"]
    assert names("dangling=false") == ["db", "web1"]
    assert names("name=web1") == ["web1", "web10"]                      # a regular expression, unanchored
    assert names("name=^web.$") == ["web1", "web2"]
    assert names("name=db", "name=web2") == ["db", "web2"]
    assert names("label=tier") == ["db", "web1", "web10"]
    assert names("label=tier=front") == ["web1", "web10"]
    assert names("label=tier=front", "label=env") == ["web10"]           # every label filter must hold
    assert names("driver=local", "label=env=prod") == ["web10"]
    assert names("driver=nfs") == []
    with pytest.raises(VolumeError, match=r"^Invalid filter 'dangling=\[maybe\]'$"):
        names("dangling=maybe")
    with pytest.raises(VolumeError, match="^Invalid filter 'foo'$"):
        names("foo=1")


def test_remove_refuses_a_volume_in_use_even_with_force(store):
    store.create("data1")
    cid = secrets.token_hex(32)
    with pytest.raises(VolumeInUse, match=rf"^remove data1: volume is in use - \[{cid}\]$"):
        store.remove("data1", in_use={"data1": [cid]})
    with pytest.raises(VolumeInUse):
        store.remove("data1", force=True, in_use={"data1": [cid]})
    assert store.exists("data1")
    with pytest.raises(NoSuchVolume, match="^get nope: no such volume$"):
        store.remove("nope")
    assert store.remove("nope", force=True) is False
    assert store.remove("data1", in_use={"other": [cid]}) is True
    assert not store.exists("data1") and store.list() == []


def test_remove_deletes_data_a_container_left_read_only(store):
    volume = store.create("ro-data")
    sub = os.path.join(volume.mountpoint, "sub")
    os.mkdir(sub)
    with open(os.path.join(sub, "f"), "w") as fh:
        fh.write("x")
    os.chmod(sub, 0o500)
    store.remove("ro-data")
    assert os.listdir(store.root) == [".lock"]


def test_prune_removes_every_unused_volume_and_counts_bytes(store):
    for name in ("keep", "gone1", "gone2"):
        store.create(name)
    anonymous = store.create()
    with open(os.path.join(store.get("gone1").mountpoint, "big"), "wb") as fh:
        fh.write(b"x" * 1_536_000)
    first = os.path.join(store.get("gone2").mountpoint, "f")
    with open(first, "wb") as fh:
        fh.write(b"12345")
    os.link(first, first + "-link")                           # counted once
    result = store.prune({"keep": ["c1"]})
    assert sorted(result.deleted) == sorted([anonymous.name, "gone1", "gone2"])
    assert result.reclaimed == 1_536_005
    assert [v.name for v in store.list()] == ["keep"]
    assert store.prune({"keep": ["c1"]}).deleted == ()


def test_prune_label_filters(store):
    store.create("a1", {"keep": "yes"})
    store.create("a2", {"keep": "no"})
    store.create("a3")
    assert store.prune({}, ["label!=keep=yes"]).deleted == ("a2", "a3")
    assert store.prune({}, ["label=keep"]).deleted == ("a1",)
    with pytest.raises(VolumeError, match="^Invalid filter 'dangling'$"):
        store.prune({}, ["dangling=true"])


def test_a_killed_create_or_remove_leaves_nothing_visible(store):
    store.create("real")
    # what a create killed before its rename, and a remove killed after its rename, leave behind
    dead_pid = 2 ** 22 + 1
    for leftover in (f".tmp-{dead_pid}-aa", f".trash-{dead_pid}-bb"):
        os.makedirs(os.path.join(store.root, leftover, "_data"))
        with open(os.path.join(store.root, leftover, "volume.json"), "w") as fh:
            fh.write("{}")
    assert [v.name for v in store.list()] == ["real"]
    store.create("other")                                     # the next writer sweeps them
    assert sorted(os.listdir(store.root)) == [".lock", "other", "real"]


def test_natural_order():
    assert sorted(["v10", "v9", "v1", "a", "v1a", "v01", "1b", "ab", "a1"], key=natural_key) == \
        ["1b", "a", "a1", "ab", "v1", "v1a", "v01", "v9", "v10"]


# --- the CLI ------------------------------------------------------------------------------------------
def _record_container(root, volumes: tuple[str, ...]) -> str:
    """A container record naming ``volumes`` (the runtime's own store, as `run`/`create` write it)."""
    from builder.runtime.containers import ContainerStore
    from builder.runtime.records import ContainerConfig

    cid = secrets.token_hex(32)
    ContainerStore(root).create(ContainerConfig(id=cid, name=f"c{cid[:8]}", created="2026-01-01T00:00:00Z",
                                                image="busybox", image_id="sha256:" + "0" * 64, path="true",
                                                volumes=volumes))
    return cid


def test_cli_create_ls_inspect(tmp_path):
    root = tmp_path / "root"
    assert ok(pb(root, "volume", "create", "data1")) == "data1\n"
    assert ok(pb(root, "volume", "create", "--label", "a=b", "--label", "c", "data2")) == "data2\n"
    anonymous = ok(pb(root, "volume", "create")).strip()
    assert re.fullmatch(r"[0-9a-f]{64}", anonymous)
    assert ok(pb(root, "volume", "create", "data1")) == "data1\n"
    listing = ok(pb(root, "volume", "ls"))
    order = sorted([anonymous, "data1", "data2"], key=natural_key)
    assert listing == "DRIVER    VOLUME NAME\n" + "".join(f"local     {name}\n" for name in order)
    assert ok(pb(root, "volume", "ls", "-q")) == "".join(f"{name}\n" for name in order)
    assert ok(pb(root, "volume", "ls", "--filter", "label=a=b")).splitlines()[1:] == ["local     data2"]
    assert ok(pb(root, "volume", "list", "-q", "-f", "name=data")) == "data1\ndata2\n"
    assert ok(pb(root, "volume", "ls", "--format", "{{.Name}} {{.Labels}} {{.Scope}}", "-f", "name=^data2$")) == \
        "data2 a=b,c= local\n"
    names, rows = columns(ok(pb(root, "volume", "ls", "--format", "table {{.Name}}\t{{.Mountpoint}}")))
    assert names == ["VOLUME NAME", "MOUNTPOINT"]          # (the anonymous name sorts before or after data*)
    assert rows[order.index("data1")]["MOUNTPOINT"] == str(root / "volumes" / "data1" / "_data")
    inspected = json.loads(ok(pb(root, "volume", "inspect", "data2")))
    assert inspected == [{"CreatedAt": inspected[0]["CreatedAt"], "Driver": "local", "Labels": {"a": "b", "c": ""},
                          "Mountpoint": str(root / "volumes" / "data2" / "_data"), "Name": "data2", "Options": None,
                          "Scope": "local"}]
    assert ok(pb(root, "volume", "inspect", "-f", "{{.Mountpoint}}", "data1")) == \
        str(root / "volumes" / "data1" / "_data") + "\n"


def test_cli_errors(tmp_path):
    root = tmp_path / "root"
    ok(pb(root, "volume", "create", "data1"))
    assert fails(pb(root, "volume", "create", "x")) == \
        "error: create x: volume name is too short, names should be at least two alphanumeric characters\n"
    assert "includes invalid characters" in fails(pb(root, "volume", "create", "a/b"))
    assert fails(pb(root, "volume", "create", "-d", "nfs", "v1")) == \
        'error: create v1: error looking up volume plugin nfs: plugin "nfs" not found\n'
    assert "conflicting options" in fails(pb(root, "volume", "create", "--name", "a1", "a2"))
    assert fails(pb(root, "volume", "ls", "-f", "dangling=maybe")) == "error: Invalid filter 'dangling=[maybe]'\n"
    assert fails(pb(root, "volume", "ls", "-f", "foo=1")) == "error: Invalid filter 'foo'\n"
    assert "bad format of filter (expected name=value)" in fails(pb(root, "volume", "ls", "-f", "foo"))
    result = pb(root, "volume", "inspect", "data1", "nope")
    assert json.loads(result.stdout)[0]["Name"] == "data1"
    assert fails(result) == "error: get nope: no such volume\n"


def test_cli_rm_refuses_a_volume_a_container_uses(tmp_path):
    root = tmp_path / "root"
    for name in ("data1", "data2", "free"):
        ok(pb(root, "volume", "create", name))
    cid = _record_container(root, ("data1",))
    result = pb(root, "volume", "rm", "data1", "free", "nope")
    assert result.stdout == b"free\n"
    assert fails(result) == (f"error: remove data1: volume is in use - [{cid}]\n"
                             "error: get nope: no such volume\n")
    assert fails(pb(root, "volume", "rm", "-f", "data1")) == f"error: remove data1: volume is in use - [{cid}]\n"
    assert ok(pb(root, "volume", "rm", "-f", "nope", "data2")) == "nope\ndata2\n"     # docker echoes it, too
    assert ok(pb(root, "volume", "ls", "-q", "--filter", "dangling=false")) == "data1\n"
    assert ok(pb(root, "volume", "ls", "-q", "--filter", "dangling=true")) == ""


def test_cli_prune(tmp_path):
    root = tmp_path / "root"
    for name in ("used", "unused", "labelled"):
        ok(pb(root, "volume", "create", *(["--label", "keep"] if name == "labelled" else []), name))
    anonymous = ok(pb(root, "volume", "create")).strip()
    with open(root / "volumes" / "unused" / "_data" / "big", "wb") as fh:
        fh.write(b"\0" * 1_536_005)
    _record_container(root, ("used",))
    declined = pb(root, "volume", "prune", input=b"n\n")
    assert ok(declined) == ("WARNING! This will remove all local volumes not used by at least one container.\n"
                            "Are you sure you want to continue? [y/N] Total reclaimed space: 0B\n")
    assert ok(pb(root, "volume", "prune", "-f", "--filter", "label!=keep")) == (
        "Deleted Volumes:\n" + "\n".join(sorted([anonymous, "unused"])) + "\n\nTotal reclaimed space: 1.536MB\n")
    assert ok(pb(root, "volume", "prune", input=b"y\n")).endswith(
        "[y/N] Deleted Volumes:\nlabelled\n\nTotal reclaimed space: 0B\n")
    assert ok(pb(root, "volume", "prune", "-f")) == "Total reclaimed space: 0B\n"
    assert ok(pb(root, "volume", "ls", "-q")) == "used\n"


def test_cli_uses_pybuild_root_from_the_environment(tmp_path):
    root = tmp_path / "envroot"
    from helpers import run_cli

    assert run_cli("volume", "create", "envvol", env={"PYBUILD_ROOT": str(root)}).returncode == 0
    assert (root / "volumes" / "envvol" / "_data").is_dir()


def test_hold_is_reentrant_and_keeps_other_writers_out(store):
    import fcntl

    with store.hold():
        with store.hold():
            store.create("inside")                              # takes the lock again: no deadlock
        fd = os.open(os.path.join(store.root, ".lock"), os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):               # another writer (its own open file) must wait
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        assert store.prune(lambda: {"inside": ["c1"]}).deleted == ()
    fd = os.open(os.path.join(store.root, ".lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)          # released at the end
    finally:
        os.close(fd)
