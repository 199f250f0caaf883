"""The worker that touches a container's files, chrooted into the container's root.

As docker's chrootarchive: a short-lived process (``python -I -S``, ``worker_main``) is chrooted into
the container's root, so no symlink in the container can lead out of it whatever the container does
meanwhile.  The root is ``/proc/<pid>/root`` for a running container (the live view, volumes
included), or an overlay mounted in a private mount namespace of the worker (read-write over the
upper dir to copy in; read-only with the upper dir as the top lower layer to read), so the mount
vanishes with the worker whatever happens.  The worker loads every module it needs before the chroot
and never asks NSS for a name (which would load the container's libraries into a root process on the
host, docker's CVE-2019-14271).  Jobs: ``stat``, ``tar`` (to stdout), ``untar`` (from stdin),
``export``; status lines (``builder.sandbox.status``) say how it went.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from typing import TYPE_CHECKING, BinaryIO

from ..errors import PybuildError
from .copyrules import go_base
from .errors import ContainerError
from .tarcopy import add_tree, extract, open_tar_writer, without_name_lookups

if TYPE_CHECKING:
    from .files import ContainerFiles  # noqa: F401

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BOOT = ("import os,sys;sys.path.insert(0,os.environ.pop('PYBUILD_SANDBOX_PATH'));"
         "import builder.runtime.fsworker as w;w.worker_main()")


class _Gone(Exception):
    pass


def _stat_job(path: str) -> dict:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {"exists": False}
    except NotADirectoryError:
        return {"exists": False, "not_dir": True}
    return {"exists": True, "is_dir": stat.S_ISDIR(st.st_mode), "is_link": stat.S_ISLNK(st.st_mode),
            "link": os.readlink(path) if stat.S_ISLNK(st.st_mode) else "", "size": st.st_size,
            "mode": st.st_mode}


def _tar_job(path: str, out: BinaryIO) -> None:
    """moby's containerArchivePath: a directory is archived as ``.`` renamed to the base of the
    path (``/etc`` -> ``etc/...``, ``/etc/.`` -> ``./...``), a file as its name."""
    st = os.lstat(path)
    base = go_base(path)
    arcname = "." if base in ("/", ".") else base
    with open_tar_writer(out) as tar:
        add_tree(tar, path if stat.S_ISDIR(st.st_mode) else path.rstrip("/"), arcname)


def _untar_job(job: dict, stream: BinaryIO, status_fd: int) -> None:
    from builder.sandbox.users import read_user_files, resolve_user

    dest = os.path.realpath(job["path"])
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        raise ContainerError(f"Could not find the file {job['path']}{job['label']}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ContainerError("extraction point is not a directory")
    owner = None                        # docker keeps the archive's owners (the host files')
    if job.get("user"):
        user = job["user"]
        passwd, group = read_user_files("/")
        resolved = resolve_user(user, passwd, group)
        owner = (resolved.uid, resolved.gid)
    extract(stream, dest, owner=owner)


def _enter_root(job: dict, pidfd: int) -> None:
    from builder.sandbox.syscalls import (
        CLONE_NEWNS,
        MS_BIND,
        MS_PRIVATE,
        MS_RDONLY,
        MS_REC,
        MS_REMOUNT,
        Syscalls,
    )

    where = job["root"]
    if "pid" in where:
        try:
            os.chroot(f"/proc/{where['pid']}/root")
        except (FileNotFoundError, ProcessLookupError):
            raise _Gone() from None
        os.chdir("/")
        import signal

        try:
            signal.pidfd_send_signal(pidfd, 0)
        except ProcessLookupError:
            raise _Gone() from None
        return
    sys_ = Syscalls()
    sys_.unshare(CLONE_NEWNS)
    sys_.mount(None, "/", None, MS_REC | MS_PRIVATE)
    target = where["mountpoint"]
    if where.get("bind"):
        sys_.mount(where["bind"], target, None, MS_BIND)
        sys_.mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    else:
        if where.get("cwd"):
            os.chdir(where["cwd"])
        sys_.mount("overlay", target, "overlay", 0, where["options"])
    trees = [(open_tree(source), mount_target, readonly) for source, mount_target, readonly in where.get("mounts", ())]
    os.chroot(target)
    os.chdir("/")
    for fd, mount_target, readonly in trees:     # placed from inside: a symlink cannot move them out
        if not _mountpoint(mount_target, stat.S_ISDIR(os.fstat(fd).st_mode)):
            os.close(fd)
            continue
        move_mount(fd, mount_target)
        os.close(fd)
        if readonly:
            sys_.mount(None, mount_target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


_OPEN_TREE = 428          # the same number on every architecture (new syscalls share one table)
_MOVE_MOUNT = 429
_OPEN_TREE_CLONE = 1
_AT_RECURSIVE = 0x8000
_MOVE_MOUNT_F_EMPTY_PATH = 4
_AT_FDCWD = -100


def _libc():
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def open_tree(path: str) -> int:
    """A detached copy of the mount tree at ``path`` (a host path: taken before the chroot)."""
    import ctypes

    fd = _libc().syscall(_OPEN_TREE, _AT_FDCWD, os.fsencode(path), _OPEN_TREE_CLONE | _AT_RECURSIVE | os.O_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"open_tree {path}: {os.strerror(err)}")
    return fd


def move_mount(fd: int, target: str) -> None:
    import ctypes

    if _libc().syscall(_MOVE_MOUNT, fd, b"", _AT_FDCWD, os.fsencode(target), _MOVE_MOUNT_F_EMPTY_PATH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"move_mount {target}: {os.strerror(err)}")


def _mountpoint(path: str, is_dir: bool) -> bool:
    """The mount point, created if the container lacks it (docker's volume mounts do the same); False
    when it cannot be (a read-only view of a container that never ran with this mount)."""
    if os.path.lexists(path):
        return True
    try:
        os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
        if is_dir:
            os.mkdir(path, 0o755)
        else:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    except OSError as err:
        if err.errno == errno.EROFS:
            return False
        raise
    return True


def worker_main(argv: list[str] | None = None) -> None:
    """The worker: ``JOB STATUS [PIDFD]`` descriptors on the command line; data on stdin/stdout."""
    import ctypes  # noqa: F401  (loaded before the chroot)
    import signal

    import builder.fs.tarwriter
    import builder.sandbox.syscalls
    import builder.sandbox.users  # noqa: F401
    from builder.sandbox import status
    from builder.sandbox.syscalls import PR_SET_PDEATHSIG, Syscalls

    for module in ("gzip", "bz2", "lzma", "zlib", "encodings.utf_8", "encodings.latin_1", "copy", "grp", "pwd"):
        __import__(module)
    args = [int(a) for a in (sys.argv if argv is None else argv)[1:]] + [-1]
    job_fd, status_fd, pidfd = args[:3]
    with os.fdopen(job_fd, "rb") as fh:
        job = json.loads(fh.read())
    Syscalls().prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != job["parent"]:
        os._exit(1)
    without_name_lookups()
    os.umask(0)
    out = sys.stdout.buffer
    try:
        _enter_root(job, pidfd)
        op = job["op"]
        if op == "stat":
            status.send(status_fd, stat=_stat_job(job["path"]))
        elif op == "tar":
            _tar_job(job["path"], out)
        elif op == "untar":
            _untar_job(job, sys.stdin.buffer, status_fd)
        elif op == "export":
            from builder.fs.tarwriter import write_tar

            write_tar("/", out)
        out.flush()
        status.send(status_fd, done=True)
    except _Gone:
        status.send(status_fd, gone=True)
        os._exit(1)
    except PybuildError as err:
        status.send(status_fd, error=err.message)
        os._exit(1)
    except OSError as err:
        where = f" {err.filename}" if err.filename else ""
        status.send(status_fd, error=f"{err.strerror or err}{where}".strip())
        os._exit(1)
    except BaseException as err:  # noqa: BLE001
        status.send(status_fd, error=f"{type(err).__name__}: {err}")
        os._exit(1)
    os._exit(0)


class _Worker:
    """One worker run: the job, the root it works in, its data pipes and its status."""

    def __init__(self, view, job: dict, *, writable: bool = False, rootfs_only: bool = False):
        self.view = view
        self.job = dict(job, parent=os.getpid(), label=view.label)
        self.writable = writable
        self.rootfs_only = rootfs_only      # export: the layers alone, never the live view or the mounts
        self.scratch: str | None = None
        self.pidfd = -1
        self.proc: subprocess.Popen | None = None
        self.status_r = -1

    def _root(self) -> dict:
        if self.view.pid is not None and not self.rootfs_only:
            from builder.sandbox.enter import NotRunningError, open_target

            try:
                self.pidfd = open_target(self.view.pid, self.view.start_time)
            except NotRunningError:
                raise ContainerError(f"container{' ' + self.view.name if self.view.name else ''} is not "
                                     "running") from None
            return {"pid": self.view.pid}
        from builder.sandbox.overlay import (
            create_links,
            kernel_feature_options,
            plan_overlay,
        )

        base = os.path.dirname(self.view.work_dir.rstrip("/")) or None
        self.scratch = tempfile.mkdtemp(prefix=".pybuild-files-", dir=base)
        mountpoint = os.path.join(self.scratch, "root")
        os.mkdir(mountpoint, 0o755)
        mounts = [] if self.rootfs_only else [[m.source, m.target, m.readonly] for m in sorted(
            self.view.mounts, key=lambda m: len([p for p in m.target.split("/") if p]))]
        root = {"mountpoint": mountpoint, "mounts": mounts}
        stubs = self._stub_layer(mounts)
        if self.writable:
            lowers = (*self.view.lower_dirs, *stubs)
            if not lowers:                  # an image without layers: overlay still needs a lower dir
                lowers = (os.path.join(self.scratch, "empty"),)
                os.mkdir(lowers[0], 0o755)
            plan = plan_overlay(lowers, self.view.upper_dir, self.view.work_dir, os.path.join(self.scratch, "l"),
                                kernel_feature_options())
        else:
            layers = (self.view.upper_dir, *self.view.lower_dirs, *stubs)
            if len(layers) == 1:
                return dict(root, bind=layers[0])
            plan = plan_overlay(layers, None, None, os.path.join(self.scratch, "l"), kernel_feature_options())
        create_links(plan)
        return dict(root, options=plan.options, cwd=plan.cwd)

    def _stub_layer(self, mounts) -> tuple[str, ...]:
        """A bottom layer holding the mount points (as the sandbox's stub layer): they exist in the
        view without being created in the container's writable layer."""
        if not mounts:
            return ()
        stubs = os.path.join(self.scratch, "stubs")
        os.mkdir(stubs, 0o755)
        for source, target, _ in mounts:
            path = os.path.join(stubs, os.path.normpath("/" + target).lstrip("/"))
            if path == stubs:
                continue
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
            if os.path.isdir(source):
                os.makedirs(path, 0o755, exist_ok=True)
            elif not os.path.lexists(path):
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        return (stubs,)

    def start(self, *, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL) -> subprocess.Popen:
        from builder.sandbox.process import _bytecode_options

        job_fd = -1
        status_w = -1
        try:
            self.job["root"] = self._root()
            job_fd = os.memfd_create("pybuild-files", os.MFD_CLOEXEC)
            os.write(job_fd, json.dumps(self.job).encode())
            os.lseek(job_fd, 0, os.SEEK_SET)
            self.status_r, status_w = os.pipe()
            fds = [job_fd, status_w] + ([self.pidfd] if self.pidfd >= 0 else [])
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", *_bytecode_options(), "-c", _BOOT, *map(str, fds)],
                stdin=stdin, stdout=stdout, pass_fds=fds, cwd="/", env={"PYBUILD_SANDBOX_PATH": _PACKAGE_ROOT})
        except BaseException:
            self.close()
            raise
        finally:
            for fd in (job_fd, status_w):
                if fd >= 0:
                    os.close(fd)
        return self.proc

    def finish(self, stream_error: BaseException | None = None) -> dict:
        """Wait for the worker; its error (if any) wins over ``stream_error``.  Returns its messages."""
        from builder.sandbox import status

        try:
            self.proc.wait()
            data = b""
            while chunk := os.read(self.status_r, 65536):
                data += chunk
            messages = {}
            for message in status.parse(data):
                messages.update(message)
        finally:
            self.close()
        if "gone" in messages:
            raise ContainerError(f"container{' ' + self.view.name if self.view.name else ''} is not running")
        if "error" in messages:
            raise ContainerError(messages["error"])
        if stream_error is not None:
            raise stream_error
        if "done" not in messages:
            raise ContainerError(f"the file worker ended without a result (exit code {self.proc.returncode})")
        return messages

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout) if self.proc is not None else ():
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except OSError:
                    pass
        for fd in (self.pidfd, self.status_r):
            if fd >= 0:
                os.close(fd)
        self.pidfd = self.status_r = -1
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


class _Counted:
    """A pipe that counts the bytes through it (docker's "transferred" size)."""

    def __init__(self, pipe):
        self.pipe, self.count = pipe, 0

    def read(self, size: int = -1) -> bytes:
        data = self.pipe.read(size)
        self.count += len(data)
        return data

    def write(self, data) -> int:
        written = self.pipe.write(data)
        self.count += len(data)
        return written

    def flush(self) -> None:
        self.pipe.flush()


def run_job(view, job: dict, **kw) -> dict:
    worker = _Worker(view, job, **kw)
    worker.start()
    return worker.finish()


def read_from(view, job: dict, consume, **kw) -> int:
    """Run a worker that writes a stream; ``consume(pipe)`` reads it.  Returns the stream's size."""
    worker = _Worker(view, job, **kw)
    proc = worker.start(stdout=subprocess.PIPE)
    error = None
    pipe = _Counted(proc.stdout)
    try:
        consume(pipe)
    except (tarfile.TarError, OSError, ContainerError) as err:
        error = err if isinstance(err, ContainerError) else ContainerError(f"copy failed: {err}")
    except BaseException:
        worker.close()
        raise
    worker.finish(error)
    return pipe.count


def write_to(view, job: dict, produce, **kw) -> int:
    """Run a worker that reads a stream; ``produce(pipe)`` writes it.  Returns the stream's size."""
    worker = _Worker(view, job, **kw)
    proc = worker.start(stdin=subprocess.PIPE)
    error = None
    pipe = _Counted(proc.stdin)
    try:
        try:
            produce(pipe)
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
    except BrokenPipeError:
        pass                        # the worker stopped reading: its status says why
    except (tarfile.TarError, OSError, ContainerError) as err:
        error = err if isinstance(err, ContainerError) else ContainerError(f"copy failed: {err}")
    except BaseException:
        worker.close()
        raise
    worker.finish(error)
    return pipe.count


__all__ = ["read_from", "run_job", "worker_main", "write_to"]
