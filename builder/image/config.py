"""The image configuration (OCI ``config.md`` / Docker image spec v1.2) as a frozen value.

Read with ``parse_config`` (the bytes are kept, see :class:`~builder.image.canonical.Document`),
changed only through methods that return a new config (``with_layer``, ``with_history``,
``with_config``, or ``dataclasses.replace``), written as canonical JSON. Fields the model does not
know (Docker's ``container_config``, ``Hostname``, ``docker_version``, a vendor's extension) are
kept in ``extra`` at each level and written back, so nothing read is lost.

Known fields follow BuildKit's ``DockerOCIImage``: the OCI fields plus Docker's ``Healthcheck``,
``OnBuild`` and ``Shell``, written with Go's ``omitempty`` rules. Timestamps stay the strings they
were (RFC 3339); ``format_timestamp`` writes new ones as Go does (``RFC3339Nano``, UTC).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta, timezone

from ..errors import ImageError
from .canonical import EMPTY, Document, FrozenMap, freeze, load_json
from .descriptor import string_list, string_map
from .digest import parse_digest
from .platform import Platform

__all__ = [
    "ImageConfig", "ContainerConfig", "Healthcheck", "RootFS", "History", "parse_config",
    "format_timestamp", "parse_timestamp",
]


# -- timestamps ---------------------------------------------------------------------------------

_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
                      r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def format_timestamp(when: int | datetime) -> str:
    """Go's ``time.Time`` JSON form in UTC: ``2024-01-02T03:04:05.123456789Z`` (zeros trimmed).

    ``when`` is nanoseconds since the Unix epoch (``SOURCE_DATE_EPOCH * 10**9``, ``time.time_ns()``)
    or an aware datetime.
    """
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError("format_timestamp needs an aware datetime")
        delta = when - _EPOCH
        when = (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    seconds, nanos = divmod(int(when), 10**9)
    d = _EPOCH + timedelta(seconds=seconds)
    text = f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return f"{text}{fraction}Z"


def parse_timestamp(text: str) -> int:
    """An RFC 3339 timestamp -> nanoseconds since the epoch (as Go's ``time.Time`` reads it)."""
    match = _RFC3339.match(text) if isinstance(text, str) else None
    if match is None:
        raise ImageError(f"invalid timestamp {text!r}: expected RFC 3339 (2006-01-02T15:04:05Z07:00)", str(text))
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError as err:
        raise ImageError(f"invalid timestamp {text!r}: {err}", text) from None
    nanos = int((match.group(7) or "0")[:9].ljust(9, "0"))
    offset = 0
    if match.group(9):
        hours, minutes = int(match.group(10)), int(match.group(11))
        if hours > 23 or minutes > 59:
            raise ImageError(f"invalid timestamp {text!r}: time zone offset out of range", text)
        offset = (hours * 3600 + minutes * 60) * (1 if match.group(9) == "+" else -1)
    seconds = calendar.timegm((year, month, day, hour, minute, second)) - offset
    return seconds * 10**9 + nanos


# -- the parts ----------------------------------------------------------------------------------

def _bool(obj: Mapping, key: str, where: str) -> bool:
    value = obj.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ImageError(f"{where}: {key} must be a boolean")
    return value


def _int(obj: Mapping, key: str, where: str) -> int:
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ImageError(f"{where}: {key} must be an integer")
    return value


def _str(obj: Mapping, key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ImageError(f"{where}: {key} must be a string")
    return value


def _object(value, where: str) -> Mapping:
    if value is None:
        return EMPTY
    if not isinstance(value, Mapping):
        raise ImageError(f"{where}: expected an object")
    return value


def _set(value, where: str) -> tuple:
    """Go's ``map[string]struct{}`` (``{"80/tcp": {}}``) -> its keys, in the order written."""
    return tuple(_object(value, where))


def _extra(obj: Mapping, known) -> FrozenMap:
    return FrozenMap((k, freeze(v)) for k, v in obj.items() if k not in known)


@dataclass(frozen=True)
class Healthcheck:
    """Docker's ``HealthConfig``; durations in nanoseconds (Go's ``time.Duration``)."""

    test: tuple = ()
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0
    extra: FrozenMap = EMPTY

    _KEYS = (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"),
             ("start_interval", "StartInterval"), ("retries", "Retries"))

    def to_dict(self) -> dict:
        out = dict(self.extra)
        if self.test:
            out["Test"] = list(self.test)
        for attr, key in self._KEYS:
            if getattr(self, attr):
                out[key] = getattr(self, attr)
        return out

    @classmethod
    def from_dict(cls, obj, where: str = "config.Healthcheck") -> "Healthcheck":
        obj = _object(obj, where)
        values = {attr: _int(obj, key, where) for attr, key in cls._KEYS}
        return cls(test=string_list(obj.get("Test"), f"{where}.Test"), **values,
                   extra=_extra(obj, {"Test", *(k for _, k in cls._KEYS)}))


# attribute -> (JSON key, kind); kinds: str, list (of strings), set (map of empty objects),
# map (of strings), bool, health.
_CONTAINER_FIELDS = {
    "user": ("User", "str"), "exposed_ports": ("ExposedPorts", "set"), "env": ("Env", "list"),
    "entrypoint": ("Entrypoint", "list"), "cmd": ("Cmd", "list"), "volumes": ("Volumes", "set"),
    "working_dir": ("WorkingDir", "str"), "labels": ("Labels", "map"), "stop_signal": ("StopSignal", "str"),
    "args_escaped": ("ArgsEscaped", "bool"), "healthcheck": ("Healthcheck", "health"),
    "on_build": ("OnBuild", "list"), "shell": ("Shell", "list"),
}


@dataclass(frozen=True)
class ContainerConfig:
    """The ``config`` object: how a container of this image runs by default."""

    user: str = ""
    exposed_ports: tuple = ()
    env: tuple = ()
    entrypoint: tuple = ()
    cmd: tuple = ()
    volumes: tuple = ()
    working_dir: str = ""
    labels: FrozenMap = EMPTY
    stop_signal: str = ""
    args_escaped: bool = False
    healthcheck: Healthcheck | None = None
    on_build: tuple = ()
    shell: tuple = ()
    extra: FrozenMap = EMPTY

    def __post_init__(self):
        for attr, (_, kind) in _CONTAINER_FIELDS.items():
            value = getattr(self, attr)
            if kind in ("list", "set") and not isinstance(value, tuple):
                object.__setattr__(self, attr, tuple(value))
            elif kind == "map" and not isinstance(value, FrozenMap):
                object.__setattr__(self, attr, FrozenMap(value))

    def to_dict(self) -> dict:
        out = dict(self.extra)
        for attr, (key, kind) in _CONTAINER_FIELDS.items():
            value = getattr(self, attr)
            if not value and kind != "health" or value is None:
                continue  # Go's omitempty
            if kind == "set":
                out[key] = {item: {} for item in value}
            elif kind == "list":
                out[key] = list(value)
            elif kind == "map":
                out[key] = dict(value)
            elif kind == "health":
                out[key] = value.to_dict()
            else:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, obj, where: str = "config") -> "ContainerConfig":
        obj = _object(obj, where)
        values = {}
        for attr, (key, kind) in _CONTAINER_FIELDS.items():
            here = f"{where}.{key}"
            if kind == "str":
                values[attr] = _str(obj, key, where)
            elif kind == "list":
                values[attr] = string_list(obj.get(key), here)
            elif kind == "set":
                values[attr] = _set(obj.get(key), here)
            elif kind == "map":
                values[attr] = string_map(obj.get(key), here)
            elif kind == "bool":
                values[attr] = _bool(obj, key, where)
            elif obj.get(key) is not None:
                values[attr] = Healthcheck.from_dict(obj[key], here)
        return cls(**values, extra=_extra(obj, {key for key, _ in _CONTAINER_FIELDS.values()}))


@dataclass(frozen=True)
class RootFS:
    """``rootfs``: the diff_ids (uncompressed layer digests), bottom layer first."""

    type: str = "layers"
    diff_ids: tuple = ()
    extra: FrozenMap = EMPTY

    def to_dict(self) -> dict:
        out = dict(self.extra)
        out.update(type=self.type, diff_ids=list(self.diff_ids))
        return out

    @classmethod
    def from_dict(cls, obj, where: str = "rootfs") -> "RootFS":
        obj = _object(obj, where)
        return cls(_str(obj, "type", where), string_list(obj.get("diff_ids"), f"{where}.diff_ids"),
                   _extra(obj, {"type", "diff_ids"}))


@dataclass(frozen=True)
class History:
    """One build step; ``empty_layer`` steps (ENV, CMD, ...) added no layer."""

    created: str | None = None
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False
    extra: FrozenMap = EMPTY

    def to_dict(self) -> dict:
        out = dict(self.extra)
        if self.created is not None:
            out["created"] = self.created
        for key in ("created_by", "author", "comment", "empty_layer"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, obj, where: str = "history") -> "History":
        if not isinstance(obj, Mapping):
            raise ImageError(f"{where}: expected an object")
        created = obj.get("created")
        if created is not None and not isinstance(created, str):
            raise ImageError(f"{where}: created must be a string")
        return cls(created, _str(obj, "created_by", where), _str(obj, "author", where), _str(obj, "comment", where),
                   _bool(obj, "empty_layer", where),
                   _extra(obj, {"created", "created_by", "author", "comment", "empty_layer"}))


# -- the image config ---------------------------------------------------------------------------

_TOP_KEYS = frozenset(("created", "author", "architecture", "os", "os.version", "os.features", "variant", "config",
                       "rootfs", "history"))


@dataclass(frozen=True)
class ImageConfig(Document):
    """An image configuration. ``digest`` of it is the image ID."""

    architecture: str = ""
    os: str = ""
    variant: str = ""
    os_version: str = ""
    os_features: tuple = ()
    created: str | None = None
    author: str = ""
    config: ContainerConfig = ContainerConfig()
    rootfs: RootFS = RootFS()
    history: tuple = ()
    extra: FrozenMap = EMPTY

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant, self.os_version, tuple(self.os_features))

    @property
    def diff_ids(self) -> tuple:
        return self.rootfs.diff_ids

    def to_dict(self) -> dict:
        out = dict(self.extra)
        if self.created is not None:
            out["created"] = self.created
        if self.author:
            out["author"] = self.author
        out.update(architecture=self.architecture, os=self.os)
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        out["config"] = self.config.to_dict()
        out["rootfs"] = self.rootfs.to_dict()
        if self.history:
            out["history"] = [h.to_dict() for h in self.history]
        return out

    @classmethod
    def from_dict(cls, obj, where: str = "image config") -> "ImageConfig":
        obj = freeze(obj)
        if not isinstance(obj, Mapping):
            raise ImageError(f"invalid {where}: expected a JSON object")
        history = obj.get("history")
        if history is not None and not isinstance(history, (list, tuple)):
            raise ImageError(f"{where}: history must be an array")
        created = obj.get("created")
        if created is not None and not isinstance(created, str):
            raise ImageError(f"{where}: created must be a string")
        return cls(
            architecture=_str(obj, "architecture", where), os=_str(obj, "os", where),
            variant=_str(obj, "variant", where), os_version=_str(obj, "os.version", where),
            os_features=string_list(obj.get("os.features"), f"{where}: os.features"),
            created=created, author=_str(obj, "author", where),
            config=ContainerConfig.from_dict(obj.get("config")),
            rootfs=RootFS.from_dict(obj.get("rootfs")),
            history=tuple(History.from_dict(h, f"history[{i}]") for i, h in enumerate(history or ())),
            extra=_extra(obj, _TOP_KEYS),
        )

    # -- pure mutations (each returns a new config; the original bytes do not follow) ------------

    def with_layer(self, diff_id: str, history: History) -> "ImageConfig":
        """Append a layer (its uncompressed digest) and the history entry that made it."""
        parse_digest(diff_id, "diff_id")
        if history.empty_layer:
            raise ValueError("the history entry of a layer cannot be an empty_layer entry")
        rootfs = replace(self.rootfs, diff_ids=self.rootfs.diff_ids + (diff_id,))
        return replace(self, rootfs=rootfs, history=self.history + (history,))

    def with_history(self, entry: History) -> "ImageConfig":
        """Append a step that added no layer (ENV, CMD, ...); ``entry.empty_layer`` must be set."""
        if not entry.empty_layer:
            raise ValueError("with_history takes empty_layer entries; use with_layer for a step with a layer")
        return replace(self, history=self.history + (entry,))

    def with_config(self, **changes) -> "ImageConfig":
        """Change fields of the container config (``env=(...)``, ``cmd=(...)``, ``labels={...}``)."""
        known = {f.name for f in fields(ContainerConfig)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown container config field(s): {', '.join(unknown)}")
        return replace(self, config=replace(self.config, **changes))

    def with_platform(self, platform: Platform) -> "ImageConfig":
        return replace(self, os=platform.os, architecture=platform.architecture, variant=platform.variant,
                       os_version=platform.os_version, os_features=tuple(platform.os_features))


def parse_config(data: bytes, subject: str | None = None) -> ImageConfig:
    """Read an image config; the value keeps ``data`` as its stored form."""
    obj = load_json(data, "image config", subject)
    try:
        return ImageConfig.from_dict(obj)._keep_raw(data)
    except ImageError as err:
        if subject is not None:
            err.subject = subject
        raise
