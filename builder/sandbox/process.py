"""Run a ``RunSpec`` and wait for it: the parent side of the sandbox.

``run`` prepares the per-run scratch directory (generated /etc files, the stub layer, overlay link
names, the plan), starts ``builder.sandbox.init`` with ``subprocess`` and streams the command's output
to a callback (or collects it) while reading the status channel.  Every exit path -- normal, setup
error, KeyboardInterrupt, any exception -- kills what is left of the sandbox (SIGKILL to its pid 1
takes the whole pid namespace, and with it the mount namespace and every mount), removes the mount
stubs a run had to create in the upper dir and deletes the scratch directory.  The upper dir itself
stays, for layer capture.  If the parent is SIGKILLed, PDEATHSIG takes the sandbox down the same way
(only the scratch directory is then left behind).
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from . import status
from .console import ready, receive_master
from .errors import SandboxError
from .etcfiles import hosts_file, resolv_conf
from .overlay import create_links, kernel_feature_options, plan_overlay
from .paths import read_stub_record, writable_only_by_us
from .plan import SandboxPlan
from .runmounts import pack_secrets
from .rootfs import make_stub_layer
from .spec import RunLayout, RunSpec

OutputCallback = Callable[[str, bytes], None]
ConsoleCallback = Callable[[int], None]

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The sandbox's pid 1 shows this command line to the RUN (``ps``), so it names no host path: the
# package location comes in the environment and the plan as an inherited file descriptor.
_BOOT = ("import os,sys;sys.path.insert(0,os.environ.pop('PYBUILD_SANDBOX_PATH'));"
         "import builder.sandbox.init as i;i.main()")
_KILL_WAIT = 10.0


@dataclass(frozen=True, slots=True)
class RunResult:
    """How the command ended.  ``exit_code`` is what a shell would report (128+N for signal N);
    ``stdout``/``stderr`` hold the output when it was piped and no callback took it."""

    exit_code: int
    signal: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    duration: float = 0.0
    upper_dir: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def _bytecode_options() -> list[str]:
    """The init runs isolated (-I ignores PYTHON* variables), so carry over where bytecode may go: a
    parent that must not write next to its sources gets a private cache under the temp dir instead of
    recompiling the sandbox for every RUN (and no cache at all if that directory is not ours alone)."""
    if sys.pycache_prefix is not None:
        return ["-X", f"pycache_prefix={sys.pycache_prefix}"]
    if not sys.flags.dont_write_bytecode:
        return []
    prefix = os.path.join(tempfile.gettempdir(), f"pybuild-sandbox-pycache-{os.getuid()}")
    return ["-X", f"pycache_prefix={prefix}"] if writable_only_by_us(prefix) else ["-B"]


def _hold(directory: str) -> int:
    """An flock on ``directory`` for as long as the run lasts: in a store's tmp/ that marks it as owned
    by a live process (the store's sweep removes it only once its owner is gone, even after SIGKILL)."""
    import fcntl

    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _prepare_scratch(spec: RunSpec) -> tuple[SandboxPlan, str]:
    base = spec.scratch_dir or os.path.dirname(spec.work_dir.rstrip("/")) or "/"
    scratch = tempfile.mkdtemp(prefix=".pybuild-run-", dir=base)
    try:
        layout = RunLayout(scratch)
        os.mkdir(layout.rootfs, 0o755)
        os.mkdir(layout.mounts, 0o700)
        for path, text in ((layout.hosts, hosts_file(spec.hostname, spec.extra_hosts)),
                           (layout.resolv, resolv_conf(spec.network))):
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(path, 0o644)
        make_stub_layer(spec, layout)
        overlay = plan_overlay((*spec.lower_dirs, layout.stubs), spec.upper_dir, spec.work_dir, layout.links,
                               kernel_feature_options())
        create_links(overlay)
        plan = SandboxPlan(spec, layout, overlay, os.getpid())
        plan.dump(layout.plan)
        return plan, scratch
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _is_empty_stub(path: str) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        return not os.listdir(path)
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


def remove_stubs(upper_dir: str, stubs: list[str]) -> None:
    """Remove the mount stubs a run created through the merged view, newest first, as BuildKit's
    MountStubsCleaner does: only while still empty (a directory the RUN wrote into is content), keeping
    the parent directory's timestamps; then check that no empty stub is left in the layer."""
    for rel in reversed(stubs):
        path = os.path.join(upper_dir, rel.lstrip("/"))
        if not _is_empty_stub(path):
            continue
        parent = os.path.dirname(path)
        pst = os.stat(parent)
        try:
            os.rmdir(path) if stat.S_ISDIR(os.lstat(path).st_mode) else os.unlink(path)
        except OSError as err:
            raise SandboxError(f"failed to remove mount stub {rel} from the layer: {err.strerror}") from None
        os.utime(parent, ns=(pst.st_atime_ns, pst.st_mtime_ns))
    left = [rel for rel in stubs if _is_empty_stub(os.path.join(upper_dir, rel.lstrip("/")))]
    if left:
        raise SandboxError(f"mount stubs left in the layer: {', '.join(left)}")


class _Streams:
    """Pumps the child's pipes: output to the callback (or buffers), input from bytes, status lines."""

    def __init__(self, proc: subprocess.Popen, status_fd: int, on_output: OutputCallback | None,
                 stdin_data: bytes | None, console: socket.socket | None = None,
                 on_console: ConsoleCallback | None = None):
        self.sel = selectors.DefaultSelector()
        self.console = console
        self.on_console = on_console
        if console is not None:
            self.sel.register(console.fileno(), selectors.EVENT_READ, "console")
        self.on_output = on_output
        self.buffers = {"stdout": bytearray(), "stderr": bytearray()}
        self.status = bytearray()
        self.messages: list[dict] = []
        self.init_pid: int | None = None
        self.pidfd: int | None = None
        for name in ("stdout", "stderr"):
            pipe = getattr(proc, name)
            if pipe is not None:
                os.set_blocking(pipe.fileno(), False)
                self.sel.register(pipe.fileno(), selectors.EVENT_READ, name)
        self.sel.register(status_fd, selectors.EVENT_READ, "status")
        self.stdin_data = memoryview(stdin_data or b"")
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            self.sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE, "stdin")
        self.proc = proc

    cancel = None   # a threading.Event: when set, the run is abandoned (another build stage failed)
    on_start = None  # called with the pid 1's host pid once it exists (the container runtime records it)

    def pump(self) -> None:
        while self.sel.get_map():
            for key, _ in self.sel.select(None if self.cancel is None else 0.2):
                self._handle(key)
            if self.cancel is not None and self.cancel.is_set():
                raise SandboxError("the run was cancelled")

    def _handle(self, key) -> None:
        fd, name = key.fd, key.data
        if name == "console":
            self.sel.unregister(fd)
            master = receive_master(self.console)
            if master is not None:
                self.on_console(master)         # the callback owns the master from here on
                ready(self.console)
            return
        if name == "stdin":
            try:
                written = os.write(fd, self.stdin_data[:65536]) if self.stdin_data else 0
            except BrokenPipeError:
                written, self.stdin_data = 0, memoryview(b"")
            self.stdin_data = self.stdin_data[written:]
            if not self.stdin_data:
                self.sel.unregister(fd)
                self.proc.stdin.close()
            return
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            self.sel.unregister(fd)
            return
        if name == "status":
            self.status += data
            self._status_lines()
        elif self.on_output is not None:
            self.on_output(name, data)
        else:
            self.buffers[name] += data

    def _status_lines(self) -> None:
        *lines, rest = bytes(self.status).split(b"\n")
        self.status = bytearray(rest)
        for message in status.parse(b"\n".join(lines)):
            self.messages.append(message)
            if "init_pid" in message and self.init_pid is None:
                self.init_pid = int(message["init_pid"])
                try:
                    self.pidfd = os.pidfd_open(self.init_pid)
                except (OSError, AttributeError):
                    self.pidfd = None
                if self.on_start is not None:
                    self.on_start(self.init_pid)

    def close(self) -> None:
        self.sel.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def _kill(proc: subprocess.Popen | None, streams: _Streams | None) -> None:
    """SIGKILL the sandbox's pid 1 (the kernel then kills its whole pid namespace) and the monitor's
    process group, and wait until the pid 1 is really gone so its mount namespace is released."""
    if streams is not None and streams.init_pid is not None:
        try:
            if streams.pidfd is not None:
                signal.pidfd_send_signal(streams.pidfd, signal.SIGKILL)
            else:
                os.kill(streams.init_pid, signal.SIGKILL)
        except (ProcessLookupError, OSError):
            pass
    if proc is not None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
    if streams is not None and streams.pidfd is not None:
        selectors_ = selectors.DefaultSelector()
        try:
            selectors_.register(streams.pidfd, selectors.EVENT_READ)
            selectors_.select(_KILL_WAIT)
        finally:
            selectors_.close()


def _result(spec: RunSpec, streams: _Streams, returncode: int, started: float) -> RunResult:
    errors = [m["error"] for m in streams.messages if "error" in m]
    if errors:
        raise SandboxError(errors[0])
    duration = time.monotonic() - started
    out, err = bytes(streams.buffers["stdout"]), bytes(streams.buffers["stderr"])
    for message in streams.messages:
        if "exit" in message:
            return RunResult(int(message["exit"]), None, out, err, duration, spec.upper_dir)
        if "signal" in message:
            sig = int(message["signal"])
            return RunResult(128 + sig, sig, out, err, duration, spec.upper_dir)
    killed = next((m["init_signal"] for m in streams.messages if "init_signal" in m), None)
    if killed is None and returncode < 0:
        killed = -returncode
    raise SandboxError(f"the sandbox was killed by signal {killed}" if killed
                       else f"the sandbox ended without a status (exit code {returncode})")


class _ForkedInit:
    """The sandbox's first process made by ``fork`` instead of a fresh interpreter (``run(fork=True)``):
    what the container runtime's monitor uses, since it has every module loaded already.  Offers the
    part of ``Popen`` that ``run`` uses."""

    def __init__(self, argv_fds: list[str], stdin, stdout, stderr, keep: tuple[int, ...]):
        pipes = {}
        child_fds = {}
        for name, mode, fd_no in (("stdin", stdin, 0), ("stdout", stdout, 1), ("stderr", stderr, 2)):
            if mode == subprocess.PIPE:
                r, w = os.pipe()
                ours, theirs = (w, r) if fd_no == 0 else (r, w)
                pipes[name] = ours
                child_fds[fd_no] = theirs
            elif mode == subprocess.DEVNULL:
                child_fds[fd_no] = os.open(os.devnull, os.O_RDWR)
            elif mode == subprocess.STDOUT:
                child_fds[fd_no] = -2          # same as stdout
        self.pid = os.fork()
        if self.pid == 0:                       # the child: becomes the sandbox's monitor (init.main)
            try:
                os.setpgid(0, 0)
                os.chdir("/")
                for fd_no in (0, 1, 2):
                    target = child_fds.get(fd_no)
                    if target == -2:
                        os.dup2(1, 2)
                    elif target is not None:
                        os.dup2(target, fd_no)
                for fd in (*child_fds.values(), *pipes.values()):
                    if fd > 2:
                        os.close(fd)
                _close_all_but((0, 1, 2, *keep))
                for sig in range(1, signal.NSIG):
                    if sig not in (signal.SIGKILL, signal.SIGSTOP):
                        try:
                            signal.signal(sig, signal.SIG_DFL)
                        except (OSError, ValueError):
                            pass
                from . import init

                init.main(["init", *argv_fds])
            finally:
                os._exit(125)
        for fd in child_fds.values():
            if fd > 2:
                os.close(fd)
        self.stdin = os.fdopen(pipes["stdin"], "wb", buffering=0) if "stdin" in pipes else None
        self.stdout = os.fdopen(pipes["stdout"], "rb", buffering=0) if "stdout" in pipes else None
        self.stderr = os.fdopen(pipes["stderr"], "rb", buffering=0) if "stderr" in pipes else None
        self.returncode = None

    def wait(self) -> int:
        if self.returncode is None:
            while True:
                try:
                    _, status_ = os.waitpid(self.pid, 0)
                    break
                except InterruptedError:
                    continue
            self.returncode = os.waitstatus_to_exitcode(status_)
        return self.returncode


def _close_all_but(keep: tuple[int, ...]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def run(spec: RunSpec, *, on_output: OutputCallback | None = None, stdin_data: bytes | None = None,
        on_console: ConsoleCallback | None = None, secrets: Mapping[str, bytes] | None = None,
        cancel=None, on_start: Callable[[int], None] | None = None, fork: bool = False) -> RunResult:
    """Run ``spec`` to completion (or until the ``cancel`` event is set: the sandbox is then killed
    and ``SandboxError`` raised).

    Output of piped streams goes to ``on_output(stream_name, chunk)`` as it arrives, or is collected
    in the result.  ``stdin_data`` is fed to the command when ``spec.stdin == "pipe"``.  With
    ``spec.tty`` the sandbox opens a pty of its own devpts (the command's stdin, stdout, stderr and
    controlling terminal, /dev/pts/0 inside) and ``on_console(master_fd)`` is called with its master
    before the command starts: the callback owns the fd and moves the bytes (see ``terminal``).
    ``secrets`` holds the value of every ``spec.secrets`` id: they reach the sandbox through an
    anonymous memory file, never through the plan or any other file.
    Raises ``SandboxError`` when the command could not be started; a command that fails is a result.
    ``fork``: start the sandbox by forking this process instead of a fresh interpreter (faster; only for a
    caller whose other threads hold no locks the child could need, as the runtime's monitor).
    """
    missing = sorted({m.id for m in spec.secrets} - set(secrets or {}))
    if missing:
        raise SandboxError(f"no value given for secret {missing[0]!r}")
    if spec.tty != (on_console is not None):
        raise SandboxError("a tty run needs an on_console callback (it receives the pty master), and only a "
                           "tty run takes one")
    started = time.monotonic()
    plan, scratch = _prepare_scratch(spec)
    try:
        held = _hold(scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    proc: subprocess.Popen | None = None
    streams: _Streams | None = None
    status_r, status_w = os.pipe()
    plan_fd = os.open(plan.layout.plan, os.O_RDONLY | os.O_CLOEXEC)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) if spec.tty else (None, None)
    secrets_fd = -1
    try:
        if spec.secrets:
            secrets_fd = pack_secrets({m.id: bytes(secrets[m.id]) for m in spec.secrets})
        if spec.tty:
            stdin, stdout, stderr = subprocess.DEVNULL, subprocess.DEVNULL, None
        else:
            stdin = {"null": subprocess.DEVNULL, "inherit": None, "pipe": subprocess.PIPE}[spec.stdin]
            stdout = {"inherit": None, "pipe": subprocess.PIPE}[spec.stdout]
            stderr = {"inherit": None, "pipe": subprocess.PIPE, "stdout": subprocess.STDOUT}[spec.stderr]
        extra = (theirs.fileno() if theirs is not None else -1, secrets_fd)
        if fork:
            proc = _ForkedInit([str(plan_fd), str(status_w), *map(str, extra)], stdin, stdout, stderr,
                               (plan_fd, status_w, *(f for f in extra if f >= 0)))
        else:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", *_bytecode_options(), "-c", _BOOT, str(plan_fd), str(status_w),
                 *map(str, extra)],
                stdin=stdin, stdout=stdout, stderr=stderr,
                pass_fds=(plan_fd, status_w, *(f for f in extra if f >= 0)), cwd="/",
                env={"PYBUILD_SANDBOX_PATH": _PACKAGE_ROOT}, process_group=0)
        os.close(status_w)
        status_w = -1
        if theirs is not None:
            theirs.close()
        streams = _Streams(proc, status_r, on_output, stdin_data, ours, on_console)
        streams.cancel = cancel
        streams.on_start = on_start
        streams.pump()
        returncode = proc.wait()
    except BaseException:
        _kill(proc, streams)
        _cleanup(plan, scratch, streams, proc, (status_r, status_w, plan_fd, secrets_fd), quiet=True,
                 sockets=(ours, theirs), held=held)
        raise
    _cleanup(plan, scratch, streams, proc, (status_r, status_w, plan_fd, secrets_fd), quiet=False,
             sockets=(ours, theirs), held=held)
    return _result(spec, streams, returncode, started)


def _cleanup(plan: SandboxPlan, scratch: str, streams: _Streams | None, proc: subprocess.Popen | None,
             fds: tuple[int, ...], quiet: bool, sockets: tuple = (), held: int = -1) -> None:
    """Close our ends, remove mount stubs from the upper dir, delete the scratch directory.
    ``quiet`` (an exception is already on its way) keeps a cleanup failure from replacing it."""
    if streams is not None:
        streams.close()
    for sock in sockets:
        if sock is not None:
            sock.close()
    for fd in fds:
        if fd >= 0:
            os.close(fd)
    for pipe in (proc.stdin, proc.stdout, proc.stderr) if proc is not None else ():
        if pipe is not None and not pipe.closed:
            pipe.close()
    try:
        remove_stubs(plan.spec.upper_dir, read_stub_record(plan.layout.stub_record))
    except SandboxError:
        if not quiet:
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if held >= 0:
            os.close(held)


__all__ = ["run", "RunResult", "OutputCallback", "ConsoleCallback", "remove_stubs"]
