"""``exec``: run one more process inside a running container, as ``runc exec`` does.

``run_in(pid, spec)`` starts a fresh, single-threaded interpreter (``enter_init``) that joins the
cgroups of the container's process ``pid``, then all of its namespaces at once through a pidfd
(ipc, uts, net, pid, cgroup, mnt: the mount namespace puts root and cwd at the container's root), and
forks: the child is in the container's pid namespace.  The child resolves the user from the
container's own /etc/passwd and /etc/group, applies the security profile (capabilities, seccomp,
no_new_privs) and execs.  With a tty it opens a pty of the container's devpts and hands the master to
the caller over a socket, exactly as ``sandbox.run`` does.

The target is held by a pidfd from the first look on, and checked against its start time when the
caller knows it, so a pid that was reused by another process is never entered.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields

from .caps import DEFAULT_MASK
from .errors import SandboxError
from .spec import OUTPUT_MODES, STDERR_MODES, STDIN_MODES

_BOOT = ("import os,sys;sys.path.insert(0,os.environ.pop('PYBUILD_SANDBOX_PATH'));"
         "import builder.sandbox.enter_init as i;i.main()")
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_ALL_CAPS = (1 << 64) - 1


class ExecError(SandboxError):
    """The command could not be started in the container; ``exit_code`` is what docker reports
    (126: cannot be invoked, 127: not found)."""

    def __init__(self, message: str, exit_code: int = 126):
        super().__init__(message)
        self.exit_code = exit_code


class ExecTimeout(SandboxError):
    """The command ran longer than ``run_in``'s timeout and was killed."""


class _Deadline:
    """Looks like the ``threading.Event`` ``_Streams`` polls: set once ``cancel`` is, or the time is up."""

    def __init__(self, cancel, deadline: float | None):
        self.cancel, self.deadline = cancel, deadline

    def is_set(self) -> bool:
        if self.cancel is not None and self.cancel.is_set():
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline


class NotRunningError(SandboxError):
    """The target process is gone (or its pid now names another process)."""


@dataclass(frozen=True, slots=True)
class EnterSpec:
    """What to run in the container and with which privileges.

    ``caps`` is the capability mask the process keeps (Docker's default set unless the container was
    started with --cap-add/--cap-drop); ``privileged`` keeps every capability and turns seccomp off;
    ``seccomp`` loads Docker's default filter for ``caps``.  ``stdin``/``stdout``/``stderr`` take
    ``RunSpec``'s modes; with ``tty`` they are ignored (the pty is all three).  ``detach``
    (``exec -d``): ``run_in`` returns once the command runs (exit code 0), stdio on /dev/null, and
    the command lives on in the container."""

    argv: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = ""
    tty: bool = False
    stdin: str = "null"
    stdout: str = "pipe"
    stderr: str = "pipe"
    privileged: bool = False
    caps: int = DEFAULT_MASK
    seccomp: bool = True
    no_new_privs: bool = False
    detach: bool = False

    def __post_init__(self):
        for name in ("argv", "env"):
            if not isinstance(getattr(self, name), tuple):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.argv or not self.argv[0]:
            raise SandboxError("no command given to exec")
        for item in self.env:
            if "=" not in item or item.startswith("=") or "\0" in item:
                raise SandboxError(f"invalid environment entry {item!r}: want KEY=value")
        if self.detach and self.tty:
            raise SandboxError("a detached exec cannot have a terminal")
        if not self.cwd.startswith("/"):
            raise ExecError("OCI runtime exec failed: exec failed: Cwd must be an absolute path: unknown", 126)
        for what, value, allowed in (("stdin", self.stdin, STDIN_MODES), ("stdout", self.stdout, OUTPUT_MODES),
                                     ("stderr", self.stderr, STDERR_MODES)):
            if value not in allowed:
                raise SandboxError(f"invalid {what} {value!r}: want one of {', '.join(allowed)}")

    @property
    def cap_mask(self) -> int:
        return _ALL_CAPS if self.privileged else self.caps

    @property
    def use_seccomp(self) -> bool:
        return self.seccomp and not self.privileged

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EnterSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# --- the target -------------------------------------------------------------------------------------
def process_start_time(pid: int, proc: str = "/proc") -> int:
    """The start time of ``pid`` (clock ticks after boot, field 22 of /proc/<pid>/stat): with the pid,
    it names one process for good -- record both when a container starts."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as fh:
            data = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        raise NotRunningError(f"process {pid} is not running") from None
    return int(data[data.rindex(b")") + 2:].split()[19])


def open_target(pid: int, start_time: int | None = None) -> int:
    """A pidfd for ``pid``, after checking (when given) that it is still the process started at
    ``start_time``.  Raises ``NotRunningError`` otherwise."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise NotRunningError(f"process {pid} is not running") from None
    try:
        if start_time is not None and process_start_time(pid) != start_time:
            raise NotRunningError(f"process {pid} is not running (its pid now names another process)")
        ensure_alive(pidfd, pid)
    except BaseException:
        os.close(pidfd)
        raise
    return pidfd


def ensure_alive(pidfd: int, pid: int) -> None:
    """What was read from /proc/<pid> before this call belongs to the pidfd's process."""
    try:
        signal.pidfd_send_signal(pidfd, 0)
    except ProcessLookupError:
        raise NotRunningError(f"process {pid} is not running") from None


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def cgroup_procs_files(pid: int, proc: str = "/proc", base: str = "/sys/fs/cgroup") -> tuple[str, ...]:
    """The cgroup.procs file of every hierarchy ``pid`` is in, as host paths (what ``runc exec``
    joins): each line of /proc/<pid>/cgroup matched with the cgroup mount under ``base`` that shows
    that hierarchy, the path taken relative to the mount's root (a nested mount shows a subtree)."""
    with open(f"{proc}/{pid}/cgroup") as fh:
        memberships = [line.rstrip("\n").split(":", 2) for line in fh if line.count(":") >= 2]
    mounts = []
    with open(f"{proc}/self/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            parts, tail = left.split(), right.split()
            if len(parts) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
                continue
            point = _unescape(parts[4])
            if point != base and not point.startswith(base + "/"):
                continue
            mounts.append((tail[0], set(tail[2].split(",")), _unescape(parts[3]), point))
    out = []
    for _, controllers, path in memberships:
        wanted = {c for c in controllers.split(",") if c}
        for fstype, options, root, point in mounts:
            if (fstype == "cgroup2") != (not wanted) or not wanted <= options:
                continue
            if path != root and not path.startswith(root.rstrip("/") + "/"):
                continue
            rel = path[len(root):].lstrip("/")
            out.append(os.path.join(point, rel, "cgroup.procs"))
            break
    return tuple(dict.fromkeys(out))


def bounding_set(pid: int, proc: str = "/proc") -> int:
    """The capability bounding set of ``pid`` (CapBnd in /proc/<pid>/status)."""
    try:
        with open(f"{proc}/{pid}/status") as fh:
            for line in fh:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except (FileNotFoundError, ProcessLookupError):
        raise NotRunningError(f"process {pid} is not running") from None
    return 0


def check_capabilities(spec: EnterSpec, pid: int) -> None:
    """An exec cannot hold a capability the container's bounding set lacks: runc fails to apply it
    (``exec --privileged`` in a container that is not privileged), and so do we."""
    from .caps import last_cap

    wanted = spec.cap_mask & ((1 << (last_cap() + 1)) - 1)
    if wanted & ~bounding_set(pid):
        raise ExecError("OCI runtime exec failed: exec failed: unable to start container process: unable to apply "
                        "caps: operation not permitted: unknown", 126)


# --- errors ---------------------------------------------------------------------------------------
def exec_failure(text: str) -> ExecError:
    """A start failure worded and numbered as ``docker exec`` reports it (moby's
    setExitCodeFromError over runc's message)."""
    if not text.startswith("unable to start container process"):
        text = f"unable to start container process: {text}"
    message = f"OCI runtime exec failed: exec failed: {text}: unknown"
    lower = message.lower()
    if "permission denied" in lower:
        return ExecError(message, 126)
    if "is a directory" in lower:
        return ExecError(f"{message}: permission denied", 126)
    if "not a directory" in lower:
        return ExecError(f"{message}: Are you trying to mount a directory onto a file (or vice-versa)? Check if "
                         "the specified host path exists and is the expected type", 127)
    if "executable file not found" in lower or "no such file or directory" in lower:
        return ExecError(message, 127)
    return ExecError(message, 126)


# --- running ----------------------------------------------------------------------------------------
def _spec_fd(pid: int, spec: EnterSpec, procs: tuple[str, ...]) -> int:
    import json

    fd = os.memfd_create("pybuild-exec", os.MFD_CLOEXEC)
    os.write(fd, json.dumps({"pid": pid, "spec": spec.to_dict(), "cgroup_procs": list(procs),
                                "parent": os.getpid()}).encode())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def run_in(pid: int, spec: EnterSpec, *, on_console=None, on_output=None, stdin_data: bytes | None = None,
           start_time: int | None = None, timeout: float | None = None, cancel=None):
    """Run ``spec`` in the container whose process is ``pid`` (normally its pid 1) and wait for it.

    Output, stdin and the tty work as in ``sandbox.run``: ``on_output(stream, chunk)`` or collected
    in the result, ``stdin_data`` for ``stdin="pipe"``, ``on_console(master_fd)`` for a tty.
    ``start_time`` (``process_start_time`` when the container started) guards against pid reuse.
    Returns a ``RunResult`` (exit code, 128+N for signal N); raises ``NotRunningError`` if the
    process is gone and ``ExecError`` (with docker's text and exit code) if the command cannot start.
    After ``timeout`` seconds (a HEALTHCHECK's) or once ``cancel`` (a ``threading.Event``) is set, the
    command and its process group are killed and ``ExecTimeout``/``SandboxError`` raised.
    """
    from .process import RunResult, _bytecode_options, _kill, _Streams

    if spec.tty != (on_console is not None):
        raise SandboxError("a tty exec needs an on_console callback (it receives the pty master), and only a "
                           "tty exec takes one")
    started = time.monotonic()
    pidfd = open_target(pid, start_time)
    fds: list[int] = [pidfd]
    try:
        check_capabilities(spec, pid)
    except BaseException:
        os.close(pidfd)
        raise
    proc = streams = None
    ours = theirs = None
    try:
        try:
            procs = cgroup_procs_files(pid)
        except FileNotFoundError:
            raise NotRunningError(f"process {pid} is not running") from None
        ensure_alive(pidfd, pid)
        spec_fd = _spec_fd(pid, spec, procs)
        fds.append(spec_fd)
        status_r, status_w = os.pipe()
        fds += [status_r, status_w]
        if spec.tty:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            stdin, stdout, stderr = subprocess.DEVNULL, subprocess.DEVNULL, None
        elif spec.detach:
            stdin = stdout = stderr = subprocess.DEVNULL
        else:
            stdin = {"null": subprocess.DEVNULL, "inherit": None, "pipe": subprocess.PIPE}[spec.stdin]
            stdout = {"inherit": None, "pipe": subprocess.PIPE}[spec.stdout]
            stderr = {"inherit": None, "pipe": subprocess.PIPE, "stdout": subprocess.STDOUT}[spec.stderr]
        console_fd = theirs.fileno() if theirs is not None else -1
        passed = (pidfd, spec_fd, status_w) + ((console_fd,) if console_fd >= 0 else ())
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", *_bytecode_options(), "-c", _BOOT, str(pidfd), str(spec_fd), str(status_w),
             str(console_fd)],
            stdin=stdin, stdout=stdout, stderr=stderr, pass_fds=passed, cwd="/",
            env={"PYBUILD_SANDBOX_PATH": _PACKAGE_ROOT}, process_group=0)
        for fd in (pidfd, spec_fd, status_w):
            os.close(fd)
            fds.remove(fd)
        if theirs is not None:
            theirs.close()
            theirs = None
        streams = _Streams(proc, status_r, on_output, stdin_data, ours, on_console)
        if timeout is not None or cancel is not None:
            streams.cancel = _Deadline(cancel, None if timeout is None else started + timeout)
        try:
            streams.pump()
        except SandboxError:
            if timeout is not None and time.monotonic() >= started + timeout:
                raise ExecTimeout(f"the command did not finish within {timeout:g}s") from None
            raise
        returncode = proc.wait()
    except BaseException:
        _kill(proc, streams)
        raise
    finally:
        if streams is not None:
            streams.close()
        for sock in (ours, theirs):
            if sock is not None:
                sock.close()
        for fd in fds:
            os.close(fd)
        if proc is not None:
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None and not pipe.closed:
                    pipe.close()
    return _result(streams, returncode, time.monotonic() - started, RunResult)


def _result(streams, returncode: int, duration: float, result_type):
    out, err = bytes(streams.buffers["stdout"]), bytes(streams.buffers["stderr"])
    for message in streams.messages:
        if "gone" in message:
            raise NotRunningError(message["gone"])
        if "user_error" in message:
            raise ExecError(message["user_error"], 126)
        if "exec_error" in message:
            raise exec_failure(message["exec_error"])
        if "error" in message:
            raise SandboxError(message["error"])
    for message in streams.messages:
        if "started" in message:
            return result_type(0, None, out, err, duration)
        if "exit" in message:
            return result_type(int(message["exit"]), None, out, err, duration)
        if "signal" in message:
            sig = int(message["signal"])
            return result_type(128 + sig, sig, out, err, duration)
    raise SandboxError(f"exec ended without a status (exit code {returncode})")


__all__ = [
    "EnterSpec",
    "ExecError",
    "ExecTimeout",
    "NotRunningError",
    "cgroup_procs_files",
    "exec_failure",
    "open_target",
    "process_start_time",
    "run_in",
]
