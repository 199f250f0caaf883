"""SOURCE_DATE_EPOCH: the one place that reads it (a build arg first, then the environment)."""

from __future__ import annotations

import os

from .errors import UsageError


def source_date_epoch(build_args: dict | None = None) -> int | None:
    """Seconds since the Unix epoch, or None when unset; a malformed value is a clear error."""
    value = (build_args or {}).get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH")
    if not value:
        return None
    if not str(value).isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH must be a number of seconds, not {value!r}")
    return int(value)
