"""Container file operations for real: a store in tmp with busybox imported, the container's layer
mounted with real overlay (stopped) or reached through /proc/<pid>/root (running): ``docker cp``'s
path rules both ways, tar streams, owners, symlinks confined to the container, ``export`` and
``commit``; no mount or scratch directory is left behind."""

from __future__ import annotations

import io
import os
import random
import signal
import stat
import tarfile
import threading
from pathlib import Path

import pytest
from runtime_helpers import find_process
from test_sandbox_run import mounts_mentioning, wait_until

from builder.image.config import ContainerConfig
from builder.images.importer import import_rootfs
from builder.images.layers import ensure_snapshots, open_layer_tar
from builder.images.service import load_config
from builder.runtime.errors import ContainerError
from builder.runtime.files import (
    ContainerFiles,
    CopyInfo,
    FileMount,
    commit,
    copy_in,
    copy_out,
    export,
    human_size,
    prepare_copy,
    preserve_trailing,
    rebaser,
    split_dir_entry,
)
from builder.sandbox import RunSpec, run
from builder.sandbox.enter import process_start_time
from cache.store import Store

PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="module")
def image(tmp_path_factory, busybox_tar):
    """A store with busybox imported: (store, image id, lower dirs top first)."""
    store = Store.open(tmp_path_factory.mktemp("files") / "root")
    with open(busybox_tar, "rb") as fh:
        image_id = import_rootfs(store, fh, "busybox:latest")
    lowers = tuple(reversed(ensure_snapshots(store, load_config(store, image_id).diff_ids)))
    return store, image_id, lowers


@pytest.fixture
def view(image, tmp_path):
    _, _, lowers = image
    upper, work = tmp_path / "ctr" / "upper", tmp_path / "ctr" / "work"
    upper.mkdir(parents=True)
    work.mkdir()
    yield ContainerFiles(lowers, str(upper), str(work), name="ctr")
    assert mounts_mentioning(str(tmp_path)) == []
    assert sorted(os.listdir(tmp_path / "ctr")) == ["upper", "work"]      # no scratch left


@pytest.fixture
def running(view):
    """The same container running ``sleep`` (its upper dir is the view's): a view with its pid."""
    seconds = str(random.randint(100000, 999999))
    spec = RunSpec(argv=("sh", "-c", f"echo live > /tmp/live; exec sleep {seconds}"), lower_dirs=view.lower_dirs,
                   upper_dir=view.upper_dir, work_dir=view.work_dir, env=(PATH,), network="none")
    thread = threading.Thread(target=run, args=(spec,), daemon=True)
    thread.start()
    marker = f"sleep\0{seconds}\0".encode()
    assert wait_until(lambda: find_process(marker) is not None)
    pid = find_process(marker)
    yield ContainerFiles(view.lower_dirs, view.upper_dir, view.work_dir, pid=pid, name="ctr",
                         start_time=process_start_time(pid))
    os.kill(pid, signal.SIGKILL)
    thread.join(30)


def host_tree(root) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                out[rel + "/"] = None
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = "-> " + os.readlink(path)
            else:
                with open(path, "rb") as fh:
                    out[rel] = fh.read()
    return out


def tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.name for m in tar.getmembers()]


@pytest.fixture
def source(tmp_path):
    """A host tree to copy in: src/a.txt, src/sub/b.txt, src/link -> a.txt, a file owned by 1234."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("B")
    os.symlink("a.txt", src / "link")
    os.chown(src / "a.txt", 1234, 1234)
    os.chmod(src / "a.txt", 0o4755)
    return src


# --- the path rules -------------------------------------------------------------------------------
def test_human_size_is_docker_s():
    assert [human_size(n) for n in (0, 512, 2048, 1_000_000, 123_456_789)] == ["0B", "512B", "2.05kB", "1MB",
                                                                                "123MB"]


def test_go_path_helpers():
    assert split_dir_entry("/a/b/.") == ("/a/b", ".")
    assert split_dir_entry("/a/b/") == ("/a", "b")
    assert preserve_trailing("/a/b", "/a/b/.") == "/a/b/."
    assert preserve_trailing("/a/b", "a/b/") == "/a/b/"
    assert rebaser(".", "x")("./f") == "x/f" and rebaser("src", "dst")("src/f") == "dst/f"
    assert rebaser("src", "dst")("srcx/f") == "srcx/f"


@pytest.mark.parametrize(("src", "dst", "want"), [
    (CopyInfo("/h/dir", True, True), CopyInfo("/c/d", True, True), ("/c/d", None)),          # into: nested
    (CopyInfo("/h/dir", True, True), CopyInfo("/c/new"), ("/c", ("dir/x", "new/x"))),        # renamed
    (CopyInfo("/h/dir/.", True, True), CopyInfo("/c/new"), ("/c", ("./x", "new/x"))),
    (CopyInfo("/h/f", True, False), CopyInfo("/c/g", True, False), ("/c", ("f", "g"))),       # over a file
    (CopyInfo("/h/f", True, False, "link"), CopyInfo("/c/g"), ("/c", ("link", "g"))),         # -L rebased
    (CopyInfo("/h/dir", True, True), CopyInfo("/c/g", True, False), "cannot copy directory"),
    (CopyInfo("/h/f", True, False), CopyInfo("/c/g/"), "no such directory"),
    (CopyInfo("/h/f", True, False), CopyInfo("/c/g/."), "no such directory"),
])
def test_prepare_copy_is_docker_s(src, dst, want):
    if isinstance(want, str):
        with pytest.raises(ContainerError, match=want):
            prepare_copy(src, dst)
        return
    directory, rename = prepare_copy(src, dst)
    assert directory == want[0]
    assert (rename is None) == (want[1] is None)
    if rename is not None:
        assert rename(want[1][0]) == want[1][1]


def test_copy_in_follows_docker_cp_rules(view, source):
    stats = copy_in(view, str(source), "/tmp")                  # dir into an existing dir: nested
    assert stats.content == 2 and stats.transferred > 2048       # docker: file sizes, tar bytes
    assert stats.summary("ctr:/tmp").startswith("Successfully copied 2B (transferred ")
    copy_in(view, str(source), "/newdir")                       # dir to a new name: its contents
    copy_in(view, str(source) + "/.", "/root")                  # "/.": the contents into the dir
    copy_in(view, str(source / "a.txt"), "/etc/renamed.txt")    # file to a new name
    copy_in(view, str(source / "a.txt"), "/etc/passwd")         # file over a file (a lower one)
    upper = view.upper_dir
    assert host_tree(f"{upper}/tmp/src") == {"a.txt": b"A", "sub/": None, "sub/b.txt": b"B", "link": "-> a.txt"}
    assert host_tree(f"{upper}/newdir") == {"a.txt": b"A", "sub/": None, "sub/b.txt": b"B", "link": "-> a.txt"}
    assert Path(f"{upper}/root/sub/b.txt").read_text() == "B"
    assert Path(f"{upper}/etc/renamed.txt").read_text() == "A" and Path(f"{upper}/etc/passwd").read_text() == "A"
    st = os.stat(f"{upper}/tmp/src/a.txt")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 1234, 0o4755)   # as docker: kept
    with pytest.raises(ContainerError, match="cannot copy directory"):
        copy_in(view, str(source), "/etc/passwd")
    with pytest.raises(ContainerError, match="no such directory"):
        copy_in(view, str(source / "a.txt"), "/nosuch/")
    with pytest.raises(ContainerError, match="lstat .*/nothere: no such file or directory"):
        copy_in(view, str(source / "nothere"), "/tmp")


def test_copy_in_archive_mode_uses_the_containers_user(view, source):
    copy_in(view, str(source / "a.txt"), "/tmp/", archive=True, user="nobody")
    st = os.stat(f"{view.upper_dir}/tmp/a.txt")
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    copy_in(view, str(source / "a.txt"), "/tmp/b.txt", archive=True, user="")
    assert os.stat(f"{view.upper_dir}/tmp/b.txt").st_uid == 1234        # no USER: the host's owner


def test_copy_out_follows_docker_cp_rules(view, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    copy_out(view, "/etc", str(out))                                 # dir into a dir: nested
    assert set(host_tree(out / "etc")) == {"passwd", "group"}
    copy_out(view, "/etc/.", str(out / "etc-copy"))                  # to a new name
    assert (out / "etc-copy" / "group").read_text().startswith("root:x:0:")
    stats = copy_out(view, "etc/passwd", str(out / "pw"))            # relative to /, file to a new name
    size = (out / "pw").stat().st_size
    assert stats.content == size and stats.summary(str(out / "pw")).startswith(f"Successfully copied {size}B (")
    assert (out / "pw").read_text().startswith("root:")
    copy_out(view, "/bin/sh", str(out))                              # a symlink is copied as a symlink
    assert os.readlink(out / "sh") == "busybox"
    copy_out(view, "/bin/sh", str(out / "sh-real"), follow_link=True)  # -L: its target, under the name
    assert os.path.getsize(out / "sh-real") > 500_000 and not os.path.islink(out / "sh-real")
    with pytest.raises(ContainerError, match="Could not find the file /nosuch in container ctr"):
        copy_out(view, "/nosuch", str(out))
    with pytest.raises(ContainerError, match="cannot copy directory"):
        copy_out(view, "/etc", str(out / "pw"))
    with pytest.raises(ContainerError, match="no such directory"):
        copy_out(view, "/etc/passwd", str(out / "missing") + "/")


def test_tar_streams_both_ways(view, tmp_path):
    buf = io.BytesIO()
    copy_out(view, "/etc", "-", stdout=buf)
    assert sorted(tar_names(buf.getvalue())) == ["etc", "etc/group", "etc/passwd"]
    buf = io.BytesIO()
    copy_out(view, "/etc/.", "-", stdout=buf)
    assert sorted(tar_names(buf.getvalue())) == [".", "./group", "./passwd"]
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode="r") as tar:
        member = tar.getmember("./passwd")
        assert (member.uid, member.gid, member.uname) == (0, 0, "")
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("streamed/x.txt")
        info.size, info.uid = 2, 777
        tar.addfile(info, io.BytesIO(b"hi"))
    data.seek(0)
    copy_in(view, "-", "/tmp", stdin=data)
    assert Path(f"{view.upper_dir}/tmp/streamed/x.txt").read_text() == "hi"
    assert os.stat(f"{view.upper_dir}/tmp/streamed/x.txt").st_uid == 777
    with pytest.raises(ContainerError, match='destination "ctr:/etc/passwd" must be a directory'):
        copy_in(view, "-", "/etc/passwd", stdin=io.BytesIO())


def test_symlinks_never_lead_out_of_the_container(view, tmp_path):
    secret = tmp_path / "host-secret"
    secret.mkdir()
    (secret / "key").write_text("host data")
    os.symlink(str(secret), f"{view.upper_dir}/escape")                 # absolute: resolved in the container
    os.makedirs(f"{view.upper_dir}/tmp")
    os.symlink("../../../../../../../" + str(secret), f"{view.upper_dir}/tmp/up")
    for path in ("/escape/key", "/tmp/up/key"):
        with pytest.raises(ContainerError, match="Could not find the file"):
            copy_out(view, path, str(tmp_path / "stolen"))
    assert not (tmp_path / "stolen").exists()
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "p.txt").write_text("x")
    with pytest.raises(ContainerError):
        copy_in(view, str(planted / "p.txt"), "/escape/")            # the target does not exist inside
    assert sorted(os.listdir(secret)) == ["key"]
    os.makedirs(f"{view.upper_dir}{secret}")                          # now it does, inside the container
    copy_in(view, str(planted / "p.txt"), "/escape/")
    assert sorted(os.listdir(secret)) == ["key"]
    assert os.path.exists(f"{view.upper_dir}{secret}/p.txt")


def test_running_container_is_reached_through_its_root(running, tmp_path, source):
    assert wait_until(lambda: os.path.exists(f"{running.upper_dir}/tmp/live"))
    out = tmp_path / "out"
    out.mkdir()
    copy_out(running, "/tmp/live", str(out))
    assert (out / "live").read_text() == "live\n"
    buf = io.BytesIO()
    copy_out(running, "/dev", "-", stdout=buf)                         # the live view: its mounts
    assert {"dev/null", "dev/pts", "dev/shm"} <= set(tar_names(buf.getvalue()))
    copy_in(running, str(source / "sub"), "/tmp/")
    assert Path(f"{running.upper_dir}/tmp/sub/b.txt").read_text() == "B"
    buf = io.BytesIO()
    export(running, buf)                                               # no /proc contents in an export
    names = tar_names(buf.getvalue())
    assert "tmp/sub/b.txt" in names and "bin/busybox" in names
    assert not any(n.startswith("proc/") for n in names)


def test_a_stopped_or_gone_container(view):
    gone = ContainerFiles(view.lower_dirs, view.upper_dir, view.work_dir, pid=2 ** 22 - 3, name="ctr")
    with pytest.raises(ContainerError, match="container ctr is not running"):
        copy_out(gone, "/etc/passwd", "-", stdout=io.BytesIO())


def test_export_flattens_layers_and_whiteouts(view):
    os.makedirs(f"{view.upper_dir}/etc")
    os.mknod(f"{view.upper_dir}/etc/group", stat.S_IFCHR | 0o000, 0)   # deleted in the container
    with open(f"{view.upper_dir}/new.txt", "w") as fh:
        fh.write("new")
    buf = io.BytesIO()
    export(view, buf)
    names = tar_names(buf.getvalue())
    assert "new.txt" in names and "etc/passwd" in names and "bin/busybox" in names
    assert "etc/group" not in names and not any(".wh." in n for n in names)


def test_commit_makes_the_upper_dir_a_layer(image, view):
    store, image_id, _ = image
    os.makedirs(f"{view.upper_dir}/etc")
    os.mknod(f"{view.upper_dir}/etc/group", stat.S_IFCHR | 0o000, 0)
    os.makedirs(f"{view.upper_dir}/data")
    with open(f"{view.upper_dir}/data/f", "w") as fh:
        fh.write("committed")
    os.setxattr(f"{view.upper_dir}/data", "trusted.overlay.opaque", b"y")
    base = load_config(store, image_id)
    new_id = commit(store, view, image_id, changes=("CMD [\"/bin/sh\", \"-c\", \"cat /data/f\"]", "ENV A=b"),
                    message="my change", author="me <me@example.com>", created_by="/bin/sh",
                    container_config=ContainerConfig(env=(PATH,)))
    config = load_config(store, new_id)
    assert config.diff_ids[:-1] == base.diff_ids and len(config.diff_ids) == len(base.diff_ids) + 1
    assert config.config.cmd == ("/bin/sh", "-c", "cat /data/f") and config.config.env == (PATH, "A=b")
    assert config.author == "me <me@example.com>"
    last = config.history[-1]
    assert (last.comment, last.author, last.created_by, last.empty_layer) == ("my change", "me <me@example.com>",
                                                                            "/bin/sh", False)
    with open_layer_tar(store, config.diff_ids[-1]) as layer, tarfile.open(fileobj=layer, mode="r|") as tar:
        names = {m.name: m for m in tar}
    assert set(names) == {"data", "data/.wh..wh..opq", "data/f", "etc", "etc/.wh.group"}
    assert os.path.exists(f"{view.upper_dir}/data/f")            # the container keeps its layer
    empty = load_config(store, commit(store, ContainerFiles(view.lower_dirs, view.work_dir, view.work_dir),
                                      image_id, container_config=ContainerConfig(cmd=("sh", "-c", "true"))))
    assert empty.diff_ids == base.diff_ids and empty.author == ""        # docker: no layer, empty_layer entry
    assert (empty.history[-1].empty_layer, empty.history[-1].created_by) == (True, "sh -c true")
    with pytest.raises(Exception, match="not a valid change command"):
        commit(store, view, image_id, changes=("RUN true",))


def test_commit_pauses_a_running_container_in_its_freezer_cgroup(image, running, monkeypatch):
    """docker commit --pause: the container's own freezer cgroup is frozen while its layer is copied."""
    import builder.runtime.commit as commit_module

    store, image_id, _ = image
    ours = next(line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
                if line.split(":")[1] == "freezer")
    parent = "/sys/fs/cgroup/freezer" + ours.rstrip("/")
    group = os.path.join(parent, f"pybuild-test-{random.randint(10 ** 6, 10 ** 7)}")
    os.mkdir(group)
    seen = []
    real_copy = commit_module._copy_tree
    monkeypatch.setattr(commit_module, "_copy_tree",
                        lambda src, dst: (seen.append(Path(group, "freezer.state").read_text().strip()),
                                          real_copy(src, dst)))
    try:
        Path(group, "cgroup.procs").write_text(str(running.pid))
        new_id = commit(store, running, image_id, message="paused")
        assert seen == ["FROZEN"] and Path(group, "freezer.state").read_text().strip() == "THAWED"
        commit(store, running, image_id, pause=False)
        assert seen == ["FROZEN", "THAWED"]
        assert load_config(store, new_id).history[-1].comment == "paused"
    finally:
        Path(parent, "cgroup.procs").write_text(str(running.pid))
        Path(group, "freezer.state").write_text("THAWED")
        os.rmdir(group)


def test_a_container_of_an_image_without_layers(tmp_path, source):
    upper, work = tmp_path / "c" / "upper", tmp_path / "c" / "work"
    upper.mkdir(parents=True)
    work.mkdir()
    empty = ContainerFiles((), str(upper), str(work), name="scratchy")
    copy_in(empty, str(source / "a.txt"), "/a.txt")
    assert (upper / "a.txt").read_text() == "A"
    buf = io.BytesIO()
    export(empty, buf)
    assert tar_names(buf.getvalue()) == ["a.txt"]
    assert mounts_mentioning(str(tmp_path)) == [] and sorted(os.listdir(tmp_path / "c")) == ["upper", "work"]


# --- the same copies with docker itself ------------------------------------------------------------------
# docker's init layer (under every container's writable layer): not part of our containers' files
DOCKER_INIT_FILES = {"hostname", "hosts", "mtab", "resolv.conf"}


def _entries(data: bytes) -> dict:
    """A tar's entries as what a user sees: type, mode, owner, link target, content."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            content = tar.extractfile(m).read() if m.isreg() else None
            out[m.name.rstrip("/")] = (m.type, m.mode & 0o7777, m.uid, m.gid, m.linkname if m.issym() else "",
                                       content)
    return out


def _a_tar() -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, kind in (("streamed", tarfile.DIRTYPE), ("streamed/x.txt", tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.uid, info.gid, info.mode = kind, 777, 778, 0o750
            info.size = 2 if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(b"hi") if kind == tarfile.REGTYPE else None)
    return data.getvalue()


@pytest.fixture(scope="module")
def docker_ctr(dockerd, busybox_tar):
    with open(busybox_tar, "rb") as fh:
        dockerd.docker("import", "-", "cpref:latest", input=fh.read())
    name = f"cpref-{random.randint(10 ** 6, 10 ** 7)}"
    dockerd.docker("create", "--name", name, "cpref:latest", "sh")
    yield dockerd, name
    dockerd.docker("rm", "-f", name, check=False)


def test_copies_match_docker_cp(docker_ctr, view, source, tmp_path):
    dockerd, name = docker_ctr
    cases = [(str(source), "/tmp"), (str(source), "/newdir"), (str(source) + "/.", "/root"),
             (str(source / "a.txt"), "/etc/renamed.txt"), (str(source / "sub") + "/", "/home/")]
    for src, dst in cases:
        dockerd.docker("cp", src, f"{name}:{dst}")
        copy_in(view, src, dst)
    for path in ("/tmp", "/newdir", "/root", "/etc/renamed.txt", "/home", "/etc/."):
        theirs = dockerd.docker("cp", f"{name}:{path}", "-").stdout
        ours = io.BytesIO()
        copy_out(view, path, "-", stdout=ours)
        theirs = {k: v for k, v in _entries(theirs).items() if k.split("/")[-1] not in DOCKER_INIT_FILES}
        assert _entries(ours.getvalue()) == theirs, path
    for path, dest in (("/etc", "etc-in"), ("/etc/.", "etc-contents"), ("/bin/sh", "sh"), ("/root", "root-dir")):
        (tmp_path / "d").mkdir(exist_ok=True)
        (tmp_path / "o").mkdir(exist_ok=True)
        dockerd.docker("cp", f"{name}:{path}", str(tmp_path / "d" / dest))
        copy_out(view, path, str(tmp_path / "o" / dest))
    theirs = {k: v for k, v in host_tree(tmp_path / "d").items() if k.split("/")[-1] not in DOCKER_INIT_FILES}
    assert host_tree(tmp_path / "o") == theirs
    dockerd.docker("cp", "-L", f"{name}:/bin/sh", str(tmp_path / "d" / "sh-L"))
    copy_out(view, "/bin/sh", str(tmp_path / "o" / "sh-L"), follow_link=True)
    assert (tmp_path / "o" / "sh-L").read_bytes() == (tmp_path / "d" / "sh-L").read_bytes()
    dockerd.docker("cp", "-L", str(source / "link"), f"{name}:/tmp/")
    copy_in(view, str(source / "link"), "/tmp/", follow_link=True)
    dockerd.docker("cp", "-", f"{name}:/var", input=(stream := _a_tar()))
    copy_in(view, "-", "/var", stdin=io.BytesIO(stream))
    for path in ("/tmp/link", "/var"):
        theirs = dockerd.docker("cp", f"{name}:{path}", "-").stdout
        ours = io.BytesIO()
        copy_out(view, path, "-", stdout=ours)
        assert _entries(ours.getvalue()) == _entries(theirs), path
    theirs = _entries(dockerd.docker("export", name).stdout)
    ours = io.BytesIO()
    export(view, ours)
    ours = _entries(ours.getvalue())
    extra = set(theirs) - set(ours)
    assert extra == {".dockerenv", "dev/console", "dev/pts", "dev/shm", "etc/hostname", "etc/hosts", "etc/mtab",
                     "etc/resolv.conf"}                                   # docker's init layer
    assert ours == {k: v for k, v in theirs.items() if k not in extra}
    failed = dockerd.docker("cp", str(source), f"{name}:/etc/passwd", check=False)
    assert failed.returncode != 0 and b"cannot copy directory" in failed.stderr


def test_an_interrupted_copy_leaves_nothing(view):
    class Interrupting(io.BytesIO):
        def write(self, data):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_out(view, "/bin", "-", stdout=Interrupting())
    with pytest.raises(KeyboardInterrupt):
        export(view, Interrupting())
    # the fixture checks: no mount, no scratch directory; and no worker is left running
    assert not _processes_with(b"builder.runtime.fsworker")


def _processes_with(marker: bytes) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            continue
    return found


def test_volumes_of_a_stopped_container_are_copied_to_and_from(view, tmp_path, source):
    volume, readonly = tmp_path / "vol", tmp_path / "ro"
    volume.mkdir()
    readonly.mkdir()
    (readonly / "kept.txt").write_text("ro")
    with_mounts = ContainerFiles(view.lower_dirs, view.upper_dir, view.work_dir, name="ctr",
                                 mounts=(FileMount(str(volume), "/data"), FileMount(str(readonly), "/data/ro", True)))
    copy_in(with_mounts, str(source / "a.txt"), "/data/")
    assert (volume / "a.txt").read_text() == "A"                         # in the volume, not the layer
    assert not os.path.exists(f"{view.upper_dir}/data/a.txt")
    out = tmp_path / "out"
    out.mkdir()
    copy_out(with_mounts, "/data/ro/kept.txt", str(out))
    assert (out / "kept.txt").read_text() == "ro"
    with pytest.raises(ContainerError, match="Read-only file system"):
        copy_in(with_mounts, str(source / "a.txt"), "/data/ro/")
    buf = io.BytesIO()
    export(with_mounts, buf)                                            # export: the layers only
    assert not any(name.startswith("data/") for name in tar_names(buf.getvalue()))
    escape = tmp_path / "escape"
    escape.mkdir()
    os.symlink(str(escape), f"{view.upper_dir}/link")                    # a mount target through a symlink
    sneaky = ContainerFiles(view.lower_dirs, view.upper_dir, view.work_dir, mounts=(FileMount(str(volume),
                                                                                             "/link/v"),))
    with pytest.raises(ContainerError):                                 # its target is not in the container
        copy_in(sneaky, str(source / "a.txt"), "/link/v/")
    os.makedirs(f"{view.upper_dir}{escape}/v")                           # now it is: the mount goes there
    copy_in(sneaky, str(source / "sub"), "/link/v/")
    assert os.listdir(escape) == [] and (volume / "sub" / "b.txt").exists()
