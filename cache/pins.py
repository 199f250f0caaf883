"""Pins: named GC roots kept on disk until removed (a container pins the image it runs).

Unlike a lease, a pin does not die with its process: ``pins/<name>.json`` lists digests, and GC
keeps them for as long as the file exists.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable, ContextManager, Iterable

from .errors import StoreError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _path(directory: Path, name: str) -> Path:
    if not _NAME.match(name):
        raise StoreError(f"invalid pin name {name!r}", name)
    return directory / f"{name}.json"


def pin(directory: Path, name: str, refs: Iterable[str], guard: Callable[[], ContextManager]) -> None:
    path = _path(directory, name)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{name}.{os.getpid()}.tmp"
    with guard():
        tmp.write_text(json.dumps(sorted(set(refs))), encoding="utf-8")
        os.replace(tmp, path)


def unpin(directory: Path, name: str) -> None:
    try:
        _path(directory, name).unlink()
    except FileNotFoundError:
        pass


def scan(directory: Path) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return out
    for entry in entries:
        if entry.name.endswith(".json") and not entry.name.startswith("."):
            try:
                out[entry.name[:-5]] = tuple(json.loads(Path(entry.path).read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
    return out


__all__ = ["pin", "unpin", "scan"]
