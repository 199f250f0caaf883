"""``RUN --mount`` and ``RUN --device`` option values: one CSV record of ``key=value`` fields.

BuildKit checks only ``from`` when it parses the Dockerfile (other fields may hold variables) and
parses the whole value when the stage is built, after expansion; ``parse_mount`` does both, with
``expand=None`` meaning "parse time".
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from typing import Callable

from ..errors import InstructionError
from .flags import with_suggestion

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_MOUNT_KEYS = ("type", "from", "source", "target", "readonly", "id", "sharing", "required", "size", "mode",
               "uid", "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env")


@dataclass(frozen=True, slots=True)
class Mount:
    type: str = "bind"
    from_: str = ""
    source: str = ""
    target: str = ""
    readonly: bool = True
    size_limit: int = 0
    cache_id: str = ""
    sharing: str = ""
    required: bool = False
    env: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    required: bool = False


def csv_fields(value: str, what: str) -> list[str]:
    """One CSV record (``"..."`` quoting, ``""`` for a quote), as go-csvvalue reads it."""
    if value == "":
        return []
    try:
        rows = list(csv.reader([value], strict=True))
    except csv.Error as err:
        raise InstructionError(f"failed to parse csv {what}: {err}") from None
    if len(rows) != 1:
        raise InstructionError(f"failed to parse csv {what}: expected one record")
    return rows[0]


def parse_bool(value: str) -> bool:
    """Go's ``strconv.ParseBool``."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(value)


_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
          "g": 1024**3, "gb": 1024**3, "gib": 1024**3, "t": 1024**4, "tb": 1024**4, "tib": 1024**4,
          "p": 1024**5, "pb": 1024**5, "pib": 1024**5}
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?) ?([a-zA-Z]*)\Z")


def ram_in_bytes(text: str) -> int:
    """go-units ``RAMInBytes``: ``64m``, ``1.5g``, ``512`` (binary multiples)."""
    m = _SIZE.match(text)
    if m is None or m.group(2).lower() not in _UNITS:
        raise ValueError(text)
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def check_mount_from(value: str) -> None:
    """Parse-time check: ``from`` may not use variables (except a trailing ``$``)."""
    for field in csv_fields(value, "mounts"):
        key, eq, val = field.partition("=")
        if eq and key.lower() == "from":
            idx = val.find("$")
            if idx != -1 and idx != len(val) - 1:
                raise InstructionError("'from' doesn't support variable expansion, define alias stage instead")


def parse_mount(value: str, expand: Callable[[str], str]) -> Mount:
    """Parse a ``--mount`` value after expanding each field's value with ``expand``."""
    fields = csv_fields(value, "mounts")
    m: dict = {"type": "bind"}
    ro_auto = True
    for field in fields:
        key, eq, val = field.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                m["readonly"], ro_auto = True, False
                continue
            if key in ("readwrite", "rw"):
                m["readonly"], ro_auto = False, False
                continue
            if key == "required":
                if m["type"] in ("secret", "ssh"):
                    m["required"] = True
                    continue
                raise InstructionError(f"unexpected key '{key}' for mount type '{m['type']}'")
            raise InstructionError(f"invalid field '{field}' must be a key=value pair")
        val = expand(val)
        if key == "type":
            kind = val.lower()
            if kind not in MOUNT_TYPES:
                message, _ = with_suggestion(f'unsupported mount type "{val}"', val, MOUNT_TYPES, True)
                raise InstructionError(message)
            m["type"] = kind
        elif key == "from":
            m["from_"] = val
        elif key in ("source", "src"):
            m["source"] = val
        elif key in ("target", "dst", "destination"):
            m["target"] = val
        elif key in ("readonly", "ro", "readwrite", "rw", "required"):
            try:
                flag = parse_bool(val)
            except ValueError:
                raise InstructionError(f"invalid value for {key}: {val}") from None
            if key == "required":
                if m["type"] not in ("secret", "ssh"):
                    raise InstructionError(f"unexpected key '{key}' for mount type '{m['type']}'")
                m["required"] = flag
            else:
                m["readonly"] = flag if key in ("readonly", "ro") else not flag
                ro_auto = False
        elif key == "size":
            if m["type"] != "tmpfs":
                raise InstructionError(f"unexpected key '{key}' for mount type '{m['type']}'")
            try:
                m["size_limit"] = ram_in_bytes(val)
            except ValueError:
                raise InstructionError(f"invalid value for {key}: {val}") from None
        elif key == "id":
            m["cache_id"] = val
        elif key == "sharing":
            mode = val.lower()
            if mode not in SHARING_MODES:
                message, _ = with_suggestion(f'unsupported sharing value "{val}"', val, SHARING_MODES, True)
                raise InstructionError(message)
            m["sharing"] = mode
        elif key in ("mode", "uid", "gid"):
            base = 8 if key == "mode" else 10
            try:
                number = int(val, base) if re.fullmatch(r"[0-9]+", val) else -1
            except ValueError:
                number = -1
            if not 0 <= number < 2**32:
                raise InstructionError(f"invalid value {val} for {key}")
            m[key] = number
        elif key == "env":
            m["env"] = val
        else:
            message, _ = with_suggestion(f"unexpected key '{key}' in '{field}'", key, _MOUNT_KEYS, True)
            raise InstructionError(message)
    kind = m["type"]
    if kind not in ("secret", "ssh", "cache"):
        for key in ("mode", "uid", "gid"):
            if m.get(key) is not None:
                raise InstructionError(f'{key} not allowed for "{kind}" type mounts')
    if ro_auto:
        m["readonly"] = kind not in ("cache", "tmpfs")
    if kind == "secret":
        if m.get("from_"):
            raise InstructionError("secret mount should not have a from")
        if m.get("sharing"):
            raise InstructionError("secret mount should not define sharing")
        if not m.get("source") and not m.get("target") and not m.get("cache_id"):
            raise InstructionError("invalid secret mount. one of source, target required")
        if m.get("source") and m.get("cache_id"):
            raise InstructionError("both source and id can't be set")
    if m.get("sharing") and kind != "cache":
        raise InstructionError(f"invalid cache sharing set for {kind} mount")
    return Mount(**m)


def parse_device(value: str) -> Device:
    """A ``--device`` value: ``name[,required[=bool]]`` or ``name=<n>``."""
    name, required = "", False
    for field in csv_fields(value, "devices"):
        key, eq, val = field.partition("=")
        key = key.lower()
        if not eq:
            if key == "required":
                required = True
            elif not name:
                name = field
            else:
                raise InstructionError(f"invalid field '{field}' must be a key=value pair")
            continue
        if key == "name":
            if name:
                raise InstructionError(f"device name already set to {name}")
            name = val
        elif key == "required":
            try:
                required = parse_bool(val)
            except ValueError:
                raise InstructionError(f"invalid value for {key}: {val}") from None
        elif not name:
            name = field
        else:
            message, _ = with_suggestion(f"unexpected key '{key}' in '{field}'", key, ("name", "required"), True)
            raise InstructionError(message)
    return Device(name, required)
