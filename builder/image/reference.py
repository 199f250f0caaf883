"""Image references with Docker's grammar and Docker Hub defaults.

Follows ``github.com/distribution/reference``: the grammar of ``regexp.go``, ``Parse`` (grammar
only), ``ParseNormalizedNamed`` (Docker Hub defaults: ``busybox`` -> ``docker.io/library/busybox``,
uppercase repositories refused) and ``TagNameOnly`` (``:latest`` when neither tag nor digest is
given), with the library's error texts. Errors are :class:`InvalidReference` whose message is the
Docker CLI's ``Error parsing reference: "X" is not a valid repository/tag: <reason>``; ``reason``
holds the library's bare text and ``subject`` the input.

Docker also names images by ID: a 64-hex string is never a name, and a shorter hex prefix may be
either (``parse_lookup``: the store tries the name first, then the ID prefix, as ``docker`` does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..gotext import go_quote
from ..errors import InvalidReference
from .digest import digest_problem

__all__ = [
    "Reference", "ImageIdPrefix", "ImageLookup", "DEFAULT_DOMAIN", "LEGACY_DEFAULT_DOMAIN", "OFFICIAL_REPO_PREFIX",
    "DEFAULT_TAG", "NAME_TOTAL_LENGTH_MAX", "parse_reference", "parse_normalized_named", "parse_raw_reference",
    "is_image_id", "parse_image_id", "parse_lookup", "validate_tag",
]

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# The grammar (distribution/reference regexp.go). Go's \w is ASCII, hence re.ASCII everywhere.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = r"(?:" + _DOMAIN_NAME + "|" + _IPV6 + r")(?::[0-9]+)?"
_PATH_COMPONENT = _ALPHANUMERIC + r"(?:" + _SEPARATOR + _ALPHANUMERIC + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_NAME = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"

_REFERENCE_RE = re.compile(r"(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?\Z", re.ASCII)
_ANCHORED_NAME_RE = re.compile(r"(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")\Z", re.ASCII)
_ANCHORED_TAG_RE = re.compile(_TAG + r"\Z", re.ASCII)
_ANCHORED_DIGEST_RE = re.compile(_DIGEST + r"\Z", re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}\Z")
_ID_PREFIX_RE = re.compile(r"(?:sha256:)?([a-f0-9]{1,64})\Z")

# The library's error texts.
ERR_FORMAT = "invalid reference format"
ERR_UPPERCASE = "repository name must be lowercase"
ERR_EMPTY = "repository name must have at least one component"
ERR_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
ERR_TAG_FORMAT = "invalid tag format"
ERR_DIGEST_FORMAT = "invalid digest format"


def _invalid(text: str, reason: str, hint: str = "") -> InvalidReference:
    """Docker's wording plus, for its catch-all "invalid reference format", what exactly is wrong."""
    message = f"Error parsing reference: {go_quote(text)} is not a valid repository/tag: {reason}"
    err = InvalidReference(message + (f" ({hint})" if hint else ""), text)
    err.reason = reason
    err.hint = hint
    return err


def _diagnose(text: str) -> str:
    """Why ``text`` fails the grammar, in words (Docker only says "invalid reference format")."""
    if text == "":
        return "the reference is empty"
    if any(c.isspace() for c in text):
        return "a reference cannot contain whitespace"
    if "://" in text:
        return "a reference has no URL scheme"
    rest, at, digest = text.partition("@")
    if at and not re.fullmatch(_DIGEST, digest, re.ASCII):
        return "a digest is <algorithm>:<hex>, with at least 32 hexadecimal digits"
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        name, tag = rest[:colon], rest[colon + 1:]
        if tag == "":
            return "the tag after ':' is empty"
        if len(tag) > 128:
            return f"a tag is at most 128 characters, this one has {len(tag)}"
        if not _ANCHORED_TAG_RE.match(tag):
            return "a tag is letters, digits, '_', '.' and '-', and cannot start with '.' or '-'"
    else:
        name = rest
    if name == "" or name.endswith("/") or "//" in name:
        return "a repository name cannot have an empty path component"
    return ("a path component is lowercase letters and digits, separated by '.', '_', '__' or dashes, "
            "and starts and ends with a letter or digit")


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed reference; ``domain`` is empty only for ``parse_raw_reference`` results."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """The repository, normalized: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def familiar_name(self) -> str:
        """The repository as Docker shows it: ``busybox``, ``user/app``, ``localhost:5000/app``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        rest = self.path[len(OFFICIAL_REPO_PREFIX):] if self.path.startswith(OFFICIAL_REPO_PREFIX) else ""
        return rest if rest and "/" not in rest else self.path

    @property
    def familiar(self) -> str:
        """``FamiliarString``: the familiar name with tag and digest (``busybox:latest``)."""
        return self.familiar_name + self._suffix()

    @property
    def is_digested(self) -> bool:
        return bool(self.digest)

    @property
    def is_tagged(self) -> bool:
        return bool(self.tag)

    def _suffix(self) -> str:
        return (":" + self.tag if self.tag else "") + ("@" + self.digest if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()

    def tagged(self) -> "Reference":
        """``TagNameOnly``: add ``latest`` when neither tag nor digest is given."""
        return self if self.tag or self.digest else replace(self, tag=DEFAULT_TAG)

    def with_tag(self, tag: str) -> "Reference":
        """``WithTag``: this repository with ``tag`` (any digest kept)."""
        return replace(self, tag=validate_tag(tag, f"{self.name}:{tag}"))

    def with_digest(self, digest: str) -> "Reference":
        """``WithDigest``: this repository with ``digest`` (any tag kept)."""
        if not isinstance(digest, str) or not _ANCHORED_DIGEST_RE.match(digest):
            raise _invalid(f"{self.name}@{digest}", ERR_DIGEST_FORMAT)
        problem = digest_problem(digest)
        if problem:
            raise _invalid(f"{self.name}@{digest}", problem)
        return replace(self, digest=digest)

    def name_only(self) -> "Reference":
        """``TrimNamed``: the repository without tag or digest."""
        return Reference(self.domain, self.path)

    def docker_ref(self) -> "Reference":
        """``ParseDockerRef``'s rule: a digest wins over a tag, a bare name gets ``latest``."""
        return replace(self, tag="") if self.digest else self.tagged()


def validate_tag(tag: str, subject: str | None = None) -> str:
    """Return ``tag`` if the grammar allows it (``[\\w][\\w.-]{0,127}``), else raise."""
    if not isinstance(tag, str) or not _ANCHORED_TAG_RE.match(tag):
        raise _invalid(subject if subject is not None else f":{tag}", ERR_TAG_FORMAT)
    return tag


def parse_raw_reference(text: str) -> Reference:
    """distribution's ``Parse``: the grammar only, no Docker Hub defaults (``domain`` may be "")."""
    if text == "":
        raise _invalid(text, ERR_EMPTY, "the reference is empty")
    match = _REFERENCE_RE.match(text)
    if match is None:
        lowered = text.lower()
        if lowered != text and _REFERENCE_RE.match(lowered):
            raise _invalid(text, ERR_UPPERCASE)
        raise _invalid(text, ERR_FORMAT, _diagnose(text))
    name, tag, digest = match.group(1), match.group(2) or "", match.group(3) or ""
    name_match = _ANCHORED_NAME_RE.match(name)
    domain, path = (name_match.group(1) or "", name_match.group(2)) if name_match else ("", name)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise _invalid(text, ERR_TOO_LONG)
    if digest:
        problem = digest_problem(digest)
        if problem:
            raise _invalid(text, problem)
    return Reference(domain, path, tag, digest)


def _split_docker_domain(name: str) -> tuple[str, str]:
    """``splitDockerDomain``: which first component is a registry, and Hub's ``library/``."""
    first, sep, rest = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if first == "localhost":
        domain, remote = first, rest
    elif first == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, rest
    elif "." in first or ":" in first or first.lower() != first:
        domain, remote = first, rest
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def parse_normalized_named(text: str) -> Reference:
    """``ParseNormalizedNamed``: Docker Hub defaults, no default tag (``docker.io/library/busybox``)."""
    if not isinstance(text, str):
        raise _invalid(str(text), f"an image reference must be a string, not {type(text).__name__}")
    if _IDENTIFIER_RE.match(text):
        raise _invalid(text, f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(text)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise _invalid(text, f"{ERR_FORMAT}: repository name ({remote}) must be lowercase")
    try:
        ref = parse_raw_reference(f"{domain}/{remainder}")
    except InvalidReference as err:
        raise _invalid(text, err.reason, err.hint and _diagnose(text)) from None
    return ref


def parse_reference(text: str) -> Reference:
    """A user's image reference, fully normalized: ``busybox`` -> ``docker.io/library/busybox:latest``."""
    return parse_normalized_named(text).tagged()


# -- image IDs -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ImageIdPrefix:
    """An image ID or a prefix of one (``sha256`` hex); ``full`` when all 64 digits are given."""

    hex: str
    algorithm: str = "sha256"

    @property
    def full(self) -> bool:
        return len(self.hex) == 64

    @property
    def digest(self) -> str:
        """The full ID as a digest (only when ``full``)."""
        return f"{self.algorithm}:{self.hex}" if self.full else ""

    def matches(self, image_id: str) -> bool:
        """Whether the image ID (``sha256:<hex>``) starts with this prefix."""
        return image_id.startswith(f"{self.algorithm}:{self.hex}")

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def is_image_id(text: str) -> bool:
    """Docker's rule: a 64-hex string (or ``sha256:`` + 64 hex) is an ID, never a name."""
    match = _ID_PREFIX_RE.match(text)
    return match is not None and len(match.group(1)) == 64


def parse_image_id(text: str) -> ImageIdPrefix:
    """An ID or short ID: ``<hex prefix>`` or ``sha256:<hex prefix>``, lowercase hex, 1-64 digits."""
    match = _ID_PREFIX_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidReference(f"invalid image ID {go_quote(str(text))}: an image ID is 1 to 64 lowercase "
                               f"hexadecimal digits, optionally prefixed with \"sha256:\"", str(text))
    return ImageIdPrefix(match.group(1))


@dataclass(frozen=True, slots=True)
class ImageLookup:
    """What a user's word may name: a reference, an ID prefix, or both (``abc123`` is both)."""

    text: str
    reference: Reference | None
    id_prefix: ImageIdPrefix | None


def parse_lookup(text: str) -> ImageLookup:
    """Parse a word naming a local image (``docker inspect X``): try the name first, then the ID.

    A full ID (64 hex, with or without ``sha256:``) is only an ID. Anything else that parses as a
    reference is one (with ``:latest`` added); a hex word is also an ID prefix. Raises
    :class:`InvalidReference` (the reference's error) when it is neither.
    """
    if is_image_id(text):
        return ImageLookup(text, None, parse_image_id(text))
    id_prefix = parse_image_id(text) if _ID_PREFIX_RE.match(text) else None
    try:
        reference = parse_reference(text)
    except InvalidReference:
        if id_prefix is None:
            raise
        reference = None
    return ImageLookup(text, reference, id_prefix)
