"""Answering a registry's ``WWW-Authenticate`` challenge: HTTP basic, or the Bearer token flow.

The token flow (distribution's token spec): the registry answers 401 with
``Bearer realm="https://auth.example/token",service="registry.example",scope="repository:app:pull"``;
we ask the realm for a token for the scopes the operation needs (sending the user's credentials
with HTTP basic, or an identity token as an OAuth2 refresh token) and present it as
``Authorization: Bearer <token>``. Tokens are cached per scope set until shortly before they expire.
Secrets never reach an error message or a log line.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .credentials import Credentials
from .errors import AuthenticationFailed, RegistryUnreachable
from .settings import canonical_host, is_loopback

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*("(?:[^"\\]|\\.)*"|{_TOKEN}[=]*)\s*,?')
_SCHEME = re.compile(rf"\s*,?\s*({_TOKEN})(?:\s+|$)")


@dataclass(frozen=True)
class Challenge:
    scheme: str                                   # lower case: "bearer", "basic"
    params: dict = field(default_factory=dict)    # realm, service, scope, error ...


def parse_challenges(values) -> list[Challenge]:
    """Every challenge in the ``WWW-Authenticate`` header values (a value may hold several)."""
    out: list[Challenge] = []
    for value in values:
        pos = 0
        while pos < len(value):
            m = _SCHEME.match(value, pos)
            if not m:
                break
            scheme, pos = m.group(1).lower(), m.end()
            params = {}
            while pos < len(value):
                p = _PARAM.match(value, pos)
                if not p:
                    break
                raw = p.group(2)
                if raw.startswith('"'):
                    raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
                params[p.group(1).lower()] = raw
                pos = p.end()
            out.append(Challenge(scheme, params))
    return out


def repository_scope(repo: str, actions: str) -> str:
    return f"repository:{repo}:{actions}"


class Authenticator:
    """The auth state of one registry host (thread-safe): which scheme it asked for, and our tokens."""

    def __init__(self, host: str, credentials: Credentials | None, http):
        self.host = host
        self.credentials = credentials
        self._http = http                  # an httpx.Client for the token realm
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple, tuple[str, float]] = {}
        self._lock = threading.Lock()

    @property
    def scheme(self) -> str | None:
        return self._challenge.scheme if self._challenge else None

    def header(self, scopes: tuple) -> str | None:
        """The Authorization value to send for ``scopes``, or None before the registry has challenged us."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return self._basic()
        if challenge.scheme == "bearer":
            return "Bearer " + self._token(challenge, scopes)
        return None

    def challenged(self, values, scopes: tuple) -> bool:
        """Take a 401's challenge; True if a retry with new credentials can help."""
        challenges = parse_challenges(values)
        chosen = next((c for c in challenges if c.scheme == "bearer"), None) or \
            next((c for c in challenges if c.scheme == "basic"), None)
        if chosen is None:
            raise AuthenticationFailed(f"registry {self.host} asks for an authentication scheme pybuild does "
                                       f"not speak ({', '.join(c.scheme for c in challenges) or 'none given'})",
                                       self.host)
        with self._lock:
            previous = self._challenge
            self._challenge = chosen
            if chosen.scheme == "basic":
                if self.credentials is None:
                    raise self.denied("it needs a user name and password")
                return previous is None or previous.scheme != "basic"
            extra = chosen.params.get("scope")
            key = self._key(scopes + ((extra,) if extra else ()))
            had = key in self._tokens
            self._tokens.pop(key, None)
            if chosen.params.get("error") == "insufficient_scope" and had:
                return False
            return True

    def denied(self, why: str) -> AuthenticationFailed:
        hint = f"log in with `pybuild login {self.host}`" if self.credentials is None else \
            "check the user name and password (`pybuild login` again)"
        return AuthenticationFailed(f"registry {self.host} refused access: {why}; {hint}", self.host)

    def _basic(self) -> str:
        creds = self.credentials
        if creds is None or creds.identity_token:
            raise self.denied("it needs a user name and password")
        return "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()

    @staticmethod
    def _key(scopes) -> tuple:
        return tuple(sorted(set(s for s in scopes if s)))

    def _token(self, challenge: Challenge, scopes: tuple) -> str:
        extra = challenge.params.get("scope")
        key = self._key(scopes + ((extra,) if extra else ()))
        with self._lock:
            found = self._tokens.get(key)
            if found is not None and found[1] > time.monotonic():
                return found[0]
            token, lifetime = self._fetch_token(challenge, key)
            # renew a little early so a long push never presents an expired token
            self._tokens[key] = (token, time.monotonic() + max(lifetime - 30, lifetime / 2))
            return token

    def _fetch_token(self, challenge: Challenge, scopes: tuple) -> tuple[str, float]:
        realm = challenge.params.get("realm")
        if not realm:
            raise AuthenticationFailed(f"registry {self.host} asked for a token without saying where to get "
                                       f"one (no realm)", self.host)
        parts = urlsplit(realm)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise AuthenticationFailed(f"registry {self.host}: token realm {realm!r} is not an http(s) URL",
                                       self.host)
        realm_host = parts.hostname or ""
        if parts.scheme == "http" and self.credentials is not None and not is_loopback(realm_host) \
                and not self._insecure(parts.netloc):
            raise AuthenticationFailed(f"registry {self.host}: refusing to send credentials to the token "
                                       f"server {parts.netloc} over plain http", self.host)
        creds = self.credentials
        params = [("service", challenge.params.get("service", ""))] if challenge.params.get("service") else []
        params += [("scope", s) for s in scopes]
        import httpx

        try:
            if creds is not None and creds.identity_token:
                form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                        "service": challenge.params.get("service", ""), "client_id": "pybuild",
                        "scope": " ".join(scopes)}
                response = self._http.post(realm, data=form)
            else:
                auth = (creds.username, creds.password) if creds is not None else None
                if creds is not None:
                    params.append(("account", creds.username))
                response = self._http.get(realm, params=params, auth=auth)
        except httpx.TransportError as err:
            raise RegistryUnreachable(f"registry {self.host}: cannot reach its token server "
                                      f"{parts.netloc}: {_reason(err)}", self.host) from None
        if response.status_code in (401, 403):
            why = "the token server rejected the credentials" if creds is not None else \
                "the token server grants nothing without credentials"
            raise self.denied(why)
        if response.status_code != 200:
            raise AuthenticationFailed(f"registry {self.host}: token server {parts.netloc} answered "
                                       f"{response.status_code}", self.host)
        try:
            obj = response.json()
            token = obj.get("token") or obj.get("access_token")
            lifetime = float(obj.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            token = None
        if not token or not isinstance(token, str):
            raise AuthenticationFailed(f"registry {self.host}: token server {parts.netloc} gave no token",
                                       self.host)
        return token, lifetime

    @staticmethod
    def _insecure(netloc: str) -> bool:
        from .settings import settings_for

        return settings_for(canonical_host(netloc)).insecure


def _reason(err: BaseException) -> str:
    """A short cause for a transport error, without URLs (they may carry query secrets)."""
    text = str(err) or type(err).__name__
    low = text.lower()
    if "name or service not known" in low or "temporary failure in name resolution" in low \
            or "nodename nor servname" in low:
        return "no such host (DNS lookup failed)"
    if "connection refused" in low:
        return "connection refused"
    if "network is unreachable" in low or "no route to host" in low:
        return "no route to host"
    if "certificate verify failed" in low:
        return "its TLS certificate is not trusted"
    if "wrong version number" in low or "record layer failure" in low:
        return "it does not speak TLS"
    return text.split("\n")[0]
