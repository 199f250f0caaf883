"""Content digests (``sha256:<hex>``): parse, validate, compute, shorten, chain.

Digests are plain ``str`` values everywhere in the image model; this module is the one place that
decides whether a string is one. Validation follows ``github.com/opencontainers/go-digest`` (the
errors are its texts) with sha256, sha384 and sha512 registered, as Docker registers them.

Two names are kept apart, as go-containerregistry does: a *digest* names a blob as stored (a
compressed layer, a manifest, a config), a *diff_id* names an uncompressed layer tar. Both are
digests in form; which one a value is lives in the field name, never in the value.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from ..errors import ImageError

__all__ = [
    "SHA256", "ALGORITHMS", "DIGEST_PATTERN", "EMPTY_SHA256", "digest_problem", "parse_digest", "is_digest",
    "split_digest", "digest_hex", "sha256_digest", "digest_bytes", "short_id", "chain_ids", "chain_id",
]

SHA256 = "sha256"
# Algorithm -> length of its hex encoding (go-digest's registered algorithms, as Docker imports them).
ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}
# go-digest's DigestRegexp: any well-formed digest, registered algorithm or not.
DIGEST_PATTERN = r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+"
EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

_ANY_DIGEST = re.compile(DIGEST_PATTERN + r"\Z", re.ASCII)
_LOWER_HEX = re.compile(r"[a-f0-9]+\Z")

ERR_FORMAT = "invalid checksum digest format"
ERR_LENGTH = "invalid checksum digest length"
ERR_UNSUPPORTED = "unsupported digest algorithm"


def digest_problem(text: str) -> str | None:
    """go-digest's ``Digest.Validate``: None when valid, else its error text."""
    algorithm, sep, encoded = text.partition(":")
    if not sep or not algorithm or not encoded:
        return ERR_FORMAT
    size = ALGORITHMS.get(algorithm)
    if size is None:
        return ERR_UNSUPPORTED if _ANY_DIGEST.match(text) else ERR_FORMAT
    if len(encoded) != size:
        return ERR_LENGTH
    if not _LOWER_HEX.match(encoded):
        return ERR_FORMAT
    return None


def parse_digest(text: str, what: str = "digest") -> str:
    """Return ``text`` when it is a valid digest; raise :class:`ImageError` naming it otherwise."""
    if not isinstance(text, str):
        raise ImageError(f"{what} must be a string, not {type(text).__name__}", str(text))
    problem = digest_problem(text)
    if problem:
        raise ImageError(f"invalid {what} {text!r}: {problem}", text)
    return text


def is_digest(text: object) -> bool:
    return isinstance(text, str) and digest_problem(text) is None


def split_digest(digest: str) -> tuple[str, str]:
    """``("sha256", "<hex>")`` of a valid digest."""
    algorithm, _, encoded = parse_digest(digest).partition(":")
    return algorithm, encoded


def digest_hex(digest: str) -> str:
    """The encoded part (``<hex>``) of a valid digest; the name of its blob file."""
    return split_digest(digest)[1]


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``: the digest of every blob pybuild writes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_bytes(data: bytes, algorithm: str = SHA256) -> str:
    """The digest of ``data`` with ``algorithm`` (to verify a blob named by a sha512 digest)."""
    if algorithm not in ALGORITHMS:
        raise ImageError(f"{ERR_UNSUPPORTED}: {algorithm}", algorithm)
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def short_id(digest: str, length: int = 12) -> str:
    """Docker's short ID: the first 12 hex characters, no algorithm (``docker images`` IMAGE ID)."""
    return digest_hex(digest)[:length]


def chain_ids(diff_ids: Iterable[str]) -> tuple[str, ...]:
    """The OCI ChainID of each prefix of ``diff_ids``: identifies a stack of applied layers."""
    out: list[str] = []
    for diff_id in diff_ids:
        parse_digest(diff_id, "diff_id")
        out.append(diff_id if not out else sha256_digest(f"{out[-1]} {diff_id}".encode()))
    return tuple(out)


def chain_id(diff_ids: Iterable[str]) -> str:
    """The ChainID of the whole stack ("" for no layers)."""
    ids = chain_ids(diff_ids)
    return ids[-1] if ids else ""
