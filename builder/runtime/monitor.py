"""The monitor: one small process per running container, as podman's conmon.

Started by ``pybuild start``/``run`` in a session of its own, it outlives the command: it runs the
container's sandbox, writes its output to the log and to attached clients, records the exit code (and
OOM kills) in ``state.json``, restarts by policy, runs HEALTHCHECK probes, and when the container is done
for good releases what it held (network endpoint, cgroup) and, with ``--rm``, removes it.

The sandbox's processes die with the monitor (PDEATHSIG): a monitor killed with SIGKILL leaves a
"running" state whose monitor is gone, which the next pybuild command notices (``lifecycle.reconcile``)
and cleans up the same way.

Forked from the command that starts the container (``lifecycle``); it reports on READY_FD as JSON lines: ``{"listening": 1}`` once clients may attach, then ``{"pid": N}`` when
the container runs or ``{"error": text, "exit": code}`` when it could not start.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

from .attach import STDOUT, STREAMS, AttachServer
from .containers import ContainerStore
from .logs import LogWriter
from .records import now_rfc3339, read_json

ATTACH_WAIT = 10.0


def process_start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat (clock ticks since boot): with the pid, names one process for good."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return 0
    return int(data[data.rindex(b")") + 2:].split()[19])


def is_alive(pid: int, start: int) -> bool:
    """The process started at ``start`` still runs (a zombie waiting for its reaper does not count)."""
    if pid <= 0 or start <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0] not in (b"Z", b"X") and int(fields[19]) == start


class Monitor:
    def __init__(self, root: str, container_id: str, ready_fd: int):
        self.root = root
        self.id = container_id
        self.store = ContainerStore(root)
        self.config = self.store.config(container_id)
        self.dir = self.store.path(container_id)
        self.start = read_json(os.path.join(self.dir, "start.json"))
        self.ready_fd = ready_fd
        self.master = -1
        self.stdin_w = -1
        self.pid = 0
        self.started = False
        self.start_lock = threading.Lock()
        self.tty_thread: threading.Thread | None = None

    # --- talking to the command that started us --------------------------------------------------
    def report(self, **message) -> None:
        if self.ready_fd < 0:
            return
        try:
            os.write(self.ready_fd, (json.dumps(message) + "\n").encode())
        except OSError:
            pass
        if "pid" in message or "error" in message:
            os.close(self.ready_fd)
            self.ready_fd = -1

    # --- input from attached clients -------------------------------------------------------------
    def on_input(self, data: bytes) -> None:
        fd = self.master if self.config.tty else self.stdin_w
        if fd >= 0:
            try:
                os.write(fd, data)
            except OSError:
                pass

    def on_resize(self, rows: int, cols: int) -> None:
        if self.master >= 0:
            import fcntl
            import struct
            import termios

            try:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            except OSError:
                pass

    def on_close_stdin(self) -> None:
        if not self.config.tty and self.stdin_w >= 0:
            os.close(self.stdin_w)
            self.stdin_w = -1

    # --- output ------------------------------------------------------------------------------------
    def on_output(self, stream: str, data: bytes) -> None:
        self.logs.write(stream, data)
        self.server.broadcast(STREAMS[stream], data)

    def on_console(self, master: int) -> None:
        self.master = master
        rows_cols = self.start.get("winsize")
        if rows_cols:
            self.on_resize(*rows_cols)
        self.tty_thread = threading.Thread(target=self._pump_tty, args=(master,), daemon=True, name="tty")
        self.tty_thread.start()

    def _pump_tty(self, master: int) -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data:
                break
            self.logs.write("stdout", data)
            self.server.broadcast(STDOUT, data)

    def on_start(self, pid: int) -> None:
        """The sandbox's pid 1 exists (still our interpreter, setting up): watch for its exec."""
        self.pid = pid
        self.started = False
        threading.Thread(target=self._watch_exec, args=(pid,), daemon=True, name="exec-watch").start()

    def _watch_exec(self, pid: int) -> None:
        """pid 1 has exec'd the container's command once /proc/PID/exe is no longer our interpreter's
        file (compared by device and inode: the container's binary lives on its overlay)."""
        ours = os.stat(sys.executable)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                st = os.stat(f"/proc/{pid}/exe")
            except OSError:
                return                      # gone already: run_once's result decides
            if (st.st_dev, st.st_ino) != (ours.st_dev, ours.st_ino):
                self.mark_started()
                return
            time.sleep(0.001)

    def mark_started(self) -> None:
        with self.start_lock:
            if self.started or self.pid == 0:
                return
            self.started = True
        self.store.update_state(self.id, status="running", pid=self.pid, pid_start=process_start_time(self.pid),
                                monitor_pid=os.getpid(), monitor_start=process_start_time(os.getpid()),
                                started_at=now_rfc3339(), exit_code=0, oom_killed=False, error="", paused=False)
        self.report(pid=self.pid)
        if self.config.healthcheck.enabled:
            from .health import HealthProbe

            HealthProbe(self.store, self.config, self.pid).start()

    # --- the life of the container ---------------------------------------------------------------
    def run_once(self, spec) -> tuple[int, str]:
        from ..sandbox import SandboxError, run

        self.master = -1
        try:
            if spec.tty:
                result = run(spec, on_console=self.on_console, on_start=self.on_start, fork=True)
            else:
                result = run(spec, on_output=self.on_output, on_start=self.on_start, fork=True)
        except SandboxError as err:
            return _exit_code_for(err.message), err.message
        finally:
            if self.tty_thread is not None:
                self.tty_thread.join(5.0)
                self.tty_thread = None
            if self.master >= 0:
                os.close(self.master)
                self.master = -1
            self.logs.flush()
        return result.exit_code, ""

    def main(self) -> int:
        from ..sandbox import init  # noqa: F401 - loaded once here, used by every forked sandbox
        from ..sandbox.spec import RunSpec

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        spec = RunSpec.from_dict(self.start["spec"])
        self.logs = LogWriter(os.path.join(self.dir, "ctr.log"))
        if self.config.open_stdin and not self.config.tty:
            read_end, self.stdin_w = os.pipe()
            os.dup2(read_end, 0)            # the sandbox inherits our stdin: the container reads the pipe
            os.close(read_end)
        self.server = AttachServer(os.path.join(self.dir, "attach.sock"), self.on_input, self.on_resize,
                                   self.on_close_stdin)
        self.report(listening=1)
        if self.start.get("wait_attach"):
            self.server.first_client.wait(ATTACH_WAIT)
        policy = self.config.restart
        delay = 0.1
        while True:
            started = time.monotonic()
            self.pid = 0
            code, error = self.run_once(spec)
            if error and not self.started:  # never ran: docker leaves it "created", with the error
                self.pid = 0
                self.store.update_state(self.id, status="created", exit_code=code, error=error, pid=0)
                self.report(error=error, exit=code)
                self.finish(code)
                return code
            self.mark_started()             # exited before the watcher saw the exec
            state = self.store.state(self.id)
            oom = _oom_killed(self.start.get("cgroup", ""))
            count = state.restart_count
            again = not state.stop_requested and (
                policy.name in ("always", "unless-stopped")
                or (policy.name == "on-failure" and code != 0
                    and (policy.max_retries == 0 or count < policy.max_retries)))
            self.store.update_state(self.id, status="restarting" if again else "exited", exit_code=code,
                                    oom_killed=oom, finished_at=now_rfc3339(), pid=0, pid_start=0,
                                    error=error, restart_count=count + (1 if again else 0), paused=False)
            self.started = False
            if not again:
                self.finish(code)
                return code
            delay = 0.1 if time.monotonic() - started > 10 else min(delay * 2, 60.0)
            time.sleep(delay)
            if self.store.state(self.id).stop_requested:
                self.store.update_state(self.id, status="exited")
                self.finish(code)
                return code

    def finish(self, code: int) -> None:
        """Release what the container held, remove it with --rm, then tell attached clients."""
        from .lifecycle import release, remove_container

        self.logs.close()
        try:
            release(self.root, self.id)
            if self.config.auto_remove:
                remove_container(self.root, self.id, from_monitor=True)
        finally:
            self.server.close(code)


def _oom_killed(cgroup_name: str) -> bool:
    if not cgroup_name:
        return False
    try:
        from ..sandbox.cgroups import Cgroup

        return Cgroup.open(cgroup_name).oom_killed()
    except Exception:  # noqa: BLE001 - a missing cgroup only means no OOM record
        return False


def _exit_code_for(message: str) -> int:
    """runc's codes for a command that could not start: 127 not found, 126 not executable."""
    lowered = message.lower()
    if "not found" in lowered or "no such file" in lowered:
        return 127
    if "permission denied" in lowered or "exec format" in lowered or "is a directory" in lowered:
        return 126
    return 125


def run_monitor(root: str, container_id: str, ready_fd: int) -> None:
    """The monitor's life (in the forked process; never returns)."""
    try:
        Monitor(root, container_id, ready_fd).main()
    except BaseException as err:  # noqa: BLE001 - a monitor must always leave a state behind
        try:
            ContainerStore(root).update_state(container_id, status="exited", exit_code=125,
                                              error=f"monitor failed: {err}", pid=0, finished_at=now_rfc3339())
            os.write(ready_fd, (json.dumps({"error": f"monitor failed: {err}", "exit": 125}) + "\n").encode())
        except Exception:  # noqa: BLE001
            pass
        raise
    sys.stdout.flush()
    os._exit(0)
