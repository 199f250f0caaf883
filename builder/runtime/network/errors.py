"""Network errors (under ``PybuildError``: the CLI prints them as ``error: ...`` and exits 1)."""

from __future__ import annotations

from ...errors import PybuildError


class NetworkError(PybuildError):
    """A network operation failed (bad input, a conflict, or a failed ip/iptables command)."""


class NoSuchNetwork(NetworkError):
    """No network by that name or id (docker: ``network NAME not found``)."""

    def __init__(self, name: str):
        super().__init__(f"network {name} not found")
        self.name = name


__all__ = ["NetworkError", "NoSuchNetwork"]
