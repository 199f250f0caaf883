"""``Registry``: the OCI distribution API of one registry (manifests, blobs, uploads).

Reads of docker.io go to the configured mirrors first (``settings``), then to Docker Hub; writes go
to the registry itself. Every method names the registry, repository and object in its errors.
Thread-safe: each host has one pooled ``transport.Transport``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

from .auth import repository_scope
from .errors import (AuthenticationFailed, BlobDigestMismatch, BlobNotFound, ManifestNotFound, RegistryError,
                     RegistryProtocolError, RegistryUnreachable)
from .settings import DOCKER_HUB, canonical_host, settings_for
from .transport import Transport, registry_message

MANIFEST_ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
MAX_MANIFEST = 4 * 1024 * 1024
READ_CHUNK = 1024 * 1024
MONOLITHIC_LIMIT = 32 * 1024 * 1024      # blobs up to this size go up in one PUT
DEFAULT_CHUNK = 256 * 1024 * 1024        # larger ones in PATCH chunks of this size (each a resume point)
UPLOAD_WINDOW = 120.0                    # seconds an upload keeps retrying after failures


@dataclass(frozen=True)
class Fetched:
    data: bytes
    media_type: str
    digest: str


_registries: dict[str, "Registry"] = {}
_registries_lock = threading.Lock()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _check_digest(digest: str) -> None:
    algorithm, _, hex_ = digest.partition(":")
    if algorithm != "sha256" or len(hex_) != 64:
        raise RegistryError(f"unsupported digest {digest!r} (pybuild verifies sha256 digests only)")


class Registry:
    """One registry host; ``mirrors`` are other ``Registry`` objects tried first for reads."""

    def __init__(self, host: str, *, mirrors: tuple = (), credentials=None):
        """``credentials``: use these instead of the configured ones (``pybuild login`` checks new ones)."""
        from . import credentials as stored

        self.settings = settings_for(host)
        self.host = self.settings.host
        self.transport = Transport(self.settings, credentials if credentials is not None else stored.lookup(self.host))
        self.mirrors: tuple[Registry, ...] = tuple(mirrors)

    def __repr__(self) -> str:
        return f"Registry({self.host!r})"

    @classmethod
    def for_host(cls, host: str) -> "Registry":
        """The (shared, pooled) client of ``host``."""
        host = canonical_host(host)
        with _registries_lock:
            found = _registries.get(host)
            if found is None:
                mirrors = ()
                if host == DOCKER_HUB:
                    mirrors = tuple(cls(m) for m in settings_for(host).mirrors)
                found = _registries[host] = cls(host, mirrors=mirrors)
            return found

    @classmethod
    def for_reference(cls, ref) -> "Registry":
        return cls.for_host(ref.domain)

    @staticmethod
    def forget_all() -> None:
        """Drop pooled clients (after credentials or settings changed in this process)."""
        with _registries_lock:
            for registry in _registries.values():
                registry.transport.close()
            _registries.clear()

    # -- plumbing --------------------------------------------------------------------------------

    def _where(self, repo: str, obj: str = "") -> str:
        return f"{self.host}/{repo}{obj}"

    def _fail(self, response, method: str, what: str, repo: str):
        """Turn an unexpected answer into the right RegistryError (and close the response)."""
        message = registry_message(response)
        status = response.status_code
        response.close()
        if status in (401, 403):
            raise self.transport.auth.denied(f"{message or 'denied'} ({what} in {repo})")
        detail = f": {message}" if message else ""
        url = str(response.request.url.copy_with(query=None, username=None, password=None))
        raise RegistryProtocolError(f"registry {self.host}: {method} {what} in {repo} failed with HTTP "
                                    f"{status}{detail}", self.host, method=method, url=url, status=status)

    def _reads(self) -> Iterator["Registry"]:
        yield from self.mirrors
        yield self

    def _read(self, operation: Callable[["Registry"], object]):
        """Run a read on the mirrors, then here; a mirror that fails or lacks the object is skipped."""
        last: RegistryError | None = None
        for registry in self._reads():
            try:
                return operation(registry)
            except (RegistryUnreachable, ManifestNotFound, BlobNotFound, AuthenticationFailed) as err:
                if registry is self:
                    raise
                last = err
        raise last  # pragma: no cover - the loop always reaches self

    def ping(self) -> None:
        """Check that the registry answers and accepts our credentials (``pybuild login``)."""
        response = self.transport.request("GET", "/v2/", scopes=())
        if response.status_code != 200:
            self._fail(response, "GET", "/v2/", "(the API root)")
        response.close()

    # -- manifests -------------------------------------------------------------------------------

    def get_manifest(self, repo: str, reference: str, *, accept: str = MANIFEST_ACCEPT) -> Fetched:
        """A manifest or index by tag or digest; its bytes hash to the digest asked for (checked)."""
        return self._read(lambda r: r._get_manifest(repo, reference, accept))

    def _get_manifest(self, repo: str, reference: str, accept: str) -> Fetched:
        sep = "@" if ":" in reference else ":"
        response = self.transport.request("GET", f"/v2/{repo}/manifests/{reference}",
                                          scopes=(repository_scope(repo, "pull"),), headers={"Accept": accept})
        if response.status_code == 404:
            message = registry_message(response)
            response.close()
            raise ManifestNotFound(f"{self._where(repo, sep + reference)}: not found in the registry"
                                   f"{' (' + message + ')' if message else ''}", self.host)
        if response.status_code != 200:
            self._fail(response, "GET", f"manifest {reference}", repo)
        data = response.content
        if len(data) > MAX_MANIFEST:
            raise RegistryProtocolError(f"registry {self.host}: manifest {reference} in {repo} is larger than "
                                        f"{MAX_MANIFEST} bytes", self.host)
        digest = _sha256(data)
        if ":" in reference and reference != digest:
            raise BlobDigestMismatch(f"registry {self.host}: manifest {reference} in {repo} has content that "
                                     f"hashes to {digest}", self.host)
        header = response.headers.get("docker-content-digest", "")
        if header.startswith("sha256:") and header != digest:
            raise BlobDigestMismatch(f"registry {self.host}: manifest {reference} in {repo} hashes to {digest}, "
                                     f"but the registry says {header}", self.host)
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        return Fetched(data, media_type, digest)

    def manifest_digest(self, repo: str, reference: str) -> str | None:
        """The digest a tag points at now (HEAD), or None if the tag does not exist."""
        try:
            return self._read(lambda r: r._manifest_digest(repo, reference))
        except ManifestNotFound:
            return None

    def _manifest_digest(self, repo: str, reference: str) -> str:
        response = self.transport.request("HEAD", f"/v2/{repo}/manifests/{reference}",
                                          scopes=(repository_scope(repo, "pull"),),
                                          headers={"Accept": MANIFEST_ACCEPT})
        response.close()
        if response.status_code == 404:
            raise ManifestNotFound(f"{self._where(repo, ':' + reference)}: not found", self.host)
        if response.status_code != 200:
            self._fail(response, "HEAD", f"manifest {reference}", repo)
        digest = response.headers.get("docker-content-digest")
        if digest:
            return digest
        return self._get_manifest(repo, reference, MANIFEST_ACCEPT).digest

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        """Store a manifest under a tag (or its digest); returns its digest."""
        digest = _sha256(data)
        response = self.transport.request("PUT", f"/v2/{repo}/manifests/{reference}",
                                          scopes=(repository_scope(repo, "pull,push"),),
                                          headers={"Content-Type": media_type}, content=data)
        if response.status_code not in (200, 201, 202):
            self._fail(response, "PUT", f"manifest {reference}", repo)
        response.close()
        said = response.headers.get("docker-content-digest", "")
        if said.startswith("sha256:") and said != digest:
            raise RegistryProtocolError(f"registry {self.host}: stored manifest {reference} in {repo} as {said}, "
                                        f"but its bytes hash to {digest}", self.host)
        return digest

    # -- blobs -----------------------------------------------------------------------------------

    def blob_size(self, repo: str, digest: str) -> int | None:
        """The blob's size if the repository has it (HEAD), else None."""
        response = self.transport.request("HEAD", f"/v2/{repo}/blobs/{digest}",
                                          scopes=(repository_scope(repo, "pull"),))
        response.close()
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            self._fail(response, "HEAD", f"blob {digest}", repo)
        length = response.headers.get("content-length")
        return int(length) if length and length.isdigit() else -1

    def fetch_blob(self, repo: str, digest: str, *, limit: int = 64 * 1024 * 1024) -> bytes:
        """A small blob (a config) read whole and checked against its digest."""
        _check_digest(digest)
        parts, size = [], 0
        with self.open_blob(repo, digest) as stream:
            while size <= limit:                # read() gives what the network gave, not all that was asked
                chunk = stream.read(limit + 1 - size)
                if not chunk:
                    break
                parts.append(chunk)
                size += len(chunk)
        data = b"".join(parts)
        if len(data) > limit:
            raise RegistryProtocolError(f"registry {self.host}: blob {digest} in {repo} is larger than {limit} "
                                        f"bytes", self.host)
        if _sha256(data) != digest:
            raise BlobDigestMismatch(f"registry {self.host}: blob {digest} in {repo} has content that hashes to "
                                     f"{_sha256(data)}; nothing was stored", self.host)
        return data

    @contextmanager
    def open_blob(self, repo: str, digest: str, *, offset: int = 0) -> Iterator["BlobStream"]:
        """A stream of the blob's bytes from ``offset``; a dropped connection is resumed with Range.

        The caller verifies the digest (the store's writer hashes what it writes)."""
        _check_digest(digest)
        last: RegistryError | None = None
        for registry in self._reads():
            try:
                stream = BlobStream(registry, repo, digest, offset)
            except (RegistryUnreachable, BlobNotFound, AuthenticationFailed) as err:
                if registry is self:
                    raise
                last = err
                continue
            try:
                yield stream
            finally:
                stream.close()
            return
        raise last  # pragma: no cover

    def _blob_response(self, repo: str, digest: str, offset: int):
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = self.transport.request("GET", f"/v2/{repo}/blobs/{digest}", headers=headers, stream=True,
                                          scopes=(repository_scope(repo, "pull"),))
        if response.status_code == 404:
            response.read()
            message = registry_message(response)
            response.close()
            raise BlobNotFound(f"{self._where(repo, '@' + digest)}: blob not found in the registry"
                               f"{' (' + message + ')' if message else ''}", self.host)
        if response.status_code not in (200, 206):
            response.read()
            self._fail(response, "GET", f"blob {digest}", repo)
        return response

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Ask the registry to link a blob it holds under ``from_repo`` into ``repo`` (no upload).

        False when it will not (the blob is not there, or we may not read ``from_repo``): upload it."""
        try:
            response = self.transport.request(
                "POST", f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": from_repo},
                scopes=(repository_scope(repo, "pull,push"), repository_scope(from_repo, "pull")))
        except AuthenticationFailed:
            return False
        response.close()
        if response.status_code in (401, 403):
            return False
        if response.status_code == 201:
            return True
        if response.status_code == 202:   # not mountable: the registry opened an upload instead; drop it
            location = response.headers.get("location")
            if location:
                self._cancel_upload(repo, self._absolute(location))
            return False
        self._fail(response, "POST", f"mount of blob {digest} from {from_repo}", repo)

    # -- uploads ---------------------------------------------------------------------------------

    def _absolute(self, location: str) -> str:
        if location.startswith(("http://", "https://")):
            return location
        return self.transport.base() + (location if location.startswith("/") else "/" + location)

    def _start_upload(self, repo: str) -> str:
        response = self.transport.request("POST", f"/v2/{repo}/blobs/uploads/",
                                          scopes=(repository_scope(repo, "pull,push"),))
        response.close()
        if response.status_code != 202 or not response.headers.get("location"):
            self._fail(response, "POST", "blob upload", repo)
        return self._absolute(response.headers["location"])

    def _cancel_upload(self, repo: str, location: str) -> None:
        try:
            self.transport.request("DELETE", location, scopes=(repository_scope(repo, "pull,push"),)).close()
        except RegistryError:
            pass

    def _upload_offset(self, repo: str, location: str) -> tuple[str, int] | None:
        """(location, bytes the registry holds) of an upload in progress, or None if it is gone."""
        response = self.transport.request("GET", location, scopes=(repository_scope(repo, "pull,push"),))
        response.close()
        if response.status_code != 204:
            return None
        received = _range_end(response.headers.get("range", ""))
        return self._absolute(response.headers.get("location") or location), received

    def upload_blob(self, repo: str, digest: str, size: int, opener: Callable[[int], BinaryIO], *,
                    chunk_size: int | None = None, progress: Callable[[int], None] | None = None) -> None:
        """Upload a blob (whether the repository has it already is the caller's check).

        ``opener(offset)`` returns a binary stream positioned at ``offset``. Blobs up to
        ``MONOLITHIC_LIMIT`` (or any, with ``chunk_size=0``) go up in one PUT; larger ones in PATCH
        chunks. After a failure (a dropped connection, a registry restart) the upload asks the
        registry how much it holds and resumes from there, or starts over if the session is gone,
        retrying with backoff for up to ``UPLOAD_WINDOW`` seconds. ``progress(n)``: n more bytes sent.
        """
        _check_digest(digest)
        if chunk_size is None:
            chunk_size = 0 if size <= MONOLITHIC_LIMIT else DEFAULT_CHUNK
        high = 0

        def advance(position: int) -> None:
            nonlocal high
            if progress is not None and position > high:
                progress(position - high)
            high = max(high, position)

        deadline = time.monotonic() + UPLOAD_WINDOW
        delay = 0.5
        location: str | None = None
        sent = 0          # bytes the registry holds, as far as we know
        while True:
            try:
                if location is None:
                    location, sent = self._start_upload(repo), 0
                if chunk_size:
                    while sent < size:
                        end = min(size, sent + chunk_size)
                        location = self._patch(repo, location, opener, sent, end, advance)
                        sent = end
                    self._finish(repo, location, digest, None, size, size, advance)
                else:
                    self._finish(repo, location, digest, opener, sent, size, advance)
                advance(size)
                return
            except (RegistryUnreachable, _UploadBroken) as err:
                error = err.error if isinstance(err, _UploadBroken) else err
                if time.monotonic() + delay >= deadline:
                    raise error from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                if location is None:
                    continue
                try:
                    if self.blob_size(repo, digest) is not None:   # the last request did land
                        advance(size)
                        return
                    status = self._upload_offset(repo, location)
                except RegistryUnreachable:
                    continue     # still down: keep the session, ask again after the next pause
                location, sent = status if status is not None else (None, 0)

    def _patch(self, repo: str, location: str, opener, start: int, end: int, progress) -> str:
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(end - start),
                   "Content-Range": f"{start}-{end - 1}"}
        response = self._send_body("PATCH", repo, location, headers, opener, start, end, progress)
        response.close()
        if response.status_code != 202:
            if response.status_code in (404, 416) or response.status_code >= 500:
                raise _UploadBroken(RegistryProtocolError(
                    f"registry {self.host}: upload of a blob to {repo} was refused (HTTP {response.status_code})",
                    self.host, status=response.status_code))
            self._fail(response, "PATCH", "blob upload", repo)
        return self._absolute(response.headers.get("location") or location)

    def _finish(self, repo: str, location: str, digest: str, opener, start: int, end: int, progress) -> None:
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(end - start)}
        if opener is None or end == start:
            response = self.transport.request("PUT", _with_query(location, digest=digest), content=b"",
                                              headers=headers, scopes=(repository_scope(repo, "pull,push"),),
                                              replayable=False)
        else:
            response = self._send_body("PUT", repo, _with_query(location, digest=digest), headers, opener, start,
                                       end, progress)
        response.close()
        if response.status_code in (201, 204):
            return
        message = registry_message(response)
        if response.status_code == 400 and "digest" in message.lower():
            raise BlobDigestMismatch(f"registry {self.host}: the blob uploaded to {repo} does not hash to "
                                     f"{digest} ({message})", self.host)
        if response.status_code in (404, 416) or response.status_code >= 500:
            raise _UploadBroken(RegistryProtocolError(
                f"registry {self.host}: upload of blob {digest} to {repo} failed (HTTP {response.status_code})",
                self.host, status=response.status_code))
        self._fail(response, "PUT", f"blob {digest}", repo)

    def _send_body(self, method, repo, location, headers, opener, start, end, progress):
        """Send ``[start, end)`` of the blob as the body; a transport failure becomes ``_UploadBroken``."""
        stream = opener(start)
        try:
            body = _body(stream, start, end, progress)
            try:
                return self.transport.request(method, location, headers=headers, content=body,
                                              scopes=(repository_scope(repo, "pull,push"),), replayable=False)
            except RegistryUnreachable as err:
                raise _UploadBroken(err) from None
        finally:
            stream.close()


class _UploadBroken(Exception):
    def __init__(self, error: RegistryError):
        super().__init__(str(error))
        self.error = error


def _body(stream: BinaryIO, start: int, end: int, advance) -> Iterator[bytes]:
    position = start
    while position < end:
        data = stream.read(min(READ_CHUNK * 4, end - position))
        if not data:
            raise RegistryError(f"the blob being uploaded ended {end - position} bytes early")
        position += len(data)
        advance(position)
        yield data


def _with_query(url: str, **params: str) -> str:
    """``url`` with more query parameters (a Location's own, such as ``_state``, kept)."""
    from urllib.parse import urlencode

    return url + ("&" if "?" in url else "?") + urlencode(params)


def _range_end(header: str) -> int:
    """Bytes held, from an upload status ``Range: 0-N`` header (``N+1``); 0 if none."""
    text = header.strip()
    if text.startswith("bytes="):
        text = text[6:]
    start, sep, end = text.partition("-")
    if not sep or not end.strip().isdigit():
        return 0
    return int(end) + 1


class BlobStream:
    """A blob's bytes as a readable stream; resumes with ``Range`` when the connection drops."""

    def __init__(self, registry: Registry, repo: str, digest: str, offset: int = 0):
        self._registry = registry
        self._repo = repo
        self._digest = digest
        self._position = offset
        self._response = None
        self._chunks = None
        self._buffer = b""
        self._resumes = 0
        self._skip = 0
        self._open(offset)

    def _open(self, offset: int) -> None:
        response = self._registry._blob_response(self._repo, self._digest, offset)
        self._skip = offset if offset and response.status_code == 200 else 0   # no Range support
        self._chunks = response.iter_raw()   # as received: re-chunking costs a copy per byte
        self._response = response

    def _next(self) -> bytes:
        """The next piece from the network (b"" at the end), reconnecting where the last one stopped."""
        import httpx

        while True:
            try:
                chunk = next(self._chunks, b"")
            except (httpx.TransportError, httpx.StreamError) as err:
                self._response.close()
                self._resumes += 1
                if self._resumes > 5:
                    raise RegistryUnreachable(f"registry {self._registry.host}: download of blob {self._digest} "
                                              f"kept breaking off ({type(err).__name__})",
                                              self._registry.host) from None
                time.sleep(0.2 * self._resumes)
                self._open(self._position)
                continue
            if self._skip and chunk:
                if len(chunk) <= self._skip:
                    self._skip -= len(chunk)
                    continue
                chunk, self._skip = chunk[self._skip:], 0
            self._position += len(chunk)
            return chunk

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._buffer]
            self._buffer = b""
            while True:
                chunk = self._next()
                if not chunk:
                    return b"".join(parts)
                parts.append(chunk)
        if not self._buffer:
            self._buffer = self._next()
        if len(self._buffer) <= size:
            data, self._buffer = self._buffer, b""
            return data
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
