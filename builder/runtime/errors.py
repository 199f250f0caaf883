"""Errors of the container runtime (part of pybuild's one hierarchy, under ``PybuildError``)."""

from __future__ import annotations

from ..errors import PybuildError


class ContainerError(PybuildError):
    """A container operation failed; ``subject`` names the container (name or id) when one is known."""

    def __init__(self, message: str, subject: str | None = None):
        super().__init__(message)
        self.subject = subject


class NoSuchContainer(ContainerError):
    """No container by that name or id (docker: ``Error: No such container: x``)."""


class ContainerConflict(ContainerError):
    """The operation conflicts with the container's state or name (docker's 409 conflicts)."""


__all__ = ["ContainerError", "NoSuchContainer", "ContainerConflict"]
