"""A RUN's own mounts (``RUN --mount``), mounted inside the sandbox's mount namespace in target order.

* ``BindMount``: a host path (a cache mount's directory, the ssh agent proxy socket), read-only by
  a second bind remount as runc does.
* ``TmpfsMount``: BuildKit's ``nosuid`` tmpfs, ``size=`` if given.
* ``OverlayMount``: a merged view of lower directories (a stage's snapshots, the build context with
  .dockerignore'd paths whited out in a layer made here), mounted on a point in the scratch
  directory; the wanted ``subpath`` of it, resolved inside the view, is bound onto the target.
  Read-only, or with a throwaway upper dir in the scratch directory (``rw``: writes discarded).
* ``SecretMount``: the value is written to a tmpfs mounted in this namespace only (never to a disk,
  gone with the namespace), owned and moded as asked, bound read-only (``noexec`` unless the mode
  has an execute bit).

Everything here is inside the sandbox's own mount namespace: when its pid 1 exits, every one of
these mounts goes with it, also when the build is killed.
"""

from __future__ import annotations

import os
import stat
import struct

from .errors import SandboxError
from .overlay import plan_overlay
from .paths import StubRecorder, resolve_in_root
from .spec import BindMount, OverlayMount, RunLayout, RunSpec, SecretMount, TmpfsMount
from .syscalls import MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT

_SECRETS_TMPFS_SIZE = 4 << 20    # 8 x BuildKit's 500 KiB limit per secret; a secret's own limit is checked first


def ordered(spec: RunSpec) -> list:
    """The RUN's mounts sorted by target, as BuildKit sorts them (a parent before what is inside it)."""
    items = [*spec.binds, *spec.tmpfs, *spec.overlays, *(s for s in spec.secrets if s.target)]
    return sorted(items, key=lambda m: m.target)


def _bind_readonly(sys, source: str, target: str, extra: int = 0) -> None:
    sys.mount(source, target, None, MS_BIND | MS_REC)
    sys.mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | extra | sys.mount_flags(target))


def mount_all(sys, spec: RunSpec, layout: RunLayout, stubs: StubRecorder, secret_values: dict[str, bytes]) -> None:
    secrets_dir = None
    for index, m in enumerate(ordered(spec)):
        if isinstance(m, BindMount):
            target = stubs.ensure(m.target, os.path.isdir(m.source))
            if m.readonly:
                _bind_readonly(sys, m.source, target)
            else:
                sys.mount(m.source, target, None, MS_BIND | MS_REC)
        elif isinstance(m, TmpfsMount):
            data = f"mode={m.mode:o}" + (f",size={m.size}" if m.size else "")
            sys.mount("tmpfs", stubs.ensure(m.target, True), "tmpfs", MS_NOSUID | (MS_RDONLY if m.readonly else 0)
                      | (MS_NOEXEC if m.noexec else 0) | (MS_NODEV if m.nodev else 0),
                      data)
        elif isinstance(m, OverlayMount):
            _mount_view(sys, m, os.path.join(layout.mounts, str(index)), stubs)
        elif isinstance(m, SecretMount):
            if secrets_dir is None:
                secrets_dir = os.path.join(layout.mounts, "secrets")
                os.makedirs(secrets_dir, 0o700, exist_ok=True)
                sys.mount("tmpfs", secrets_dir, "tmpfs", MS_NOSUID | MS_NODEV,
                          f"mode=0711,size={_SECRETS_TMPFS_SIZE}")
            _mount_secret(sys, m, index, secrets_dir, stubs, secret_values)


def _mount_secret(sys, m: SecretMount, index: int, directory: str, stubs: StubRecorder, values: dict) -> None:
    path = os.path.join(directory, str(index))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(values[m.id])
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.chown(path, m.uid, m.gid)
    os.chmod(path, m.mode & 0o777)
    flags = MS_NOSUID | MS_NODEV | (0 if m.mode & 0o111 else MS_NOEXEC)
    _bind_readonly(sys, path, stubs.ensure(m.target, False), flags)


def _make_whiteouts(layer: str, hidden: tuple[str, ...]) -> None:
    """Overlay whiteouts (char 0/0) for ``hidden`` paths, parents as plain directories."""
    for rel in sorted(hidden):
        path = os.path.join(layer, *rel.split("/"))
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        if not os.path.lexists(path):
            os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def _mount_view(sys, m: OverlayMount, base: str, stubs: StubRecorder) -> None:
    lowers = list(m.lower_dirs)
    if len(lowers) == 1 and m.readonly and not m.hidden:
        view = lowers[0]                                  # nothing to merge: bind the directory itself
    else:
        view = os.path.join(base, "view")
        os.makedirs(view, 0o755, exist_ok=True)
        if m.hidden:
            layer = os.path.join(base, "hide")
            os.makedirs(layer, 0o755, exist_ok=True)
            _make_whiteouts(layer, m.hidden)
            lowers.insert(0, layer)
        if m.readonly and len(lowers) == 1:
            lowers.append(_empty_dir(base))
        upper = work = None
        if not m.readonly:
            upper, work = os.path.join(base, "upper"), os.path.join(base, "work")
            os.makedirs(upper, 0o755, exist_ok=True)
            os.makedirs(work, 0o700, exist_ok=True)
        plan = plan_overlay(lowers, upper, work, os.path.join(base, "l"))
        if plan.links:
            os.makedirs(plan.cwd, exist_ok=True)
            for name, target in plan.links:
                os.symlink(target, os.path.join(plan.cwd, name))
            sys.chdir(plan.cwd)
        try:
            sys.mount("overlay", view, "overlay", MS_RDONLY if m.readonly else 0, plan.options)
        finally:
            if plan.cwd:
                sys.chdir("/")
    source = resolve_in_root(view, m.subpath) if m.subpath.strip("/") else view
    if not os.path.lexists(source):
        raise SandboxError(f"failed to mount {m.target}: {m.subpath} not found in the mount source")
    if os.path.isdir(source) != m.is_dir:
        raise SandboxError(f"failed to mount {m.target}: {m.subpath} changed type since the build looked at it")
    target = stubs.ensure(m.target, m.is_dir)
    if m.readonly:
        _bind_readonly(sys, source, target)
    else:
        sys.mount(source, target, None, MS_BIND | MS_REC)


def _empty_dir(base: str) -> str:
    path = os.path.join(base, "empty")
    os.makedirs(path, 0o755, exist_ok=True)
    return path


# --- secret values: parent -> sandbox through an anonymous memory file ------------------------------
def pack_secrets(values: dict[str, bytes]) -> int:
    """A sealed memfd holding ``values`` (read by the sandbox's init, never written to a disk); -1 if none."""
    if not values:
        return -1
    fd = os.memfd_create("pybuild-secrets", os.MFD_CLOEXEC)
    try:
        for key, value in values.items():
            raw = key.encode()
            data = struct.pack("<II", len(raw), len(value)) + raw + bytes(value)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def unpack_secrets(fd: int) -> dict[str, bytes]:
    """Read and close what ``pack_secrets`` wrote."""
    if fd < 0:
        return {}
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        key_len, value_len = struct.unpack_from("<II", data, pos)
        pos += 8
        key = data[pos:pos + key_len].decode()
        pos += key_len
        out[key] = data[pos:pos + value_len]
        pos += value_len
    return out


def secret_env(spec: RunSpec, values: dict[str, bytes]) -> tuple[str, ...]:
    """``KEY=value`` for secrets exposed as environment variables (``env=``)."""
    out = []
    for m in spec.secrets:
        if m.env and m.id in values:
            text = values[m.id].decode("utf-8", "surrogateescape")
            if "\0" in text:
                raise SandboxError(f"secret {m.id!r} cannot be an environment variable: it contains a NUL byte")
            out.append(f"{m.env}={text}")
    return tuple(out)


__all__ = ["ordered", "mount_all", "pack_secrets", "unpack_secrets", "secret_env"]
