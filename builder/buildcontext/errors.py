"""The error a build context that cannot be prepared raises (docker's texts where it has one)."""

from __future__ import annotations

from ..errors import UsageError


class ContextError(UsageError):
    """A build context (main or named) that cannot be opened, fetched or read."""
