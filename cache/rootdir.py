"""Where the state root is, with nothing but ``os`` (the no-op rebuild path imports this alone)."""

from __future__ import annotations

import os
from collections.abc import Mapping

SYSTEM_ROOT_PATH = "/var/lib/pybuild"


def default_root_path(env: Mapping[str, str] = os.environ, *, euid: int | None = None) -> str:
    """``PYBUILD_ROOT``, else ``/var/lib/pybuild`` for root, else the XDG data dir.

    A relative ``XDG_DATA_HOME`` is ignored, as the XDG base-directory spec requires.
    """
    explicit = env.get("PYBUILD_ROOT")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    if (os.geteuid() if euid is None else euid) == 0:
        return SYSTEM_ROOT_PATH
    xdg = env.get("XDG_DATA_HOME")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "pybuild")
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".local", "share", "pybuild")
