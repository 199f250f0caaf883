"""Go's ``time.ParseDuration`` (``1m30s``, ``500ms``, ``2h``), which docker's duration flags use."""

from __future__ import annotations

import re

from .errors import ContainerError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds; a bare ``0`` is allowed, as in Go."""
    value = text.strip()
    if value in ("0", "+0", "-0"):
        return 0.0
    pos, total = 0, 0.0
    while pos < len(value):
        m = _PART.match(value, pos)
        if not m:
            raise ContainerError(f'invalid duration "{text}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not value:
        raise ContainerError(f'invalid duration "{text}"')
    return total


__all__ = ["parse_duration"]
