"""Canonical JSON: the one byte form of every manifest, index and config pybuild writes.

A digest names bytes, not meaning, so two rules keep digests stable:

* what *we* produce is written one way only (``canonical_json``): object keys sorted by code
  point (= by UTF-8 bytes, as Go sorts map keys), no insignificant whitespace, UTF-8 text rather
  than ``\\u`` escapes, and strings and numbers spelled as Go's ``encoding/json`` spells them
  (short escapes for ``\\b \\f \\n \\r \\t``, ``\\u00XX`` for other control characters, U+2028/9
  escaped, shortest float digits). Go's ``Marshal`` also escapes ``< > &`` as ``\\u003c`` etc.;
  we do not by default (``escape_html=True`` reproduces it, to compare with Go output);
* what we *read* is never written again: the model keeps the original bytes (``raw``) and a
  value that was not changed is stored and hashed from them. ``load_json`` parses those bytes
  the way Go would (invalid UTF-8 becomes U+FFFD, NaN/Infinity rejected) into frozen values.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from functools import cached_property
from typing import Any

from ..errors import ImageError
from .digest import sha256_digest

__all__ = ["FrozenMap", "EMPTY", "freeze", "thaw", "canonical_json", "canonical_digest", "load_json", "Document"]


class FrozenMap(Mapping):
    """An immutable, hashable mapping; JSON objects inside the frozen model values."""

    __slots__ = ("_data", "_hash")

    def __init__(self, items: Mapping | Any = ()):
        object.__setattr__(self, "_data", dict(items))
        object.__setattr__(self, "_hash", None)

    def __setattr__(self, name, value):
        raise AttributeError("FrozenMap is immutable")

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self) -> Iterator:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            object.__setattr__(self, "_hash", hash(frozenset(self._data.items())))
        return self._hash

    def __eq__(self, other) -> bool:
        if isinstance(other, FrozenMap):
            return self._data == other._data
        return isinstance(other, Mapping) and self._data == dict(other)

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def set(self, key, value) -> "FrozenMap":
        """A copy with ``key`` set (appended when new, as Go keeps no order anyway)."""
        data = dict(self._data)
        data[key] = value
        return FrozenMap(data)


EMPTY = FrozenMap()


def freeze(value):
    """A decoded JSON value made immutable: objects -> FrozenMap, arrays -> tuples."""
    if isinstance(value, FrozenMap):
        return value
    if isinstance(value, Mapping):
        return FrozenMap((k, freeze(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value):
    """The inverse of ``freeze`` (plain dicts and lists, for callers that edit)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


# -- writing ----------------------------------------------------------------------------------

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE = re.compile('[\x00-\x1f"\\\\\u2028\u2029\ud800-\udfff]')
_NEEDS_ESCAPE_HTML = re.compile('[\x00-\x1f"\\\\\u2028\u2029\ud800-\udfff<>&]')


def _escape_char(match: re.Match) -> str:
    ch = match.group()
    short = _SHORT_ESCAPES.get(ch)
    if short is not None:
        return short
    if "\ud800" <= ch <= "\udfff":  # a lone surrogate is not UTF-8; Go would have read U+FFFD
        return "\ufffd"
    return f"\\u{ord(ch):04x}"


def _go_string(s: str, escape_html: bool) -> str:
    pattern = _NEEDS_ESCAPE_HTML if escape_html else _NEEDS_ESCAPE
    return '"' + pattern.sub(_escape_char, s) + '"'


def _go_float(f: float) -> str:
    """``encoding/json``'s float64 spelling: shortest digits, ``e`` only outside [1e-6, 1e21)."""
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"json: unsupported value: {f!r}")
    text = repr(f)
    if f != 0 and (abs(f) < 1e-6 or abs(f) >= 1e21):
        mantissa, _, exponent = text.partition("e")
        sign = exponent[0] if exponent[0] in "+-" else "+"
        digits = exponent.lstrip("+-")
        if sign == "-" and len(digits) == 2 and digits[0] == "0":
            digits = digits[1]  # Go's clean-up: e-07 -> e-7 (but e+21 stays)
        return f"{mantissa}e{sign}{digits}"
    return format(Decimal(text).normalize(), "f")


def _encode(value, out: list, escape_html: bool) -> None:
    if isinstance(value, str):
        out.append(_go_string(value, escape_html))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(_go_float(value))
    elif isinstance(value, Mapping):
        keys = list(value)
        if not all(isinstance(k, str) for k in keys):
            raise ValueError(f"json: object keys must be strings: {keys!r}")
        out.append("{")
        for i, key in enumerate(sorted(keys)):
            if i:
                out.append(",")
            out.append(_go_string(key, escape_html))
            out.append(":")
            _encode(value[key], out, escape_html)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, escape_html)
        out.append("]")
    else:
        raise ValueError(f"json: unsupported type: {type(value).__name__}")


def canonical_json(value, *, escape_html: bool = False) -> bytes:
    """The canonical UTF-8 bytes of a JSON value (dicts, FrozenMaps, lists, tuples, scalars)."""
    out: list[str] = []
    _encode(value, out, escape_html)
    return "".join(out).encode("utf-8")


def canonical_digest(value) -> str:
    """``sha256:`` of ``canonical_json(value)``."""
    return sha256_digest(canonical_json(value))


# -- reading ----------------------------------------------------------------------------------

def _reject_constant(name: str):
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text} out of range for float64")
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_float)


def load_json(data: bytes | str, what: str = "document", subject: str | None = None):
    """Parse JSON bytes as Go's ``encoding/json`` would and return a frozen value.

    Raises :class:`ImageError` naming ``what`` (e.g. "image manifest") on any syntax error.
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        value, end = _DECODER.raw_decode(text, _skip_space(text, 0))
    except (ValueError, RecursionError) as err:
        raise ImageError(f"invalid {what}: {_json_message(err)}", subject) from None
    if _skip_space(text, end) != len(text):
        raise ImageError(f"invalid {what}: invalid character after top-level value", subject)
    return freeze(value)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _json_message(err: Exception) -> str:
    if isinstance(err, json.JSONDecodeError):
        return f"{err.msg} at offset {err.pos}"
    if isinstance(err, RecursionError):
        return "exceeded max depth"
    return str(err)


# -- documents ----------------------------------------------------------------------------------

class Document:
    """Mixin for manifests, indexes and configs: bytes read are the bytes kept.

    A value made by a parser carries the exact bytes it came from (``raw``) and is stored and
    hashed from them. Any other value, including one derived with ``dataclasses.replace`` or a
    ``with_*`` method (which build a new object, so ``raw`` does not follow), is written as
    ``canonical_json(self.to_dict())``. Subclasses are frozen dataclasses without slots.
    """

    def to_dict(self) -> dict:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    @property
    def raw(self) -> bytes | None:
        """The bytes this value was parsed from, or None for a value made here."""
        return self.__dict__.get("_raw")

    def _keep_raw(self, data: bytes):
        object.__setattr__(self, "_raw", bytes(data))
        return self

    def canonical_bytes(self) -> bytes:
        """This value as pybuild writes it, whatever it was read from."""
        return canonical_json(self.to_dict())

    @cached_property
    def _bytes(self) -> bytes:
        raw = self.raw
        return raw if raw is not None else self.canonical_bytes()

    def to_bytes(self) -> bytes:
        """The stored form: the original bytes if read, else the canonical JSON."""
        return self._bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self._bytes)

    @property
    def size(self) -> int:
        return len(self._bytes)
