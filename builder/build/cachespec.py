"""``--cache-to`` / ``--cache-from`` values (buildx's syntax: CSV ``key=value`` fields, a bare value
being a registry reference) parsed into ``CacheSpec``; bad ones are usage errors naming the flag."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import PybuildError, UsageError

_TYPES = ("registry", "local", "inline")
# buildx attributes that describe what we always write (an OCI image manifest, gzip layers): accepted
_ALWAYS = ("oci-mediatypes", "image-manifest", "compression")
_TO_ATTRS = {"registry": ("ref", "mode", "ignore-error", *_ALWAYS), "local": ("dest", "mode", "ignore-error", *_ALWAYS),
             "inline": ()}
_FROM_ATTRS = {"registry": ("ref",), "local": ("src",), "inline": ()}


class CacheExportError(PybuildError):
    """Writing a ``--cache-to`` destination failed (the build itself succeeded)."""


@dataclass(frozen=True)
class CacheSpec:
    type: str                 # registry | local | inline
    ref: str = ""             # registry: HOST/REPO[:TAG]
    path: str = ""            # local: dest (--cache-to) or src (--cache-from)
    mode: str = "min"         # --cache-to: min (the final stage's chain) | max (every stage built)
    ignore_error: bool = False
    text: str = ""

    def describe(self) -> str:
        if self.type == "registry":
            return f"registry {self.ref}"
        if self.type == "local":
            return f"directory {self.path}"
        return "the image config (inline)"


def _bool(value: str, flag: str, text: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise UsageError(f"{flag} {text}: {value!r} is not a boolean")


def parse_cache_spec(text: str, *, to: bool) -> CacheSpec:
    """One ``--cache-to`` (``to``) or ``--cache-from`` value."""
    flag = "--cache-to" if to else "--cache-from"
    try:
        fields = next(csv.reader([text]), [])
    except csv.Error as err:
        raise UsageError(f"{flag} {text}: {err}") from None
    if len(fields) == 1 and "=" not in fields[0]:
        return CacheSpec("registry", ref=fields[0].strip(), text=text)   # buildx: a bare ref
    attrs: dict[str, str] = {}
    for field in fields:
        key, sep, value = field.partition("=")
        if not sep:
            raise UsageError(f"{flag} {text}: invalid value {field!r} (expected key=value)")
        attrs[key.strip().lower()] = value.strip()
    kind = attrs.pop("type", "")
    if not kind:
        raise UsageError(f"{flag} {text}: type is required")
    if kind not in _TYPES:
        raise UsageError(f"{flag} {text}: cache type {kind!r} is not supported (use registry, local or inline)")
    known = (_TO_ATTRS if to else _FROM_ATTRS)[kind]
    for key in attrs:
        if key not in known:
            takes = f"it takes {', '.join(known)}" if known else "it takes none"
            raise UsageError(f"{flag} {text}: type={kind} has no attribute {key!r} ({takes})")
    if attrs.get("compression", "gzip") != "gzip":
        raise UsageError(f"{flag} {text}: only compression=gzip is supported for the cache")
    for key in ("oci-mediatypes", "image-manifest"):
        if key in attrs and not _bool(attrs[key], flag, text):
            raise UsageError(f"{flag} {text}: {key}=false is not supported (the cache is an OCI image manifest)")
    mode = attrs.get("mode", "min")
    if mode not in ("min", "max"):
        raise UsageError(f"{flag} {text}: mode must be min or max, not {mode!r}")
    spec = CacheSpec(kind, ref=attrs.get("ref", ""), path=attrs.get("dest" if to else "src", ""), mode=mode,
                     ignore_error=_bool(attrs["ignore-error"], flag, text) if "ignore-error" in attrs else False,
                     text=text)
    if kind == "registry" and not spec.ref:
        raise UsageError(f"{flag} {text}: ref is required for a registry cache")
    if kind == "local" and not spec.path:
        raise UsageError(f"{flag} {text}: {'dest' if to else 'src'} is required for a local cache")
    if kind == "inline" and not to:
        raise UsageError(f"{flag} {text}: inline cache is read from an image: --cache-from REF")
    if spec.ref:
        reference(spec.ref, flag, text)
    return spec


def parse_cache_specs(values: Iterable[str], *, to: bool) -> tuple[CacheSpec, ...]:
    return tuple(parse_cache_spec(v, to=to) for v in values if v.strip())


def reference(ref: str, flag: str = "", text: str = ""):
    from ..errors import InvalidReference
    from ..image.reference import parse_reference

    try:
        return parse_reference(ref)
    except InvalidReference as err:
        if flag:
            raise UsageError(f"{flag} {text}: {err.message}") from None
        raise
