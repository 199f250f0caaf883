"""A container's files: ``cp`` in and out, ``export`` and ``commit``, with docker's semantics.

Everything that touches the container's tree runs in a short-lived worker (``python -I -S``, this
module's ``worker_main``) that is chrooted into the container's root, as docker's chrootarchive does,
so a symlink in the container can never lead out of it, whatever the container does meanwhile:

* running (``pid`` set): the root is ``/proc/<pid>/root`` (the live view, volumes included);
* stopped, or for ``export``: the worker unshares a private mount namespace and mounts the overlay
  there (read-write over ``upper_dir`` to copy in; read-only with the upper dir as the top lower layer
  to read), so the mount vanishes with the worker, whatever happens.

The worker loads every module it needs before the chroot and never asks NSS for a user name (which
would load libraries from the container, docker's CVE-2019-14271): tar headers carry numeric ids.
Host-side work (building the tar of a host source, extracting onto the host) stays in the caller.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import PybuildError
from .errors import ContainerError

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BOOT = ("import os,sys;sys.path.insert(0,os.environ.pop('PYBUILD_SANDBOX_PATH'));"
         "import builder.runtime.files as f;f.worker_main()")
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ContainerFiles:
    """Where a container's files are: its image's layer snapshots (``lower_dirs``, top first), its
    writable layer, and the pid of its running process (``None`` when stopped; ``start_time`` from
    ``enter.process_start_time`` guards against a reused pid).  ``name`` is used in messages."""

    lower_dirs: tuple[str, ...]
    upper_dir: str
    work_dir: str
    pid: int | None = None
    name: str = ""
    start_time: int | None = None

    def __post_init__(self):
        if not isinstance(self.lower_dirs, tuple):
            object.__setattr__(self, "lower_dirs", tuple(self.lower_dirs))

    @property
    def label(self) -> str:
        return f" in container {self.name}" if self.name else " in the container"


# --- docker's path rules (moby/go-archive copy.go) ----------------------------------------------------
def _has_trailing_sep(path: str) -> bool:
    return path.endswith("/")


def _specifies_current_dir(path: str) -> bool:
    return os.path.basename(path) == "."


def _asserts_directory(path: str) -> bool:
    return _has_trailing_sep(path) or _specifies_current_dir(path)


def _clean(path: str) -> str:
    cleaned = os.path.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("/") else cleaned


def preserve_trailing(cleaned: str, original: str) -> str:
    """Go's PreserveTrailingDotOrSeparator: cleaning must not lose a final ``/`` or ``/.``."""
    if not _specifies_current_dir(cleaned) and _specifies_current_dir(original):
        if not cleaned.endswith("/"):
            cleaned += "/"
        cleaned += "."
    if not cleaned.endswith("/") and original.endswith("/"):
        cleaned += "/"
    return cleaned


def split_dir_entry(path: str) -> tuple[str, str]:
    """Go's SplitPathDirEntry: ``/a/b/.`` -> (``/a/b``, ``.``); ``/a/b/`` -> (``/a``, ``b``)."""
    cleaned = _clean(path)
    if _specifies_current_dir(path):
        cleaned += "/."
    return os.path.dirname(cleaned) or ".", os.path.basename(cleaned) or "/"


def go_base(path: str) -> str:
    """Go's filepath.Base (trailing slashes dropped; ``/`` for the root)."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/" if path else "."
    return stripped.rsplit("/", 1)[-1]


def rebaser(old: str, new: str):
    """Go's newNameRebaser: the first path element ``old`` of each entry becomes ``new``."""
    old, new = old.rstrip("/"), new.rstrip("/")
    if not old:
        return lambda name: (new + "/" + name.lstrip("/")) if new else name.lstrip("/")

    def rename(name: str) -> str:
        if not name.startswith(old):
            return name
        suffix = name[len(old):]
        if suffix and not suffix.startswith("/"):
            return name
        return new + suffix
    return rename


@dataclass(frozen=True, slots=True)
class CopyInfo:
    path: str
    exists: bool = False
    is_dir: bool = False
    rebase_name: str = ""


def prepare_copy(src: CopyInfo, dst: CopyInfo) -> tuple[str, callable | None]:
    """Go's PrepareArchiveCopy: the directory to extract into and how to rename the entries."""
    _, src_base = split_dir_entry(src.path)
    dst_dir, dst_base = split_dir_entry(dst.path)
    if src.rebase_name:
        src_base = src.rebase_name
    if dst.exists and dst.is_dir:
        return dst.path, None
    if dst.exists and src.is_dir:
        raise ContainerError("cannot copy directory")
    if not dst.exists and not src.is_dir and _asserts_directory(dst.path):
        raise ContainerError("no such directory")
    return dst_dir, rebaser(src_base, dst_base)


def host_destination(path: str) -> CopyInfo:
    """Go's CopyInfoDestinationPath on the host: a final symlink is followed (up to 10 times); a
    missing destination needs an existing parent directory."""
    original = path
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    hops = 0
    while st is not None and stat.S_ISLNK(st.st_mode):
        hops += 1
        if hops > 11:
            raise ContainerError(f"too many symlinks in {original}")
        target = os.readlink(path)
        if not target.startswith("/"):
            target = os.path.join(split_dir_entry(path)[0], target)
        path = _clean(target)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
    if st is None:
        parent = split_dir_entry(path)[0]
        try:
            if not stat.S_ISDIR(os.stat(parent).st_mode):
                raise ContainerError("not a directory")
        except FileNotFoundError:
            raise ContainerError(f"stat {parent}: no such file or directory") from None
        return CopyInfo(path)
    return CopyInfo(path, True, stat.S_ISDIR(st.st_mode))


# --- tar extraction, shared by both sides -------------------------------------------------------------
def _check_name(name: str) -> None:
    parts = name.split("/")
    if name.startswith("/") or ".." in parts:
        raise ContainerError(f"invalid path in the archive: {name!r}")


def extract(stream: BinaryIO, dest: str, *, rename=None, owner: tuple[int, int] | None = None,
            keep_owner: bool = True) -> None:
    """Extract a tar stream into ``dest`` as docker's Untar does: entries renamed by ``rename``, an
    existing non-directory replaced (never written through), a directory never replaced by a
    non-directory or the other way round; owners from the archive, ``owner`` for all, or ours."""
    uid, gid = owner if owner is not None else (os.getuid(), os.getgid())
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        def members():
            for member in tar:
                if rename is not None:
                    member.name = rename(member.name)
                    if member.islnk():
                        member.linkname = rename(member.linkname)
                name = member.name.rstrip("/")
                _check_name(name)
                if member.islnk():
                    _check_name(member.linkname)
                if owner is not None or not keep_owner:
                    member.uid, member.gid = uid, gid
                member.uname = member.gname = ""
                target = os.path.join(dest, name)
                if name not in ("", "."):
                    try:
                        st = os.lstat(target)
                    except FileNotFoundError:
                        st = None
                    except NotADirectoryError:
                        raise ContainerError(f"cannot extract {name}: a parent is not a directory") from None
                    if st is not None:
                        if stat.S_ISDIR(st.st_mode) and not member.isdir():
                            raise ContainerError(f'cannot overwrite directory "{target}" with non-directory '
                                                 f'"{name}"')
                        if not stat.S_ISDIR(st.st_mode) and member.isdir():
                            raise ContainerError(f'cannot overwrite non-directory "{target}" with directory '
                                                 f'"{name}"')
                        if not stat.S_ISDIR(st.st_mode):
                            os.unlink(target)
                yield member

        tar.extractall(dest, members=members(), numeric_owner=True, filter="fully_trusted")


def _tar_add(tar: tarfile.TarFile, path: str, arcname: str) -> None:
    """Add ``path`` (not following a final symlink) and everything below it, sorted, with numeric
    owners and the file's xattrs (``security.capability`` ...)."""
    info = tar.gettarinfo(path, arcname)
    if info is None:            # a socket: docker skips those too
        return
    info.uname = info.gname = ""
    xattrs = _xattrs(path)
    if xattrs:
        info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    if info.isreg():
        # Not following a symlink, not blocking on a fifo: the container may swap the file meanwhile.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ContainerError(f"{path} changed while it was being copied")
            tar.addfile(info, fh)
    else:
        tar.addfile(info)
    if info.isdir():
        for name in sorted(os.listdir(path)):
            _tar_add(tar, os.path.join(path, name), f"{arcname.rstrip('/')}/{name}")


def _xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in sorted(names):
        if name.startswith(("trusted.overlay.", "security.selinux")):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False).decode("utf-8", "surrogateescape")
        except OSError:
            continue
    return out


def _open_tar_writer(out: BinaryIO) -> tarfile.TarFile:
    return tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)


def _without_name_lookups() -> None:
    # tarfile asks pwd/grp for names; inside the container that would load the container's NSS
    # libraries into this (root, host) process.
    tarfile.pwd = None
    tarfile.grp = None


# --- the worker ---------------------------------------------------------------------------------------
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
    with _open_tar_writer(out) as tar:
        _tar_add(tar, path if stat.S_ISDIR(st.st_mode) else path.rstrip("/"), arcname)


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
    os.chroot(target)
    os.chdir("/")


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
    _without_name_lookups()
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


# --- the caller's side of a worker ---------------------------------------------------------------------
class _Worker:
    """One worker run: the job, the root it works in, its data pipes and its status."""

    def __init__(self, view: ContainerFiles, job: dict, *, writable: bool = False, running_view: bool = True):
        self.view = view
        self.job = dict(job, parent=os.getpid(), label=view.label)
        self.writable = writable
        self.running_view = running_view and view.pid is not None
        self.scratch: str | None = None
        self.pidfd = -1
        self.proc: subprocess.Popen | None = None
        self.status_r = -1

    def _root(self) -> dict:
        if self.running_view:
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
        if self.writable:
            lowers = self.view.lower_dirs
            if not lowers:                  # an image without layers: overlay still needs a lower dir
                lowers = (os.path.join(self.scratch, "empty"),)
                os.mkdir(lowers[0], 0o755)
            plan = plan_overlay(lowers, self.view.upper_dir, self.view.work_dir, os.path.join(self.scratch, "l"),
                                kernel_feature_options())
        else:
            layers = (self.view.upper_dir, *self.view.lower_dirs)
            if len(layers) == 1:
                return {"mountpoint": mountpoint, "bind": layers[0]}
            plan = plan_overlay(layers, None, None, os.path.join(self.scratch, "l"), kernel_feature_options())
        create_links(plan)
        return {"mountpoint": mountpoint, "options": plan.options, "cwd": plan.cwd}

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


def _run_simple(view: ContainerFiles, job: dict, **kw) -> dict:
    worker = _Worker(view, job, **kw)
    worker.start()
    return worker.finish()


def _read_from(view: ContainerFiles, job: dict, consume, **kw) -> int:
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


def _write_to(view: ContainerFiles, job: dict, produce, **kw) -> int:
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


def _container_path(path: str) -> str:
    if not path:
        raise ContainerError("destination can not be empty")
    return preserve_trailing(_clean(os.path.join("/", path)), path)


def stat_path(view: ContainerFiles, path: str) -> dict:
    """lstat of ``path`` in the container (symlinks before the last element resolved inside it)."""
    return _run_simple(view, {"op": "stat", "path": _container_path(path)})["stat"]


def _copy_stream(src: BinaryIO, dst: BinaryIO) -> None:
    while chunk := src.read(_CHUNK):
        dst.write(chunk)
    dst.flush()


# --- the API ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CopyStats:
    """What ``docker cp`` reports: the content's size and the bytes of tar that crossed over."""

    content: int
    transferred: int

    def summary(self, dest: str) -> str:
        """docker's closing line (on stderr): ``Successfully copied 2.05kB to /tmp/x``."""
        if self.content != self.transferred:
            return (f"Successfully copied {human_size(self.content)} (transferred {human_size(self.transferred)}) "
                    f"to {dest}")
        return f"Successfully copied {human_size(self.content)} to {dest}"


def human_size(size: float) -> str:
    """go-units' HumanSizeWithPrecision(size, 3): decimal units, three significant digits."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
    index = 0
    while size >= 1000 and index < len(units) - 1:
        size /= 1000
        index += 1
    return f"{size:.3g}{units[index]}"


def copy_out(view: ContainerFiles, path: str, dest: str, *, follow_link: bool = False,
             stdout: BinaryIO | None = None) -> CopyStats:
    """``docker cp CONTAINER:path dest``: ``dest`` a host path, or ``-`` for a tar stream on
    ``stdout`` (default: this process's).  Files on the host get the caller's uid/gid, as docker's.
    Returns the sizes docker's summary line shows."""
    if not path:
        raise ContainerError("source can not be empty")
    src_path = _container_path(path)
    info = stat_path(view, src_path)
    if not info["exists"]:
        raise ContainerError(f"Could not find the file {path}{view.label}")
    rebase_name = ""
    if follow_link and info["is_link"]:
        target = info["link"]
        if not target.startswith("/"):
            target = os.path.join(split_dir_entry(src_path)[0], target)
        resolved = _clean(target)
        if _specifies_current_dir(src_path) and not _specifies_current_dir(resolved):
            resolved += "/."
        if src_path.endswith("/") and not resolved.endswith("/"):
            resolved += "/"
        if go_base(src_path) != go_base(resolved):
            rebase_name = go_base(src_path)
        src_path = resolved
        info = stat_path(view, src_path)
        if not info["exists"]:
            raise ContainerError(f"Could not find the file {path}{view.label}")
    job = {"op": "tar", "path": src_path}
    if dest == "-":
        out = stdout if stdout is not None else sys.stdout.buffer
        if rebase_name:
            sent = _read_from(view, job, lambda pipe: _rebase_stream(pipe, out, go_base(src_path), rebase_name))
        else:
            sent = _read_from(view, job, lambda pipe: _copy_stream(pipe, out))
        return CopyStats(sent, sent)
    dest = os.path.abspath(dest) + ("/" if dest.endswith("/") and dest != "/" else "")
    src = CopyInfo(src_path, True, info["is_dir"], rebase_name)
    dst = host_destination(dest)
    dst_dir, rename = prepare_copy(src, dst)
    if rebase_name:
        first = rebaser(split_dir_entry(src_path)[1], rebase_name)
        rename = (lambda name: rename_after(first(name))) if (rename_after := rename) else first
    sent = _read_from(view, job, lambda pipe: extract(pipe, dst_dir, rename=rename, keep_owner=False))
    return CopyStats(sent if info["is_dir"] else info["size"], sent)


def _rebase_stream(src: BinaryIO, out: BinaryIO, old: str, new: str) -> None:
    rename = rebaser(old, new)
    with tarfile.open(fileobj=src, mode="r|") as tin, tarfile.open(fileobj=out, mode="w|",
                                                                   format=tarfile.PAX_FORMAT) as tout:
        for member in tin:
            member.name = rename(member.name)
            if member.islnk():
                member.linkname = rename(member.linkname)
            tout.addfile(member, tin.extractfile(member) if member.isreg() else None)
    out.flush()


def copy_in(view: ContainerFiles, src: str, path: str, *, archive: bool = False, user: str = "",
            follow_link: bool = False, stdin: BinaryIO | None = None) -> CopyStats:
    """``docker cp src CONTAINER:path``: ``src`` a host path, or ``-`` for a tar stream read from
    ``stdin`` (default: this process's) and extracted into the directory ``path``.

    As with docker (moby's defaultTarCopyOptions, whatever its docs say), files keep the owners they
    have on the host (or in the ``-`` archive); with ``archive`` (``-a``) they belong to the
    container's configured ``user`` (resolved in its /etc/passwd and /etc/group) if it has one.
    Returns the sizes docker's summary line shows.
    """
    if not src:
        raise ContainerError("source can not be empty")
    dst_path = _container_path(path)
    info = stat_path(view, dst_path)
    dst = CopyInfo(dst_path)
    if info["exists"] and info["is_link"]:
        target = info["link"]
        if not target.startswith("/"):
            target = os.path.join(split_dir_entry(dst_path)[0], target)
        dst = CopyInfo(_clean(target))
        info = stat_path(view, dst.path)
    if info["exists"]:
        mode = info["mode"]
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise ContainerError(f'destination "{view.name}:{path}" must be a directory or a regular file')
        dst = CopyInfo(dst.path, True, stat.S_ISDIR(mode))
    job = {"op": "untar", "user": user if archive else ""}
    if src == "-":
        if not dst.is_dir:
            raise ContainerError(f'destination "{view.name}:{path}" must be a directory')
        source = stdin if stdin is not None else sys.stdin.buffer
        sent = _write_to(view, dict(job, path=dst.path), lambda pipe: _copy_stream(source, pipe), writable=True)
        return CopyStats(sent, sent)
    host_src = os.path.abspath(src) + ("/." if _specifies_current_dir(src) else "/" if src.endswith("/") else "")
    resolved, rebase_name = _host_source(host_src, follow_link)
    try:
        st = os.stat(resolved) if resolved.endswith(("/", "/.")) else os.lstat(resolved)
    except FileNotFoundError:
        raise ContainerError(f"lstat {resolved.rstrip('/')}: no such file or directory") from None
    except NotADirectoryError:
        raise ContainerError("not a directory") from None
    src_info = CopyInfo(resolved, True, stat.S_ISDIR(st.st_mode), rebase_name)
    dst_dir, rename = prepare_copy(src_info, dst)
    src_dir, src_base = split_dir_entry(resolved)
    first = rebase_name or src_base
    final = rename(first) if rename is not None else first

    source_path = os.path.join(src_dir, src_base) if src_base != "." else src_dir

    def produce(pipe):
        with _open_tar_writer(pipe) as tar:
            _tar_add(tar, source_path, final)

    sent = _write_to(view, dict(job, path=dst_dir), produce, writable=True)
    return CopyStats(_content_size(source_path), sent)


def _content_size(path: str) -> int:
    """docker's localContentSize: the sizes of the regular files at or below ``path``."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size if stat.S_ISREG(st.st_mode) else 0
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            file_st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(file_st.st_mode):
                total += file_st.st_size
    return total


def _host_source(path: str, follow_link: bool) -> tuple[str, str]:
    """Go's ResolveHostSourcePath: symlinks before the last element resolved; the last one too with
    ``follow_link`` (the entries then keep the name asked for)."""
    if follow_link:
        resolved = os.path.realpath(path)
        if _specifies_current_dir(path) and not _specifies_current_dir(resolved):
            resolved += "/."
        if path.endswith("/") and not resolved.endswith("/"):
            resolved += "/"
        return resolved, go_base(path) if go_base(path) != go_base(resolved) else ""
    dirname, base = split_dir_entry(path)
    resolved = os.path.join(os.path.realpath(dirname), base)
    if path.endswith("/"):
        resolved += "/"
    return resolved, ""


def export(view: ContainerFiles, out: BinaryIO) -> None:
    """``docker export``: the container's filesystem (image layers + writable layer, no volumes or
    /proc) flattened into one tar on ``out``."""
    _read_from(view, {"op": "export"}, lambda pipe: _copy_stream(pipe, out), running_view=False)


# --- commit ----------------------------------------------------------------------------------------
def _copy_tree(src: str, dst: str) -> None:
    """Copy an overlay upper dir exactly: modes, owners, times, xattrs (opaque markers included),
    whiteouts (0/0 char devices), fifos, devices, symlinks and hardlinks."""
    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, os.stat_result]] = []

    def copy_attrs(source: str, target: str, st: os.stat_result) -> None:
        for name in os.listxattr(source, follow_symlinks=False):
            try:
                os.setxattr(target, name, os.getxattr(source, name, follow_symlinks=False), follow_symlinks=False)
            except OSError:
                pass
        os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(target, stat.S_IMODE(st.st_mode))

    def walk(source: str, target: str) -> None:
        for entry in sorted(os.scandir(source), key=lambda e: e.name):
            s, t = entry.path, os.path.join(target, entry.name)
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if not stat.S_ISDIR(mode) and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in links:
                    os.link(links[key], t, follow_symlinks=False)
                    continue
                links[key] = t
            if stat.S_ISDIR(mode):
                os.mkdir(t, 0o700)
                walk(s, t)
                dirs.append((t, st))
                copy_attrs(s, t, st)
                continue
            if stat.S_ISREG(mode):
                shutil.copyfile(s, t, follow_symlinks=False)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(s), t)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                os.mknod(t, mode, st.st_rdev)
            else:
                continue            # sockets are not part of a layer
            copy_attrs(s, t, st)
            os.utime(t, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    walk(src, dst)
    for path, st in dirs:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    root = os.lstat(src)
    os.utime(dst, ns=(root.st_atime_ns, root.st_mtime_ns))


class _Paused:
    """docker commit's pause: the container's freezer cgroup (v1 ``freezer.state`` or v2
    ``cgroup.freeze``) frozen while its layer is copied -- only a cgroup of its own: freezing one
    that holds us (ours or an ancestor) would freeze this process too."""

    def __init__(self, pid: int | None):
        self.files: list[tuple[str, str, str]] = []
        if pid is None:
            return
        from builder.sandbox.enter import cgroup_procs_files

        try:
            theirs = [os.path.dirname(p) for p in cgroup_procs_files(pid)]
            ours = [os.path.dirname(p) for p in cgroup_procs_files(os.getpid())]
        except OSError:
            return
        for directory in theirs:
            if any(mine == directory or mine.startswith(directory + "/") for mine in ours):
                continue
            if os.path.exists(os.path.join(directory, "freezer.state")):
                self.files.append((os.path.join(directory, "freezer.state"), "FROZEN", "THAWED"))
            elif os.path.exists(os.path.join(directory, "cgroup.freeze")):
                self.files.append((os.path.join(directory, "cgroup.freeze"), "1", "0"))

    def __enter__(self):
        for path, frozen, _ in self.files:
            with open(path, "w") as fh:
                fh.write(frozen)
        for path, frozen, _ in self.files:
            state = path if path.endswith("freezer.state") else os.path.join(os.path.dirname(path), "cgroup.events")
            want = "FROZEN" if frozen == "FROZEN" else "frozen 1"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with open(state) as fh:
                    if want in fh.read():
                        break
                time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        for path, _, thawed in self.files:
            with open(path, "w") as fh:
                fh.write(thawed)


def commit(store, view: ContainerFiles, image_id: str, *, changes=(), message: str = "", author: str = "",
           pause: bool = True, container_config=None, created_by: str | None = None) -> str:
    """``docker commit``: the container's writable layer as one new layer on top of ``image_id``.

    The config is ``container_config`` (the container's, as it was created; default: the image's)
    edited by ``changes`` (Dockerfile instructions: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
    USER, VOLUME, WORKDIR).  As docker's: the history gains an entry with ``created_by`` (default:
    the container's CMD joined by spaces), ``message`` and ``author``; the image's author is
    ``author``; an unchanged container adds no layer (the entry is then an empty_layer one).
    ``pause`` freezes the container's own freezer cgroup while its layer is copied.
    Returns the new image id.
    """
    from dataclasses import replace

    from ..image.config import History, RootFS, format_timestamp
    from ..images.changes import apply_changes, parse_changes
    from ..images.layers import commit_directory
    from ..images.service import load_config, store_config

    instructions = parse_changes(list(changes))         # bad --change values fail before any work
    base = load_config(store, image_id)
    container = container_config if container_config is not None else base.config
    config = apply_changes(container, instructions)
    tmp = str(store.prepare_snapshot())
    try:
        with _Paused(view.pid if pause else None):
            _copy_tree(view.upper_dir, tmp)
    except BaseException:
        store.abort_snapshot(tmp)
        raise
    diff_id = commit_directory(store, tmp)
    diff_ids = (*base.diff_ids, diff_id) if diff_id else tuple(base.diff_ids)
    created = format_timestamp(time.time_ns())
    history = History(created=created, created_by=" ".join(container.cmd) if created_by is None else created_by,
                      author=author, comment=message, empty_layer=diff_id is None)
    image = replace(base, created=created, author=author, config=config, rootfs=RootFS(diff_ids=diff_ids),
                    history=(*base.history, history))
    return store_config(store, image, diff_ids, meta={"source": "commit"})


__all__ = [
    "ContainerFiles",
    "CopyInfo",
    "CopyStats",
    "commit",
    "copy_in",
    "copy_out",
    "export",
    "extract",
    "host_destination",
    "human_size",
    "prepare_copy",
    "preserve_trailing",
    "rebaser",
    "split_dir_entry",
    "stat_path",
    "worker_main",
]
