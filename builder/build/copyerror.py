"""The error of a COPY/ADD step that cannot be done as written (the executor names the Dockerfile line)."""

from __future__ import annotations

from ..errors import PybuildError


class CopyError(PybuildError):
    """A COPY/ADD source that cannot be used (missing, a symlink loop, a bad flag value, a failed download)."""
