"""``run -v`` / ``--mount`` / ``--tmpfs`` and an image's ``VOLUME``s, turned into the sandbox's mounts.

Parsing follows docker 20.10 (its client for ``--mount``, its daemon for ``-v`` and ``--tmpfs``),
with its error texts:

* ``-v SRC:DST[:MODE]``: a SRC that is an absolute path is a bind (a missing host path is created as
  a directory), anything else names a volume (created if missing; a relative host path therefore
  fails the volume-name check, as in docker 20.10); ``-v DST`` alone is an anonymous volume. MODE is
  a comma list of at most one each of ``ro|rw``, ``z|Z`` (accepted, no SELinux here), a propagation
  (``[r]private|[r]shared|[r]slave``: accepted, mounts stay private), ``nocopy``, and a consistency
  (``consistent|cached|delegated``).
* ``--mount type=bind|volume|tmpfs,src=..,dst=..,readonly,volume-nocopy,volume-label=..,tmpfs-size=..,
  tmpfs-mode=..,bind-propagation=..``: a bind source must exist.
* ``--tmpfs DST[:OPTIONS]``: docker's defaults ``noexec,nosuid,nodev``, then the options given
  (``size=``, ``mode=``, ``ro``, ``exec``, ...).

``resolve_mounts`` then makes the volumes (named ones if missing, anonymous ones for ``-v DST`` and
for every image ``VOLUME`` no request covers) and, as docker does when a container is created,
fills a volume that is still empty with what the image has at that path (owners, modes, times,
xattrs, symlinks, hard links, devices), unless ``nocopy``. The volume's directory takes the owner
and mode of the image's directory. Call it once per container (at create) and keep the result.
"""

from __future__ import annotations

import csv
import os
import posixpath
import re
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

from ..errors import UsageError

_RW_MODES = ("rw", "ro")
_LABEL_MODES = ("z", "Z")
_PROPAGATION_MODES = ("private", "rprivate", "slave", "rslave", "shared", "rshared")
_COPY_MODES = ("nocopy",)
_CONSISTENCY_MODES = ("consistent", "cached", "delegated")
_TMPFS_DEFAULTS = ("noexec", "nosuid", "nodev")
# mount(8) flags a tmpfs option may be (docker's moby/sys/mount table); the key of each is the flag
# it sets or clears, so a later option replaces an earlier one of the same key.
_TMPFS_FLAGS = {"ro": "ro", "rw": "ro", "suid": "nosuid", "nosuid": "nosuid", "dev": "nodev", "nodev": "nodev",
                "exec": "noexec", "noexec": "noexec", "sync": "sync", "async": "sync", "dirsync": "dirsync",
                "remount": "remount", "mand": "mand", "nomand": "mand", "atime": "noatime", "noatime": "noatime",
                "diratime": "nodiratime", "nodiratime": "nodiratime", "relatime": "relatime",
                "norelatime": "relatime", "strictatime": "strictatime", "nostrictatime": "strictatime",
                **{p: "propagation" for p in ("bind", "rbind", "unbindable", "runbindable", "private", "rprivate",
                                              "shared", "rshared", "slave", "rslave")}}
_TMPFS_DATA = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol")


class MountError(UsageError):
    """A ``-v``/``--mount``/``--tmpfs`` value or a mount that cannot be set up (docker's texts)."""


@dataclass(frozen=True, slots=True)
class MountRequest:
    """One mount the user asked for, checked; ``target`` is absolute and clean.

    ``source``: the host path of a bind, the name of a volume ("" = anonymous). ``copy_data``: fill
    an empty volume from the image (docker's default; ``nocopy`` turns it off). ``create_source``: a
    missing bind source becomes a directory (``-v``, not ``--mount``). ``mode``: the ``-v`` mode
    text as given (``inspect`` shows it). ``tmpfs_options``: docker's merged option list.
    """

    type: str
    target: str
    source: str = ""
    readonly: bool = False
    copy_data: bool = True
    create_source: bool = False
    propagation: str = ""
    mode: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    tmpfs_size: int = 0
    tmpfs_mode: int = 0
    tmpfs_options: tuple[str, ...] = ()
    origin: str = ""                  # "-v", "--mount" or "--tmpfs"


# --- -v / --volume ---------------------------------------------------------------------------------
def _valid_mode(mode: str) -> bool:
    if mode == "":
        return True
    counts = [0, 0, 0, 0, 0]
    for option in mode.split(","):
        for i, group in enumerate((_RW_MODES, _LABEL_MODES, _PROPAGATION_MODES, _COPY_MODES, _CONSISTENCY_MODES)):
            if option in group:
                counts[i] += 1
                break
        else:
            return False
    return max(counts) <= 1


def _check_target(kind: str, target: str) -> str:
    """docker's target checks, in its order; the clean target."""
    if not target:
        raise MountError(f'invalid mount config for type "{kind}": field Target must not be empty')
    if posixpath.normpath(target.replace("\\", "/")) in ("/", "//"):
        raise MountError(f"invalid mount config for type \"{kind}\": invalid specification: destination can't be '/'")
    if not target.replace("\\", "/").startswith("/"):
        raise MountError(f"invalid mount config for type \"{kind}\": invalid mount path: '{target}' mount path "
                         "must be absolute")
    return _clean(target)


def _clean(path: str) -> str:
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def _check_name(name: str) -> None:
    from .volumes import VolumeError, validate_name

    try:
        validate_name(name)
    except VolumeError as err:
        raise MountError(err.message) from None


def parse_volume(raw: str) -> MountRequest:
    """``-v SRC:DST[:MODE]`` or ``-v DST`` (docker 20.10's daemon parser, ``ParseMountRaw``)."""
    def invalid(detail: str = "") -> MountError:
        return MountError(f"invalid volume specification: '{raw}'" + (f": {detail}" if detail else ""))

    if raw.count(":") > 2:
        raise invalid()
    parts = raw.split(":", 2)
    if parts[0] == "":
        raise invalid()
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if _valid_mode(parts[1]):
            raise invalid()                   # "/foo:rw": a destination with a mode, no source
        source, target = parts
    else:
        source, target, mode = parts
    if not _valid_mode(mode):
        raise MountError(f"invalid mode: {mode}")
    options = mode.split(",") if mode else []
    kind = "bind" if source.startswith("/") else "volume"
    readonly = "ro" in options
    propagation = next((o for o in options if o in _PROPAGATION_MODES), "")
    nocopy = "nocopy" in options
    if kind == "bind" and nocopy:
        raise invalid('invalid mount config for type "bind": field VolumeOptions must not be specified')
    if kind == "volume" and propagation:
        raise invalid('invalid mount config for type "volume": field BindOptions must not be specified')
    try:
        target = _check_target(kind, target)
    except MountError as err:
        raise invalid(err.message) from None
    if kind == "bind":
        return MountRequest("bind", target, _clean(source), readonly=readonly, create_source=True,
                            propagation=propagation or "rprivate", mode=mode, origin="-v")
    if source:
        _check_name(source)
    elif readonly:
        raise invalid('invalid mount config for type "volume": must not set ReadOnly mode when using anonymous '
                      "volumes")
    return MountRequest("volume", target, source, readonly=readonly, copy_data=not nocopy,
                        mode=mode if mode or not source else "z", origin="-v")


# --- --mount -----------------------------------------------------------------------------------------
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _go_bool(key: str, value: str, what: str | None = None) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _MountFlagError(f"invalid value for {what or key}: {value}")


class _MountFlagError(Exception):
    pass


def parse_size(value: str) -> int:
    """go-units ``RAMInBytes``: ``64m``, ``1.5g``, ``512kb``, ``1GiB`` (binary multiples)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?", value)
    if not m:
        raise ValueError(value)
    number = float(m.group(1)) if m.group(1).count(".") <= 1 else None
    if number is None:
        raise ValueError(value)
    unit = (m.group(2) or "").lower()
    return int(number * (1 << (10 * " kmgtp".index(unit))) if unit else number)


def parse_mount(raw: str) -> MountRequest:
    """``--mount KEY=VALUE,...`` (docker's client parser, then the daemon's checks)."""
    try:
        return _parse_mount(raw)
    except _MountFlagError as err:
        raise MountError(f'invalid argument "{raw}" for "--mount" flag: {err}') from None


def _parse_mount(raw: str) -> MountRequest:
    try:
        fields = next(csv.reader([raw]))
    except (csv.Error, StopIteration) as err:
        raise _MountFlagError(str(err) or "empty value") from None
    kind, source, target, readonly, nocopy, propagation = "volume", "", "", False, False, ""
    labels: dict[str, str] = {}
    size = mode = 0
    volume_opts = bind_opts = tmpfs_opts = False
    for item in fields:
        key, eq, value = item.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                readonly = True
                continue
            if key == "volume-nocopy":
                nocopy = volume_opts = True
                continue
            if key == "bind-nonrecursive":
                bind_opts = True
                continue
            raise _MountFlagError(f"invalid field '{item}' must be a key=value pair")
        if key == "type":
            kind = value.lower()
        elif key in ("source", "src"):
            source = value
        elif key in ("target", "dst", "destination"):
            target = value
        elif key in ("readonly", "ro"):
            readonly = _go_bool(key, value)
        elif key == "consistency":
            pass
        elif key == "bind-propagation":
            bind_opts, propagation = True, value.lower()
        elif key == "bind-nonrecursive":
            bind_opts = True
            _go_bool(key, value)
        elif key == "volume-nocopy":
            volume_opts = True
            nocopy = _go_bool(key, value, "volume-nocopy")
        elif key == "volume-label":
            volume_opts = True
            name, _, label_value = value.partition("=")
            labels[name] = label_value
        elif key == "volume-driver":
            volume_opts = True
            if value not in ("", "local"):
                raise MountError(f'error looking up volume plugin {value}: plugin "{value}" not found')
        elif key == "volume-opt":
            volume_opts = True
            raise MountError(f"volume-opt {value}: pybuild's local volumes take no driver options")
        elif key == "tmpfs-size":
            tmpfs_opts = True
            try:
                size = parse_size(value)
            except ValueError:
                raise _MountFlagError(f"invalid value for {key}: {value}") from None
        elif key == "tmpfs-mode":
            tmpfs_opts = True
            try:
                mode = int(value, 8)
                if mode >= 1 << 32 or value.startswith(("+", "-")):
                    raise ValueError
            except ValueError:
                raise _MountFlagError(f"invalid value for {key}: {value}") from None
        else:
            raise _MountFlagError(f"unexpected key '{key}' in '{item}'")
    if not kind:
        raise _MountFlagError("type is required")
    if not target:
        raise _MountFlagError("target is required")
    for used, prefix, wanted in ((volume_opts, "volume", "volume"), (bind_opts, "bind", "bind"),
                                 (tmpfs_opts, "tmpfs", "tmpfs")):
        if used and kind != wanted:
            raise _MountFlagError(f"cannot mix '{prefix}-*' options with mount type '{kind}'")

    # the daemon's checks (validateMountConfig)
    target = _check_target(kind, target)
    prefix = f'invalid mount config for type "{kind}"'
    if kind == "bind":
        if not source:
            raise MountError(f"{prefix}: field Source must not be empty")
        if propagation and propagation not in _PROPAGATION_MODES:
            raise MountError(f"{prefix}: invalid propagation mode: {propagation}")
        if not source.replace("\\", "/").startswith("/"):
            raise MountError(f"{prefix}: invalid mount path: '{source}' mount path must be absolute")
        return MountRequest("bind", target, _clean(source), readonly=readonly, propagation=propagation or "rprivate",
                            origin="--mount")
    if kind == "volume":
        if not source and readonly:
            raise MountError(f"{prefix}: must not set ReadOnly mode when using anonymous volumes")
        if source:
            _check_name(source)
        return MountRequest("volume", target, source, readonly=readonly, copy_data=not nocopy, mode="z",
                            labels=tuple(sorted(labels.items())), origin="--mount")
    if kind == "tmpfs":
        if source:
            raise MountError(f"{prefix}: field Source must not be specified")
        options = list(_TMPFS_DEFAULTS) + (["ro"] if readonly else []) + ([f"mode={mode:o}"] if mode else []) \
            + ([f"size={size}"] if size else [])
        return MountRequest("tmpfs", target, readonly=readonly, tmpfs_size=size, tmpfs_mode=mode,
                            tmpfs_options=_merge_tmpfs_options(options), origin="--mount")
    raise MountError(f"{prefix}: mount type unknown")


# --- --tmpfs -----------------------------------------------------------------------------------------
def parse_tmpfs(raw: str) -> MountRequest:
    """``--tmpfs DST[:OPTIONS]`` (docker's defaults noexec,nosuid,nodev, then the options given)."""
    target, _, text = raw.partition(":")
    if posixpath.normpath(target.replace("\\", "/")) in ("/", "//"):
        raise MountError("invalid specification: destination can't be '/'")
    if not target.startswith("/"):
        raise MountError(f"invalid mount path: '{target}' mount path must be absolute")
    options = _merge_tmpfs_options(list(_TMPFS_DEFAULTS) + (text.split(",") if text else []))
    size = mode = 0
    readonly = False
    for option in options:
        key, _, value = option.partition("=")
        if option in ("ro", "rw"):
            readonly = option == "ro"
        elif key == "size":
            size = _kernel_size(value, option)
        elif key == "mode":
            try:
                mode = int(value, 8)
            except ValueError:
                raise MountError(f'invalid tmpfs option "{option}": the mode must be octal') from None
            if mode > 0o7777 or mode < 0:
                raise MountError(f'invalid tmpfs option "{option}": the mode must be octal')
    return MountRequest("tmpfs", _clean(target), readonly=readonly, tmpfs_size=size, tmpfs_mode=mode,
                        tmpfs_options=options, origin="--tmpfs")


def _merge_tmpfs_options(options: list[str]) -> tuple[str, ...]:
    """docker's ``MergeTmpfsOptions``: the last option of each kind wins, unknown ones fail."""
    seen_flags: set[str] = set()
    seen_data: set[str] = set()
    out: list[str] = []
    for option in reversed(options):
        if option == "defaults":
            continue
        if option in _TMPFS_FLAGS:
            if _TMPFS_FLAGS[option] not in seen_flags:
                seen_flags.add(_TMPFS_FLAGS[option])
                out.insert(0, option)
            continue
        key, eq, _ = option.partition("=")
        if not eq or key not in _TMPFS_DATA:
            parts = option.split("=", 1)
            raise MountError("invalid tmpfs option [" + " ".join(f'"{p}"' for p in parts) + "]")
        if key not in seen_data:
            seen_data.add(key)
            out.insert(0, option)
    return tuple(out)


def _kernel_size(value: str, option: str) -> int:
    """tmpfs's ``size=``: bytes with an optional k/m/g/t/p/e suffix, or a percentage of RAM."""
    m = re.fullmatch(r"(\d+)([kKmMgGtTpPeE%]?)", value)
    if not m:
        raise MountError(f'invalid tmpfs option "{option}": not a size')
    number, unit = int(m.group(1)), m.group(2).lower()
    if unit == "%":
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * number // 100
    return number << (10 * " kmgtpe".index(unit)) if unit else number


# --- all requests together ------------------------------------------------------------------------
def check_duplicates(requests: Sequence[MountRequest]) -> None:
    """Two mounts on one target: docker's ``Duplicate mount point``."""
    seen: set[str] = set()
    for request in requests:
        if request.target in seen:
            raise MountError(f"Duplicate mount point: {request.target}")
        seen.add(request.target)


@dataclass(frozen=True)
class MountPoint:
    """One mount as ``docker inspect`` lists it under ``Mounts`` (--tmpfs ones are not listed there)."""

    type: str
    destination: str
    source: str = ""
    name: str = ""
    mode: str = ""
    rw: bool = True
    propagation: str = ""
    anonymous: bool = False

    def inspect(self) -> dict:
        out = {"Type": self.type}
        if self.type == "volume":
            out["Name"] = self.name
        out.update({"Source": self.source, "Destination": self.destination})
        if self.type == "volume":
            out["Driver"] = "local"
        out.update({"Mode": self.mode, "RW": self.rw, "Propagation": self.propagation})
        return out


@dataclass(frozen=True)
class ResolvedMounts:
    """What a container mounts: the sandbox's binds and tmpfs, the volumes it uses (by name; the
    ``anonymous`` ones are removed with the container by ``rm -v``/``--rm``), and ``points`` for inspect."""

    binds: tuple = ()
    tmpfs: tuple = ()
    volume_names: tuple[str, ...] = ()
    anonymous: tuple[str, ...] = ()
    points: tuple[MountPoint, ...] = field(default=())

    def to_dict(self) -> dict:
        return {"binds": [asdict(b) for b in self.binds], "tmpfs": [asdict(t) for t in self.tmpfs],
                "volume_names": list(self.volume_names), "anonymous": list(self.anonymous),
                "points": [asdict(p) for p in self.points]}

    @classmethod
    def from_dict(cls, data: dict) -> "ResolvedMounts":
        from ..sandbox.spec import BindMount, TmpfsMount

        return cls(binds=tuple(BindMount(**b) for b in data.get("binds", ())),
                   tmpfs=tuple(TmpfsMount(**t) for t in data.get("tmpfs", ())),
                   volume_names=tuple(data.get("volume_names", ())), anonymous=tuple(data.get("anonymous", ())),
                   points=tuple(MountPoint(**p) for p in data.get("points", ())))


def resolve_mounts(requests: Sequence[MountRequest], image_volumes: Iterable[str], volumes,
                   rootfs_view=None) -> ResolvedMounts:
    """The mounts of a new container.

    ``requests``: parsed ``-v``/``--mount``/``--tmpfs``; ``image_volumes``: the image config's
    ``Volumes`` keys; ``volumes``: a ``VolumeStore``; ``rootfs_view``: the image's file tree (a
    ``LayeredTree`` of its layers, top first) to copy into new volumes, or None for no copy-up.
    Anonymous volumes made here are removed again if a later mount fails. Runs under the volumes
    lock (``volumes.hold()``, re-entrant): hold it yourself until the container's record naming
    ``volume_names`` is written, so that no ``volume prune`` removes them in between.
    """
    check_duplicates(requests)
    covered = {r.target for r in requests}
    wanted = list(requests)
    for path in sorted(set(image_volumes or ())):
        target = _clean("/" + path.lstrip("/")) if path else ""
        if target and target != "/" and target not in covered:
            covered.add(target)
            wanted.append(MountRequest("volume", target, origin="VOLUME"))
    with volumes.hold():
        return _resolve(wanted, volumes, rootfs_view)


def _resolve(wanted: list[MountRequest], volumes, rootfs_view) -> ResolvedMounts:
    from ..sandbox.spec import BindMount, TmpfsMount
    from .copyup import check_not_file, copy_up

    binds, tmpfs, names, anonymous, points = [], [], [], [], []
    try:
        for request in wanted:
            if request.type == "bind":
                source = request.source
                if not os.path.lexists(source):
                    if not request.create_source:
                        raise MountError(f'invalid mount config for type "bind": bind source path does not exist: '
                                         f"{source}")
                    os.makedirs(source, 0o755, exist_ok=True)
                binds.append(BindMount(source, request.target, readonly=request.readonly))
                points.append(MountPoint("bind", request.target, source=source, mode=request.mode,
                                         rw=not request.readonly, propagation=request.propagation or "rprivate"))
            elif request.type == "tmpfs":
                tmpfs.append(TmpfsMount(request.target, size=request.tmpfs_size, mode=request.tmpfs_mode or 0o1777,
                                        readonly=request.readonly, noexec="noexec" in request.tmpfs_options,
                                        nodev="nodev" in request.tmpfs_options))
                if request.origin == "--mount":
                    points.append(MountPoint("tmpfs", request.target, rw=not request.readonly))
            else:
                volume = volumes.create(request.source or None, dict(request.labels))
                if not request.source:
                    anonymous.append(volume.name)
                if request.copy_data and rootfs_view is not None:
                    copy_up(rootfs_view, request.target, volume.mountpoint, lock_dir=volumes.path(volume.name))
                elif rootfs_view is not None:
                    check_not_file(rootfs_view, request.target)
                names.append(volume.name)
                binds.append(BindMount(volume.mountpoint, request.target, readonly=request.readonly))
                points.append(MountPoint("volume", request.target, source=volume.mountpoint, name=volume.name,
                                         mode=request.mode, rw=not request.readonly, anonymous=not request.source))
    except BaseException:
        for name in anonymous:
            try:
                volumes.remove(name, force=True)
            except Exception:                                  # noqa: BLE001  (the first error is the one to report)
                pass
        raise
    return ResolvedMounts(tuple(binds), tuple(tmpfs), tuple(dict.fromkeys(names)), tuple(anonymous),
                          tuple(sorted(points, key=lambda p: p.destination)))


__all__ = ["MountRequest", "MountError", "MountPoint", "ResolvedMounts", "parse_volume", "parse_mount",
           "parse_tmpfs", "parse_size", "check_duplicates", "resolve_mounts"]
