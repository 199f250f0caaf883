"""Go's ``path/filepath.Match``, which BuildKit uses for COPY/ADD source wildcards.

Unlike Python's fnmatch: ``*`` and ``?`` never match ``/`` but do match a leading dot, a class is
negated with ``^`` (``[^a-c]``; ``!`` is an ordinary character), ``\\`` escapes the next character,
and a malformed pattern (``[a-``) is an error rather than a literal.
"""

from __future__ import annotations

import re
from functools import lru_cache


class BadPattern(ValueError):
    """Go's filepath.ErrBadPattern."""


def has_wildcards(name: str) -> bool:
    """BuildKit's ``containsWildcards``: an unescaped ``*``, ``?`` or ``[``."""
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "*?[":
            return True
        i += 1
    return False


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            i += 1
            if i >= n:
                raise BadPattern(pattern)
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            i += 1
            negate = i < n and pattern[i] == "^"
            if negate:
                i += 1
            ranges = []
            first = True
            while True:
                if i >= n:
                    raise BadPattern(pattern)
                if pattern[i] == "]" and not first:
                    break
                first = False
                lo, i = _class_char(pattern, i)
                hi = lo
                if i < n and pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1)
                    if hi < lo:
                        raise BadPattern(pattern)
                ranges.append((lo, hi))
            body = "".join(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in ranges)
            # Go: a class never matches the separator, negated or not
            out.append(f"(?!/)[^{body}]" if negate else f"(?!/)[{body}]")
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    if i >= len(pattern):
        raise BadPattern(pattern)
    ch = pattern[i]
    if ch in "-]":
        raise BadPattern(pattern)
    if ch == "\\":
        i += 1
        if i >= len(pattern):
            raise BadPattern(pattern)
        ch = pattern[i]
    return ch, i + 1


def match(pattern: str, name: str) -> bool:
    """filepath.Match(pattern, name); ``BadPattern`` for a malformed pattern."""
    return _compile(pattern).fullmatch(name) is not None


def unescape(name: str) -> str:
    """A path without wildcards, its ``\\`` escapes removed (what Go's Match would compare it to)."""
    return re.sub(r"\\(.)", r"\1", name)
