"""``ps --filter`` / ``container prune --filter``: docker's container filters."""

from __future__ import annotations

import fnmatch
from typing import Callable

from .errors import ContainerError
from .records import ContainerConfig, ContainerState

_KEYS = ("id", "name", "status", "label", "exited", "ancestor", "health", "until", "before", "since", "network",
         "volume")


def container_filter(values) -> Callable[[ContainerConfig, ContainerState], bool]:
    wanted: dict[str, list[str]] = {}
    for value in values:
        key, eq, arg = value.partition("=")
        if not eq or key not in _KEYS:
            raise ContainerError(f"invalid filter '{value}'" if eq else "bad format of filter (expected name=value)")
        wanted.setdefault(key, []).append(arg)

    def match(config: ContainerConfig, state: ContainerState) -> bool:
        for key, args in wanted.items():
            if key == "id" and not any(config.id.startswith(a) for a in args):
                return False
            if key == "name" and not any(a.lstrip("/") in config.name for a in args):
                return False
            if key == "status" and state.status not in args:
                return False
            if key == "exited" and not (state.status == "exited" and str(state.exit_code) in args):
                return False
            if key == "label" and not all(_label(config.labels, a) for a in args):
                return False
            if key == "ancestor" and not any(a in (config.image, config.image_id) or
                                             config.image_id.split(":")[-1].startswith(a) for a in args):
                return False
            if key == "health" and (state.health or {}).get("Status", "none") not in args:
                return False
            if key == "network" and config.network not in args:
                return False
            if key == "volume" and not any(a in config.volumes or any(m.destination == a for m in config.mounts)
                                           for a in args):
                return False
        return True

    return match


def _label(labels: dict, arg: str) -> bool:
    key, eq, value = arg.partition("=")
    if key not in labels:
        return False
    return not eq or fnmatch.fnmatchcase(labels[key], value)


__all__ = ["container_filter"]
