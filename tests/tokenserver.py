"""The test's own token server for a registry with ``auth: token:`` (Docker's token authentication).

A ``ThreadingHTTPServer`` on 127.0.0.1 answers ``GET /token?service=S&scope=...`` (HTTP basic credentials,
or none) and the OAuth2 form ``POST /token`` (grant_type=password). It issues RS256 JWTs whose header
carries the signing certificate in ``x5c``; the registry's ``rootcertbundle`` is that certificate, so
distribution 2.8 verifies the chain and the signature. Signing is done by the ``openssl`` CLI (PKCS#1 v1.5
over SHA-256 is exactly RS256), so the tests need no crypto library.

Who gets what: a known user with the right password is granted the requested actions their ``grants``
allow; anonymous requests get a token that grants nothing (the registry then refuses with 401); a wrong
password gets 401 from the token server itself. ``requests`` records (user, scopes, status) and ``issued``
every token handed out, so tests can check that no token leaks into pybuild's output.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """``realm`` is the URL the registry sends clients to; ``cert`` goes into the registry's rootcertbundle."""

    def __init__(self, directory: Path, *, users: dict[str, str], grants: dict[str, tuple[str, ...]],
                 service: str = "pybuild-test-registry", issuer: str = "pybuild-test-token-issuer",
                 lifetime: int = 300):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.users = dict(users)
        self.grants = dict(grants)
        self.service = service
        self.issuer = issuer
        self.lifetime = lifetime
        self.key = self.directory / "signing.key"
        self.cert = self.directory / "signing.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.cert), "-days", "30", "-subj", "/CN=pybuild test token signer"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self._x5c = [base64.b64encode(der).decode()]
        self.requests: list[dict] = []
        self.issued: list[str] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.realm = ""

    # -- tokens

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": self._x5c}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), check=True, capture_output=True).stdout
        return f"{signing_input}.{b64url(signature)}"

    def grant(self, user: str | None, scopes: list[str]) -> list[dict]:
        """The access entries a token for ``user`` carries: requested actions the user is allowed."""
        allowed = set(self.grants.get(user, ())) if user else set()
        access = []
        for scope in scopes:
            try:
                kind_name, actions = scope.rsplit(":", 1)
                kind, name = kind_name.split(":", 1)
            except ValueError:
                continue
            given = [a for a in actions.split(",") if a and a in allowed]
            if given:
                access.append({"type": kind, "name": name, "actions": given})
        return access

    def issue(self, user: str | None, scopes: list[str]) -> dict:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service, "exp": now + self.lifetime,
                  "nbf": now - 10, "iat": now, "jti": os.urandom(12).hex(), "access": self.grant(user, scopes)}
        token = self.sign(claims)
        with self._lock:
            self.issued.append(token)
        return {"token": token, "access_token": token, "expires_in": self.lifetime,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}

    # -- the HTTP side

    def start(self) -> TokenServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: pytest shows nothing of it anyway
                pass

            def _answer(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, user: str | None, password: str | None, service: str, scopes: list[str]) -> None:
                status = 200
                if service != server.service:
                    status = 400
                elif user is not None and server.users.get(user) != password:
                    status = 401
                with server._lock:
                    server.requests.append({"user": user, "scopes": scopes, "status": status, "method": self.command})
                if status == 400:
                    self._answer(400, {"errors": [{"code": "UNSUPPORTED", "message": "unknown service"}]})
                elif status == 401:
                    self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                                 {"WWW-Authenticate": 'Basic realm="pybuild-test-token-server"'})
                else:
                    self._answer(200, server.issue(user, scopes))

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/token":
                    return self._answer(404, {"errors": [{"code": "NOT_FOUND"}]})
                query = urllib.parse.parse_qs(url.query)
                user = password = None
                header = self.headers.get("Authorization", "")
                if header.lower().startswith("basic "):
                    try:
                        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
                    except (ValueError, UnicodeDecodeError):
                        return self._answer(400, {"errors": [{"code": "BAD_AUTH_HEADER"}]})
                self._handle(user, password, query.get("service", [""])[0], query.get("scope", []))

            def do_POST(self):
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/token":
                    return self._answer(404, {"errors": [{"code": "NOT_FOUND"}]})
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                if form.get("grant_type", [""])[0] != "password":
                    return self._answer(400, {"error": "unsupported_grant_type"})
                scopes = " ".join(form.get("scope", [])).split()
                self._handle(form.get("username", [None])[0], form.get("password", [None])[0],
                             form.get("service", [""])[0], scopes)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.realm = f"http://127.0.0.1:{self._httpd.server_address[1]}/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="token-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(10)
            self._httpd = None
