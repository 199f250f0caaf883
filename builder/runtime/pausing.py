"""``pause`` / ``unpause``: freeze every process of a container through its cgroup (v1 ``freezer.state``,
v2 ``cgroup.freeze``), as runc does.  A frozen container cannot take signals, so stop, kill and rm thaw
it first."""

from __future__ import annotations

import os
import time

from .containers import ContainerStore
from .errors import ContainerConflict, ContainerError
from .records import read_json

FREEZE_WAIT = 10.0


def _freeze_files(root, container_id: str) -> list[tuple[str, str, str, str, str]]:
    """(control file, frozen value, thawed value, state file, frozen marker) of each hierarchy."""
    from ..sandbox.cgroups import Cgroup

    try:
        name = read_json(ContainerStore(root).path(container_id, "start.json")).get("cgroup", "")
    except (OSError, ValueError):
        name = ""
    if not name:
        return []
    out = []
    for _, directory in Cgroup.open(name).dirs:
        v1 = os.path.join(directory, "freezer.state")
        v2 = os.path.join(directory, "cgroup.freeze")
        if os.path.exists(v1):
            out.append((v1, "FROZEN", "THAWED", v1, "FROZEN"))
        elif os.path.exists(v2):
            out.append((v2, "1", "0", os.path.join(directory, "cgroup.events"), "frozen 1"))
    return out


def set_frozen(root, container_id: str, frozen: bool) -> None:
    files = _freeze_files(root, container_id)
    if not files:
        raise ContainerError(f"container {container_id[:12]} has no freezer cgroup", container_id)
    for control, on, off, _, _ in files:
        with open(control, "w") as fh:
            fh.write(on if frozen else off)
    if frozen:
        deadline = time.monotonic() + FREEZE_WAIT
        for _, _, _, state_file, marker in files:
            while time.monotonic() < deadline:
                with open(state_file) as fh:
                    if marker in fh.read():
                        break
                time.sleep(0.005)
    ContainerStore(root).update_state(container_id, paused=frozen)


def pause(root, container_id: str) -> None:
    from .lifecycle import monitor_alive

    state = ContainerStore(root).state(container_id)
    if state.status != "running" or not monitor_alive(state):
        raise ContainerConflict(f"Container {container_id} is not running", container_id)
    if state.paused:
        raise ContainerConflict(f"Container {container_id} is already paused", container_id)
    set_frozen(root, container_id, True)


def unpause(root, container_id: str) -> None:
    state = ContainerStore(root).state(container_id)
    if not state.paused:
        raise ContainerConflict(f"Container {container_id} is not paused", container_id)
    set_frozen(root, container_id, False)


def thaw_if_paused(root, container_id: str) -> None:
    """Before a signal: a frozen process would never act on it."""
    if ContainerStore(root).state(container_id).paused:
        try:
            set_frozen(root, container_id, False)
        except (ContainerError, OSError):
            pass


__all__ = ["pause", "unpause", "thaw_if_paused", "set_frozen"]
