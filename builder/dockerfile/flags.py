"""Instruction flags: each instruction declares the flags it takes; this checks what was written.

Mirrors BuildKit's ``BFlags``: bool flags (``--link``, ``--link=false``), string flags (need
``=value``), repeatable string flags (``--exclude``); unknown and duplicate flags are errors with a
"did you mean" suggestion. Errors point at the offending flag.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import InstructionError
from .prepass import Word

BOOL = "bool"
STRING = "string"
STRINGS = "strings"


class FlagValues(NamedTuple):
    values: dict      # name -> str (bool flags: "true"/"false"), or tuple of str for STRINGS
    used: frozenset   # names given explicitly

    def get(self, name: str, default=None):
        return self.values.get(name, default)

    def is_true(self, name: str) -> bool:
        return self.values.get(name) == "true"

    def optional_bool(self, name: str) -> bool | None:
        return (self.values[name] == "true") if name in self.used else None


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def suggest(value: str, options, case_sensitive: bool) -> str | None:
    """BuildKit's suggestion: the closest option within edit distance 2, in the user's case."""
    needle = value if case_sensitive else value.lower()
    best, best_distance = None, 3
    for option in sorted(options):
        candidate = option if case_sensitive else option.lower()
        if candidate == needle:
            return None
        distance = levenshtein(needle, candidate)
        if distance < best_distance:
            best, best_distance = candidate, distance
    if best is None or case_sensitive:
        return best
    if value == value.lower():
        return best.lower()
    if value == value.upper():
        return best.upper()
    return best


def with_suggestion(message: str, value: str, options, case_sensitive: bool) -> tuple[str, str | None]:
    match = suggest(value, options, case_sensitive)
    if match is None:
        return message, None
    return f"{message} (did you mean {match}?)", match


def flag_error(message: str, flag: Word, node, hint: str | None = None) -> InstructionError:
    return InstructionError(message, node.line.span_at(flag.offset, len(flag.text)), hint=hint)


_DEFAULTS: dict[int, tuple[dict, FlagValues]] = {}


def _defaults(spec: dict) -> FlagValues:
    """The values of an instruction written without flags (shared: FlagValues are read-only)."""
    found = _DEFAULTS.get(id(spec))
    if found is None or found[0] is not spec:
        values = {name: (() if kind == STRINGS else default) for name, (kind, default) in spec.items()}
        found = _DEFAULTS[id(spec)] = (spec, FlagValues(values, frozenset()))
    return found[1]


def parse_flags(node, spec: dict[str, tuple[str, object]]) -> FlagValues:
    """Check ``node.flags`` against ``spec`` (name -> (kind, default))."""
    if not node.flags:
        return _defaults(spec)
    values: dict = {name: (() if kind == STRINGS else default) for name, (kind, default) in spec.items()}
    used: set[str] = set()
    for flag in node.flags:
        text = flag.text
        if text == "--":
            break
        if not text.startswith("--"):
            raise flag_error(f"arg should start with -- : {text}", flag, node)
        name_part, has_value, value = text.partition("=")
        name = name_part[2:]
        entry = spec.get(name)
        if entry is None:
            message, match = with_suggestion(f"unknown flag: {name_part}", name, spec.keys(), True)
            raise flag_error(message, flag, node, hint=f"--{match}" if match else None)
        kind = entry[0]
        if name in used and kind != STRINGS:
            raise flag_error(f"duplicate flag specified: {name_part}", flag, node)
        used.add(name)
        if kind == BOOL:
            if has_value and value == "":
                raise flag_error(f"missing a value on flag: {name_part}", flag, node)
            lowered = value.lower()
            if lowered in ("true", ""):
                values[name] = "true"
            elif lowered == "false":
                values[name] = "false"
            else:
                raise flag_error(f"expecting boolean value for flag {name_part}, not: {value}", flag, node)
        else:
            if not has_value:
                raise flag_error(f"missing a value on flag: {name_part}", flag, node)
            if kind == STRINGS:
                values[name] = values[name] + (value,)
            else:
                values[name] = value
    return FlagValues(values, frozenset(used))
