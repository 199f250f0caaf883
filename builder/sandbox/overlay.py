"""The overlay mount options for a rootfs, including lowerdir lists longer than a page.

``mount(2)`` takes the options in one page (4096 bytes with the NUL), and overlay accepts at most 500
lower layers.  Absolute paths of 128 snapshot directories do not fit, so -- like Docker's overlay2
``l/`` directory -- the sandbox gives every layer a short symlink in a per-run directory and mounts
with relative names from inside it (``lowerdir=0:1:2:...``).  Short paths are used as they are when
they fit and contain none of overlay's separators, which keeps /proc/self/mountinfo readable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import SandboxError

MAX_LOWER_LAYERS = 500  # OVL_MAX_STACK
_MOUNT_DATA_LIMIT = os.sysconf("SC_PAGE_SIZE") - 1 if hasattr(os, "sysconf") else 4095
_SPECIAL = (",", ":", "\\", "=")
# Overlay features that would leave an incomplete upper dir (see fs/whiteout.py): turned off when the
# kernel knows them, so the upper dir is always a complete layer diff.
_FEATURES_OFF = ("index", "redirect_dir", "metacopy")


def kernel_feature_options(parameters_dir: str = "/sys/module/overlay/parameters") -> tuple[str, ...]:
    return tuple(f"{name}=off" for name in _FEATURES_OFF if os.path.exists(os.path.join(parameters_dir, name)))


def _link_name(index: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    name = ""
    while True:
        index, rem = divmod(index, 36)
        name = digits[rem] + name
        if index == 0:
            return name


@dataclass(frozen=True, slots=True)
class OverlayPlan:
    """``mount("overlay", target, "overlay", 0, options)`` run from ``cwd`` (if set), after ``links``
    (name -> target symlinks inside ``cwd``) exist."""

    options: str
    cwd: str | None = None
    links: tuple[tuple[str, str], ...] = ()


def plan_overlay(lowers: list[str] | tuple[str, ...], upper: str | None, work: str | None, links_dir: str,
                 extra: tuple[str, ...] = (), limit: int = _MOUNT_DATA_LIMIT) -> OverlayPlan:
    """Options for an overlay of ``lowers`` (top first) with ``upper``/``work`` (``None``: a read-only
    overlay, which needs two lowers at least)."""
    if not lowers:
        raise SandboxError("an overlay needs at least one lower directory")
    if len(lowers) > MAX_LOWER_LAYERS:
        raise SandboxError(f"too many layers for overlayfs: {len(lowers)} (at most {MAX_LOWER_LAYERS})")
    tail = "".join(f",{opt}" for opt in extra)
    writable = [p for p in (upper, work) if p is not None]
    rw = f",upperdir={upper},workdir={work}" if upper is not None else ""
    direct = f"lowerdir={':'.join(lowers)}{rw}{tail}"
    if len(direct) <= limit and not any(ch in p for p in (*lowers, *writable) for ch in _SPECIAL):
        return OverlayPlan(direct)
    links = [(_link_name(i), lower) for i, lower in enumerate(lowers)]
    names = ":".join(name for name, _ in links)
    if upper is not None:
        links += [("U", upper), ("W", work)]          # upper case: never a layer's base-36 name
    options = f"lowerdir={names}" + (",upperdir=U,workdir=W" if upper is not None else "") + tail
    if len(options) > limit:
        raise SandboxError(f"overlay options too long even with short layer names ({len(options)} bytes)")
    return OverlayPlan(options, links_dir, tuple(links))


def create_links(plan: OverlayPlan) -> None:
    """Create the plan's symlinks (in the parent, before the sandbox starts)."""
    if not plan.links:
        return
    os.makedirs(plan.cwd, exist_ok=True)
    for name, target in plan.links:
        os.symlink(target, os.path.join(plan.cwd, name))


def mount_overlay(sys, plan: OverlayPlan, target: str) -> None:
    """Mount the planned overlay on ``target`` (inside the sandbox's mount namespace)."""
    if plan.cwd:
        sys.chdir(plan.cwd)
    try:
        sys.mount("overlay", target, "overlay", 0, plan.options)
    finally:
        if plan.cwd:
            sys.chdir("/")


__all__ = ["OverlayPlan", "plan_overlay", "create_links", "mount_overlay", "kernel_feature_options",
           "MAX_LOWER_LAYERS"]
