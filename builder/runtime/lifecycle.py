"""Starting, stopping, killing and removing containers, and cleaning up after dead monitors.

Every function works from what is on disk (the container's config, state and ``start.json``), so any
pybuild process can act on any container, and ``release`` can be re-run safely: it undoes the network
endpoint and the cgroup of a container whose monitor is gone, however it went.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time

from .containers import ContainerStore
from .errors import ContainerConflict, ContainerError
from .monitor import is_alive, process_start_time
from .records import ContainerState, now_rfc3339, read_json

MONITOR_START_TIMEOUT = 60.0


# --- liveness --------------------------------------------------------------------------------------
def monitor_alive(state: ContainerState) -> bool:
    return is_alive(state.monitor_pid, state.monitor_start)


def reconcile(root) -> None:
    """Make every state tell the truth: a container whose monitor died is exited (its processes died
    with the monitor, by SIGKILL: 137) and its resources are released; leftovers of containers that
    no longer exist (network endpoints, cgroups) are swept."""
    store = ContainerStore(root)
    live: set[str] = set()
    for cid in store.ids():
        state = store.state(cid)
        if state.status in ("running", "restarting") and state.monitor_pid and not monitor_alive(state):
            release(root, cid)
            store.update_state(cid, status="exited", exit_code=137, pid=0, pid_start=0,
                               finished_at=now_rfc3339(), error="the container's monitor process was killed")
        elif state.status in ("running", "restarting") and state.monitor_pid:
            live.add(cid)
        if store.state(cid).status == "removing":
            remove_container(root, cid, force=True)
    _sweep(root, live, set(store.ids()))


def _network_state_exists(root) -> bool:
    """Whether this store ever had a network endpoint (else the network code need not even load)."""
    return os.path.isdir(os.path.join(os.fspath(root), "networks"))


def _sweep(root, live: set[str], existing: set[str]) -> None:
    if _network_state_exists(root):
        from .network import NetworkManager

        try:
            NetworkManager(root).sweep(existing)
        except Exception:  # noqa: BLE001 - a sweep failure must not block the user's command
            pass
    try:
        from ..sandbox.cgroups import sweep
    except ImportError:
        return
    from .runspec import cgroup_name, store_tag

    try:
        sweep({cgroup_name(root, cid) for cid in existing}, prefix=store_tag(root) + "-")
    except Exception:  # noqa: BLE001
        pass


def release(root, container_id: str) -> None:
    """Give back the network endpoint and the cgroup (idempotent; from persisted data only)."""
    store = ContainerStore(root)
    try:
        start = read_json(store.path(container_id, "start.json"))
    except (OSError, ValueError):
        start = {}
    if start.get("network"):
        try:
            from .network import NetworkManager

            NetworkManager(root).disconnect(container_id)
        except ImportError:
            pass
    if start.get("cgroup"):
        try:
            from ..sandbox.cgroups import Cgroup

            Cgroup.open(start["cgroup"]).remove()
        except ImportError:
            pass


# --- start -----------------------------------------------------------------------------------------
class Started:
    """A monitor that is listening; ``wait()`` returns the pid once the command runs, or raises."""

    def __init__(self, container_id: str, proc, ready: int, sock_path: str):
        self.id = container_id
        self.proc = proc
        self.ready = ready
        self.sock_path = sock_path
        self.buffer = b""

    def _message(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.ready], [], [], left)[0]:
                raise ContainerError(f"the container's monitor did not answer within {timeout:.0f}s", self.id)
            chunk = os.read(self.ready, 4096)
            if not chunk:
                raise ContainerError("the container's monitor exited before the container started "
                                     f"(see {os.path.join(os.path.dirname(self.sock_path), 'monitor.log')})",
                                     self.id)
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def listening(self) -> None:
        message = self._message(MONITOR_START_TIMEOUT)
        if "error" in message:
            self._fail(message)

    def wait(self) -> int:
        try:
            message = self._message(MONITOR_START_TIMEOUT)
        finally:
            os.close(self.ready)
            self.ready = -1
        if "error" in message:
            self._fail(message)
        return int(message["pid"])

    def _fail(self, message: dict):
        err = ContainerError(message["error"], self.id)
        err.exit_code = int(message.get("exit", 125))
        raise err


def start_container(root, container_id: str, *, wait_attach: bool = False, winsize=None) -> Started:
    """Prepare the network endpoint, cgroup and sandbox spec, then hand the container to a new monitor."""
    from .runspec import prepare_start

    store = ContainerStore(root)
    state = store.state(container_id)
    if state.running and monitor_alive(state):
        raise ContainerConflict(f"container {container_id[:12]} is already running", container_id)
    start = prepare_start(root, container_id)
    start["wait_attach"] = wait_attach
    start["winsize"] = winsize
    with open(store.path(container_id, "start.json"), "w", encoding="utf-8") as fh:
        json.dump(start, fh)
    store.update_state(container_id, stop_requested=False, error="")
    ready_r, ready_w = os.pipe()
    log = os.open(store.path(container_id, "monitor.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                  0o600)
    try:
        proc = _fork_monitor(root, container_id, ready_r, ready_w, log)
    except BaseException:
        os.close(ready_r)
        release(root, container_id)
        raise
    finally:
        os.close(ready_w)
        os.close(log)
    started = Started(container_id, proc, ready_r, store.path(container_id, "attach.sock"))
    try:
        started.listening()
    except BaseException:
        release(root, container_id)
        raise
    return started


def _fork_monitor(root, container_id: str, ready_r: int, ready_w: int, log: int) -> int:
    """The monitor is this process forked twice (in a session of its own, re-parented to init): it has
    every module loaded already, so it is ready in a few milliseconds.  Only the ready pipe and the log
    stay open in it (a lease's lock fd inherited would keep the lease alive for the container's life)."""
    first = os.fork()
    if first:
        os.waitpid(first, 0)
        return first
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        os.chdir("/")
        try:
            with open("/proc/self/comm", "w") as fh:   # `ps` shows what it is
                fh.write("pybuild-monitor")
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 2 and fd != ready_w:
                try:
                    os.close(fd)
                except OSError:
                    pass
        for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        from .monitor import run_monitor

        run_monitor(os.fspath(root), container_id, ready_w)
    finally:
        os._exit(0)


# --- signals ---------------------------------------------------------------------------------------
def parse_signal(name: str | int) -> int:
    if isinstance(name, int) or str(name).isdigit():
        return int(name)
    text = str(name).upper()
    text = text if text.startswith("SIG") else "SIG" + text
    try:
        return int(getattr(signal, text))
    except AttributeError:
        raise ContainerError(f"invalid signal: {name}") from None


def _signal_pid1(state: ContainerState, sig: int) -> bool:
    if state.pid <= 0 or process_start_time(state.pid) != state.pid_start:
        return False
    try:
        os.kill(state.pid, sig)
        return True
    except ProcessLookupError:
        return False


def kill_container(root, container_id: str, sig: int = signal.SIGKILL, *, stopping: bool = True) -> None:
    store = ContainerStore(root)
    state = store.state(container_id)
    if not state.running or not monitor_alive(state):
        raise ContainerConflict(f"Cannot kill container: {container_id}: Container {container_id} is not running",
                                container_id)
    if stopping:
        state = store.update_state(container_id, stop_requested=True)
    from .pausing import thaw_if_paused

    thaw_if_paused(root, container_id)
    _signal_pid1(state, sig)


def wait_stopped(root, container_id: str, timeout: float | None) -> bool:
    """Wait until the monitor recorded the end (or is gone); False on timeout."""
    store = ContainerStore(root)
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while True:
        state = store.state(container_id)
        if state.status not in ("running", "restarting") or not monitor_alive(state):
            if state.status in ("running", "restarting"):
                reconcile(root)
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def stop_container(root, container_id: str, timeout: int | None = None) -> None:
    """STOPSIGNAL to pid 1, SIGKILL after ``timeout`` seconds (the container's stop timeout by default)."""
    store = ContainerStore(root)
    config = store.config(container_id)
    state = store.state(container_id)
    if not state.running or not monitor_alive(state):
        return
    state = store.update_state(container_id, stop_requested=True)
    from .pausing import thaw_if_paused

    thaw_if_paused(root, container_id)
    wait = config.stop_timeout if timeout is None else timeout
    if state.status == "running":
        _signal_pid1(state, parse_signal(config.stop_signal or "SIGTERM"))
    if wait_stopped(root, container_id, max(wait, 0)):
        return
    _signal_pid1(store.state(container_id), signal.SIGKILL)
    wait_stopped(root, container_id, None)


# --- remove ----------------------------------------------------------------------------------------
def remove_container(root, container_id: str, *, force: bool = False, volumes: bool = False,
                     from_monitor: bool = False) -> None:
    store = ContainerStore(root)
    config = store.config(container_id)
    state = store.state(container_id)
    if not from_monitor and state.running and monitor_alive(state):
        if not force:
            raise ContainerConflict(
                f"You cannot remove a running container {container_id}. Stop the container before attempting "
                "removal or force remove", container_id)
        store.update_state(container_id, stop_requested=True, status="removing")
        from .pausing import thaw_if_paused

        thaw_if_paused(root, container_id)
        _signal_pid1(state, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while monitor_alive(store.state(container_id)) and time.monotonic() < deadline:
            time.sleep(0.01)
        if not os.path.exists(store.path(container_id, "config.json")):
            return                              # its monitor removed it (--rm)
        if monitor_alive(store.state(container_id)):
            os.kill(store.state(container_id).monitor_pid, signal.SIGKILL)
    release(root, container_id)
    remove_volumes = volumes or config.auto_remove
    store.delete(container_id)
    _unpin(root, container_id)
    if remove_volumes and config.anonymous_volumes:
        try:
            from .volumes import VolumeStore

            volumes_store = VolumeStore(root)
            for name in config.anonymous_volumes:
                try:
                    volumes_store.remove(name, in_use={})
                except Exception:  # noqa: BLE001 - docker ignores volumes it cannot remove here
                    pass
        except ImportError:
            pass


def _unpin(root, container_id: str) -> None:
    from cache.pins import unpin
    from cache.paths import Layout
    from pathlib import Path

    unpin(Layout(Path(root)).pins, f"container-{container_id}")


__all__ = ["start_container", "stop_container", "kill_container", "remove_container", "reconcile", "release",
           "wait_stopped", "monitor_alive", "parse_signal", "Started"]
