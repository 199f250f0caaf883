"""Local volumes as docker's ``local`` driver keeps them: ``<store root>/volumes/<name>/_data``.

A volume is a directory whose data outlives the containers that use it. Named volumes get their
name from the user (docker's rule: ``[a-zA-Z0-9][a-zA-Z0-9_.-]+``); anonymous ones (an image's
``VOLUME``, ``-v /dst``) get 64 random hex digits. Next to ``_data`` sits ``volume.json`` (created
time, labels, whether it is anonymous), the part docker keeps in its metadata.db.

Which containers use a volume is not known here: the container records know it, and callers pass
it in (``in_use``: volume name -> container ids). A volume appears whole or not at all: it is made
in a temp directory and renamed into place; removal renames it away first, then deletes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping, Sequence, Union

from ..errors import PybuildError

NAME_PATTERN = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_NAME_RE = re.compile(rf"^{NAME_PATTERN}+$")
_ANONYMOUS_RE = re.compile(r"^[0-9a-f]{64}$")
_META = "volume.json"
_DATA = "_data"
_LIST_FILTERS = ("dangling", "name", "driver", "label")
_PRUNE_FILTERS = ("label", "label!")


class VolumeError(PybuildError):
    """A volume operation failed; ``subject`` names the volume."""

    def __init__(self, message: str, subject: str | None = None):
        super().__init__(message)
        self.subject = subject


class NoSuchVolume(VolumeError):
    """No volume by that name (docker: ``get NAME: no such volume``)."""


class VolumeInUse(VolumeError):
    """The volume is mounted by containers (docker: ``remove NAME: volume is in use - [ids]``)."""


def validate_name(name: str) -> None:
    """docker's local driver check, with its texts (prefixed ``create NAME:`` as the daemon does)."""
    if len(name) == 1:
        raise VolumeError(f"create {name}: volume name is too short, names should be at least two alphanumeric "
                          "characters", name)
    if not _NAME_RE.match(name):
        raise VolumeError(f'create {name}: "{name}" includes invalid characters for a local volume name, only '
                          f'"{NAME_PATTERN}" are allowed. If you intended to pass a host directory, use absolute path',
                          name)


def is_anonymous_name(name: str) -> bool:
    return bool(_ANONYMOUS_RE.match(name))


@dataclass(frozen=True)
class Volume:
    """One local volume; ``mountpoint`` is the host directory containers see."""

    name: str
    mountpoint: str
    created_at: str                       # RFC 3339, UTC, seconds (docker's CreatedAt)
    labels: Mapping[str, str] = field(default_factory=dict)
    anonymous: bool = False

    def inspect(self) -> dict:
        """docker's ``volume inspect`` object."""
        return {"CreatedAt": self.created_at, "Driver": "local", "Labels": dict(self.labels) or None,
                "Mountpoint": self.mountpoint, "Name": self.name, "Options": None, "Scope": "local"}

    def row(self) -> dict:
        """The fields ``volume ls --format`` knows (docker's volume formatter)."""
        return {"Name": self.name, "Driver": "local", "Scope": "local", "Mountpoint": self.mountpoint,
                "Labels": ",".join(f"{k}={v}" for k, v in self.labels.items()), "Links": "N/A", "Size": "N/A"}


@dataclass(frozen=True)
class PruneResult:
    deleted: tuple[str, ...]
    reclaimed: int


InUse = Union[Mapping[str, Sequence[str]], Callable[[], Mapping[str, Sequence[str]]], None]


def _users(in_use: InUse) -> Mapping[str, Sequence[str]]:
    """``in_use`` as a mapping; a callable is asked here, under the lock, so the answer is current."""
    if in_use is None:
        return {}
    return in_use() if callable(in_use) else in_use


class VolumeStore:
    """The volumes under ``<store_root>/volumes``."""

    def __init__(self, store_root):
        self.root = os.path.join(os.path.abspath(os.fspath(store_root)), "volumes")
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd = -1

    # --- paths and locking ---------------------------------------------------------------------
    def path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def _ensure_root(self) -> None:
        if not os.path.isdir(self.root):
            os.makedirs(self.root, 0o701, exist_ok=True)
            os.chmod(self.root, 0o701)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """The volumes lock, exclusive and re-entrant in this object. create, remove and prune take it;
        a caller that creates volumes for a container holds it until the container's record naming
        them is written, so a concurrent ``volume prune`` cannot remove them in between."""
        with self._thread_lock:
            if self._depth == 0:
                self._ensure_root()
                fd = os.open(os.path.join(self.root, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    self._sweep()
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    os.close(self._fd)
                    self._fd = -1

    _locked = hold

    def _sweep(self) -> None:
        """Leftovers of a create or remove that was killed half-way (their owner is gone)."""
        for entry in os.listdir(self.root):
            if not entry.startswith((".tmp-", ".trash-")):
                continue
            pid = entry.split("-")[1]
            if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
                continue
            shutil.rmtree(os.path.join(self.root, entry), ignore_errors=True)

    # --- reading --------------------------------------------------------------------------------
    def get(self, name: str) -> Volume:
        if not name or "/" in name or name.startswith("."):
            raise NoSuchVolume(f"get {name}: no such volume", name)
        directory = self.path(name)
        try:
            with open(os.path.join(directory, _META), encoding="utf-8") as fh:
                meta = json.load(fh)
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchVolume(f"get {name}: no such volume", name) from None
        except (OSError, ValueError) as err:
            raise VolumeError(f"get {name}: unreadable volume metadata: {err}", name) from None
        return Volume(name=name, mountpoint=os.path.join(directory, _DATA), created_at=meta.get("CreatedAt", ""),
                      labels=dict(meta.get("Labels") or {}), anonymous=bool(meta.get("Anonymous")))

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
        except NoSuchVolume:
            return False
        return True

    def names(self) -> list[str]:
        try:
            entries = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted((e for e in entries if not e.startswith(".")
                       and os.path.isfile(os.path.join(self.root, e, _META))), key=natural_key)

    def list(self, filters: Sequence[str] = (), in_use: InUse = None) -> list[Volume]:
        """Volumes in docker's order (natural sort of names), narrowed by ``--filter`` values."""
        match = _matcher(parse_filters(filters), _LIST_FILTERS, _users(in_use))
        out = []
        for name in self.names():
            try:
                volume = self.get(name)
            except NoSuchVolume:
                continue                          # removed meanwhile
            if match(volume):
                out.append(volume)
        return out

    def size(self, name: str) -> int:
        """Apparent bytes of the volume's files (hard links once), as docker's ``directory.Size``."""
        from cache.fsutil import tree_size

        return tree_size(os.path.join(self.path(name), _DATA))

    # --- writing --------------------------------------------------------------------------------
    def create(self, name: str | None = None, labels: Mapping[str, str] | None = None, *,
               anonymous: bool = False) -> Volume:
        """A new volume, or the existing one of that name (docker's create is idempotent).

        No name: an anonymous volume with a random 64-hex name."""
        if not name:
            name, anonymous = os.urandom(32).hex(), True
        else:
            validate_name(name)
        with self._locked():
            with contextlib.suppress(NoSuchVolume):
                return self.get(name)
            tmp = os.path.join(self.root, f".tmp-{os.getpid()}-{os.urandom(6).hex()}")
            os.mkdir(tmp, 0o701)
            os.chmod(tmp, 0o701)
            try:
                os.mkdir(os.path.join(tmp, _DATA), 0o755)
                os.chmod(os.path.join(tmp, _DATA), 0o755)
                meta = {"Name": name, "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "Labels": dict(labels or {}), "Anonymous": anonymous}
                with open(os.path.join(tmp, _META), "w", encoding="utf-8") as fh:
                    json.dump(meta, fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.rename(tmp, self.path(name))
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return self.get(name)

    def remove(self, name: str, *, force: bool = False, in_use: InUse = None) -> bool:
        """Delete a volume and its data. In use: ``VolumeInUse`` (also with ``force``, as docker);
        missing: ``NoSuchVolume``, or False with ``force``. ``in_use``: volume name -> container ids,
        or a function returning that (asked under the lock)."""
        with self._locked():
            users = list(_users(in_use).get(name) or ())
            try:
                self.get(name)
            except NoSuchVolume:
                if force:
                    return False
                raise
            if users:
                raise VolumeInUse(f"remove {name}: volume is in use - [{', '.join(users)}]", name)
            self._delete(name)
        return True

    def prune(self, in_use: InUse = None, filters: Sequence[str] = ()) -> PruneResult:
        """Remove every volume no container uses (docker 20.10: anonymous and named ones alike),
        narrowed by ``label=``/``label!=`` filters; returns the names and the bytes freed."""
        parsed = parse_filters(filters)
        deleted, reclaimed = [], 0
        with self._locked():
            in_use = _users(in_use)
            match = _matcher(parsed, _PRUNE_FILTERS, in_use)
            for name in self.names():
                if in_use.get(name):
                    continue
                try:
                    volume = self.get(name)
                except NoSuchVolume:
                    continue
                if not match(volume):
                    continue
                reclaimed += self.size(name)
                self._delete(name)
                deleted.append(name)
        return PruneResult(tuple(deleted), reclaimed)

    def _delete(self, name: str) -> None:
        trash = os.path.join(self.root, f".trash-{os.getpid()}-{os.urandom(6).hex()}")
        os.rename(self.path(name), trash)
        _rmtree(trash)


# --- filters ----------------------------------------------------------------------------------------
def parse_filters(values: Iterable[str]) -> dict[str, list[str]]:
    """``--filter key=value`` flags as docker's client groups them (a key may repeat)."""
    from ..errors import UsageError

    out: dict[str, list[str]] = {}
    for item in values:
        key, eq, value = item.partition("=")      # "label!=a" is key "label!", as docker's client splits it
        if not eq:
            raise UsageError(f'invalid argument "{item}" for "-f, --filter" flag: bad format of filter '
                             "(expected name=value)")
        out.setdefault(key.strip().lower(), []).append(value.strip())
    return out


def _matcher(filters: dict[str, list[str]], accepted: tuple[str, ...], in_use: Mapping[str, Sequence[str]]):
    for key in filters:
        if key not in accepted:
            raise VolumeError(f"Invalid filter '{key}'")
    dangling = None
    if "dangling" in filters:
        values = set(filters["dangling"])
        if values & {"true", "1"}:
            dangling = True
        elif values & {"false", "0"}:
            dangling = False
        else:
            raise VolumeError(f"Invalid filter 'dangling=[{' '.join(filters['dangling'])}]'")
    names = filters.get("name", [])
    drivers = filters.get("driver", [])
    labels = filters.get("label", [])
    not_labels = filters.get("label!", [])

    def match(volume: Volume) -> bool:
        if drivers and "local" not in drivers:
            return False
        if names and not any(_name_matches(pattern, volume.name) for pattern in names):
            return False
        if labels and not _labels_match(labels, volume.labels):
            return False
        if not_labels and _labels_match(not_labels, volume.labels):
            return False
        if dangling is not None and bool(in_use.get(volume.name)) == dangling:
            return False
        return True

    return match


def _name_matches(pattern: str, name: str) -> bool:
    """docker's ``filters.Match``: exact, else an unanchored regular expression."""
    if pattern == name:
        return True
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return False


def _labels_match(wanted: list[str], labels: Mapping[str, str]) -> bool:
    """docker's ``MatchKVList``: every ``key`` or ``key=value`` must hold."""
    if not labels:
        return False
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def natural_key(name: str):
    """docker's ``sortorder.NaturalLess``: digits before other characters, digit runs compare as numbers
    (fewer leading zeros first)."""
    return [(0, int(part), len(part), "") if part.isdigit() else (1, 0, 0, part) for part in re.findall(r"\d+|\D+", name)]


def parse_labels(values: Iterable[str]) -> dict[str, str]:
    """``--label k=v`` / ``--label k`` (empty value), as docker's ConvertKVStringsToMap."""
    out: dict[str, str] = {}
    for item in values:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _rmtree(path: str) -> None:
    """Delete a tree a container filled: read-only directories and immutable-looking modes too."""
    def onerror(func, target, _exc):
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
        with contextlib.suppress(FileNotFoundError):
            func(target)

    shutil.rmtree(path, onerror=onerror)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["Volume", "VolumeStore", "VolumeError", "NoSuchVolume", "VolumeInUse", "PruneResult", "validate_name",
           "is_anonymous_name", "parse_filters", "parse_labels", "natural_key"]
