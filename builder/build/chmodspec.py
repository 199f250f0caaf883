"""``COPY --chmod``: an octal mode, or a symbolic one as chmod(1) writes it (BuildKit >= 1.14).

BuildKit parses symbolic modes with a umask of 0, so ``+x`` means ``a+x``. Clauses are comma
separated: ``[ugoa]*([-+=]([rwxXst]*|[ugo]))+``; ``X`` is execute only for directories and for files
that already have an execute bit; ``g=u`` copies the user bits. Each file and directory gets the
clauses applied to its own mode.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass

from ..errors import PybuildError


class ChmodError(PybuildError):
    pass


_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o1007}
_CLAUSE = re.compile(r"([ugoa]*)((?:[-+=](?:[rwxXst]*|[ugo]))+)$")
_OPS = re.compile(r"([-+=])([ugo](?![rwxXst])|[rwxXst]*)")


@dataclass(frozen=True)
class ChmodSpec:
    text: str
    octal: int | None          # set for an octal mode
    clauses: tuple = ()        # ((who_mask, op, perms, copy_from), ...) for a symbolic one

    def apply(self, mode: int, is_dir: bool) -> int:
        """The permission bits (incl. setuid/setgid/sticky) of an entry whose bits were ``mode``."""
        if self.octal is not None:
            return self.octal
        current = stat.S_IMODE(mode)
        for who, op, perms, source in self.clauses:
            if source:
                shift = {"u": 6, "g": 3, "o": 0}[source]
                bits = (current >> shift) & 0o7
                value = (bits << 6) | (bits << 3) | bits
                value &= who & 0o777
            else:
                value = 0
                if "r" in perms:
                    value |= 0o444
                if "w" in perms:
                    value |= 0o222
                if "x" in perms or ("X" in perms and (is_dir or current & 0o111)):
                    value |= 0o111
                if "s" in perms:
                    value |= 0o6000
                if "t" in perms:
                    value |= 0o1000
                value &= who
            if op == "+":
                current |= value
            elif op == "-":
                current &= ~value
            else:
                # '=' clears the who's bits (but keeps setuid/setgid of directories, as chmod(1))
                keep = 0o6000 if is_dir else 0
                current = (current & ~(who & ~keep)) | value
        return current & 0o7777


def parse_chmod(text: str) -> ChmodSpec | None:
    """The --chmod value; BuildKit's error texts for what it rejects."""
    if not text:
        return None
    if text.isascii() and text.isdigit():
        try:
            value = int(text, 8)
        except ValueError:
            value = None
        if value is None or value > 0o7777:
            raise ChmodError(f"invalid chmod parameter: '{text}'. it should be octal string and between 0 and 07777")
        return ChmodSpec(text, value)
    clauses = []
    for clause in text.split(","):
        found = _CLAUSE.match(clause)
        if not found:
            raise ChmodError(f"invalid chmod parameter: '{text}'. it should be octal string and between 0 "
                             "and 07777" if re.fullmatch(r"[0-9]+", clause or "x") else f"invalid mode: {text}")
        who_text, ops = found.groups()
        who = 0
        for ch in who_text or "a":
            who |= 0o7777 if ch == "a" else _WHO[ch]
        if not who_text:
            who = 0o7777          # umask 0
        for op, perms in _OPS.findall(ops):
            source = perms if perms in ("u", "g", "o") else ""
            clauses.append((who, op, "" if source else perms, source))
    return ChmodSpec(text, None, tuple(clauses))
