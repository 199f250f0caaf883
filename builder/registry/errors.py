"""Registry errors: each names the registry (and, when it helps, the repository and object).

    RegistryError                 (builder.errors.PybuildError)
    ├── RegistryUnreachable       no connection (no route, refused, DNS, TLS handshake) after retries
    ├── AuthenticationFailed      the registry refused our credentials (or wants some we do not have)
    ├── ManifestNotFound          no such tag or manifest digest in the repository
    ├── BlobNotFound              no such blob in the repository
    ├── BlobDigestMismatch        content received does not hash to the digest asked for
    └── RegistryProtocolError     any other answer we cannot use (method, URL, status, the registry's message)

Messages never contain credentials: URLs are shown without userinfo or query, headers never.
"""

from __future__ import annotations

from ..errors import PybuildError


class RegistryError(PybuildError):
    """A problem talking to a registry; ``registry`` is its host (``127.0.0.1:5000``, ``docker.io``)."""

    def __init__(self, message: str, registry: str | None = None):
        super().__init__(message)
        self.registry = registry


class RegistryUnreachable(RegistryError):
    """The registry could not be reached at all."""


class AuthenticationFailed(RegistryError):
    """401/403 after presenting credentials (or none were configured)."""


class ManifestNotFound(RegistryError):
    """The tag or manifest digest does not exist in the repository."""


class BlobNotFound(RegistryError):
    """The blob does not exist in the repository."""


class BlobDigestMismatch(RegistryError):
    """The bytes served do not match the digest they were asked for."""


class RegistryProtocolError(RegistryError):
    """An unexpected answer: ``method``, ``url`` (no credentials), ``status``."""

    def __init__(self, message: str, registry: str | None = None, *, method: str = "", url: str = "",
                 status: int | None = None):
        super().__init__(message, registry)
        self.method = method
        self.url = url
        self.status = status
