"""One pooled HTTP client per registry host: scheme choice, authentication, retries with backoff.

* Scheme: https, always first. Plain http only for loopback hosts and hosts the settings mark
  ``insecure`` (tried when the https attempt shows the server does not speak TLS).
* Auth: the first request goes out bare (or with what an earlier challenge asked for); a 401's
  challenge is answered (``auth.Authenticator``) and the request sent once more.
* Retries: connection failures, 5xx and 429 are retried with exponential backoff, for up to
  ``RETRY_WINDOW`` seconds once the registry has answered us (a restart mid-push), but only briefly
  before it ever has: a registry with no route fails fast. Requests whose body is a stream are not
  replayed here; the upload code resumes them (``client.Registry.upload_blob``).
"""

from __future__ import annotations

import threading
import time

from .auth import Authenticator, _reason
from .errors import AuthenticationFailed, RegistryProtocolError, RegistryUnreachable
from .settings import HostSettings, mirror_hint

RETRY_WINDOW = 45.0          # seconds of retrying a registry that has answered before
FIRST_CONTACT_RETRIES = 1    # quick retries before the first answer
RETRY_STATUSES = frozenset((408, 429, 500, 502, 503, 504))
USER_AGENT = "pybuild/0.1 (+https://pypi.org/project/pybuild-oci/)"


def _timeout():
    import httpx

    return httpx.Timeout(connect=10.0, read=120.0, write=120.0, pool=120.0)


def _ssl_context(settings: HostSettings):
    """What to verify the registry's certificate with (``False``: not at all, for insecure hosts)."""
    if settings.insecure:
        return False
    ca = settings.ca_file()
    if ca is None:
        return True
    import ssl

    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as err:
        raise RegistryProtocolError(f"registry {settings.host}: cannot load its CA file {ca}: {err}",
                                    settings.host) from None
    return context


class Transport:
    """Talks to ``settings.api_host``; ``request`` returns an ``httpx.Response`` or raises a RegistryError."""

    def __init__(self, settings: HostSettings, credentials=None):
        import httpx

        self.settings = settings
        self.host = settings.host
        self.client = httpx.Client(verify=_ssl_context(settings), timeout=_timeout(), follow_redirects=True,
                                   headers={"User-Agent": USER_AGENT},
                                   limits=httpx.Limits(max_connections=32, max_keepalive_connections=16))
        self.auth = Authenticator(settings.host, credentials, self.client)
        self._base: str | None = None
        self._answered = False
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    # -- where -----------------------------------------------------------------------------------

    def base(self) -> str:
        """``https://host`` or (loopback/insecure, no TLS there) ``http://host``, decided at first use."""
        if self._base is not None:
            return self._base
        with self._lock:
            if self._base is None:
                self._base = self._probe()
        return self._base

    def _probe(self) -> str:
        import httpx

        host = self.settings.api_host
        https = f"https://{host}"
        try:
            response = self._send_once("GET", f"{https}/v2/", {}, None, None, stream=False)
            response.close()
            return https
        except _Unreachable as err:
            cause = err.cause
            tls_mismatch = isinstance(cause, httpx.ConnectError) and _reason(cause) == "it does not speak TLS"
            if not self.settings.plain_http_allowed:
                if tls_mismatch:
                    raise RegistryUnreachable(
                        f"registry {self.host} does not speak https; to use plain http, mark it insecure in the "
                        f"registry settings (insecure = true under [registry.\"{self.host}\"])", self.host) from None
                raise self._unreachable(err.cause) from None
            if not tls_mismatch and not isinstance(cause, httpx.ConnectError):
                raise self._unreachable(err.cause) from None
            if "certificate" in _reason(cause):
                raise self._unreachable(err.cause) from None
        http = f"http://{host}"
        try:
            response = self._send_once("GET", f"{http}/v2/", {}, None, None, stream=False)
            response.close()
        except _Unreachable as err:
            raise self._unreachable(err.cause) from None
        return http

    def _unreachable(self, cause: BaseException) -> RegistryUnreachable:
        reason = _reason(cause)
        hint = ""
        if "certificate" in reason:
            hint = (f"; trust its CA with ca = \"/path/ca.pem\" under [registry.\"{self.host}\"] in the registry "
                    f"settings, or put it in ~/.config/pybuild/certs.d/{self.host}/ca.crt")
        where = self.host if self.settings.api_host == self.host else f"{self.host} ({self.settings.api_host})"
        return RegistryUnreachable(f"cannot reach registry {where}: {reason}{hint}{mirror_hint(self.host)}",
                                   self.host)

    # -- sending ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, scopes: tuple = (), headers: dict | None = None,
                content=None, params=None, stream: bool = False, replayable: bool | None = None):
        """Send ``method path`` (path starts with ``/v2/`` or is an absolute URL from a Location header).

        Auth challenges are answered and the request retried; temporary failures are retried while
        the body can be sent again (``content`` None or bytes, unless ``replayable`` says otherwise).
        """
        url = path if path.startswith(("http://", "https://")) else self.base() + path
        if replayable is None:
            replayable = content is None or isinstance(content, (bytes, bytearray))
        headers = dict(headers or {})
        response = self._send(method, url, scopes, headers, content, params, stream, replayable)
        if response.status_code == 401:
            values = response.headers.get_list("www-authenticate")
            response.close()
            if not replayable:
                raise AuthenticationFailed(f"registry {self.host} asked for credentials in the middle of an "
                                           f"upload", self.host)
            sent_credentials = "Authorization" in headers   # False: sent before another thread's challenge
            if self.auth.challenged(values, scopes) or not sent_credentials:
                response = self._send(method, url, scopes, headers, content, params, stream, replayable)
            if response.status_code == 401:
                message = registry_message(response)
                response.close()
                raise self.auth.denied(message or "unauthorized")
        return response

    def _send(self, method, url, scopes, headers, content, params, stream, replayable):
        delay = 0.2
        deadline = time.monotonic() + (RETRY_WINDOW if self._answered else 2.0)
        attempts = 0
        while True:
            attempts += 1
            auth = self.auth.header(scopes)
            if auth is not None:
                headers["Authorization"] = auth
            else:
                headers.pop("Authorization", None)
            try:
                response = self._send_once(method, url, headers, content, params, stream=stream)
            except _Unreachable as err:
                retry = replayable and time.monotonic() + delay < deadline and \
                    (self._answered or attempts <= FIRST_CONTACT_RETRIES)
                if not retry:
                    raise self._unreachable(err.cause) from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if response.status_code in RETRY_STATUSES and replayable and time.monotonic() + delay < deadline:
                after = response.headers.get("retry-after", "")
                response.close()
                time.sleep(min(float(after), 10.0) if after.isdigit() else delay)
                delay = min(delay * 2, 5.0)
                continue
            return response

    def _send_once(self, method, url, headers, content, params, *, stream: bool):
        import httpx

        try:
            request = self.client.build_request(method, url, headers=headers, content=content, params=params)
            response = self.client.send(request, stream=stream)
        except httpx.TransportError as err:
            raise _Unreachable(err) from None
        self._answered = True
        return response


class _Unreachable(Exception):
    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


def registry_message(response) -> str:
    """The registry's own words from a distribution error body (``{"errors": [{"code", "message"}]}``)."""
    try:
        if not response.is_stream_consumed:
            response.read()
        obj = response.json()
        errors = obj.get("errors") or []
        parts = []
        for e in errors:
            text = e.get("message") or e.get("code") or ""
            if text and text not in parts:
                parts.append(text)
        return "; ".join(parts)
    except Exception:
        return ""
