"""What Debian's docker-registry cannot be made to do here (its filesystem storage never redirects, it
never rate-limits): blobs served by redirect to another origin (as registries backed by object
storage do) and 429/503 answers. A small registry of the test's own plays that part; the client
under test is the real one.

The security point: credentials go to the registry only, never to the storage a blob is redirected to.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from builder.registry import settings
from builder.registry.client import Registry

USER, PASSWORD = "carol", "redirect-secret-77"
BLOB = b"layer bytes served from object storage " * 1000
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": BLOB_DIGEST, "size": len(BLOB)}, "layers": []}).encode()


class _Server:
    def __init__(self, handler):
        self.seen: list[tuple[str, str, str | None]] = []     # (method, path, Authorization)
        self.script: dict[str, list[int]] = {}                # path -> statuses to answer first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.seen.append(("GET", self.path, self.headers.get("Authorization")))
                pending = outer.script.get(self.path)
                if pending:
                    status = pending.pop(0)
                    self.send_response(status)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                handler(outer, self)

            do_HEAD = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _reply(request, status: int, body: bytes = b"", headers: dict | None = None):
    request.send_response(status)
    for key, value in (headers or {}).items():
        request.send_header(key, value)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    if request.command != "HEAD":
        request.wfile.write(body)


@pytest.fixture
def servers(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / ".docker"))
    monkeypatch.delenv("PYBUILD_REGISTRIES", raising=False)
    settings._loaded = None

    def storage_handler(server, request):
        if request.path == "/bucket/blob":
            _reply(request, 200, BLOB, {"Content-Type": "application/octet-stream"})
        else:
            _reply(request, 404)

    storage = _Server(storage_handler)
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def registry_handler(server, request):
        if request.headers.get("Authorization") != expected:
            _reply(request, 401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                   {"WWW-Authenticate": 'Basic realm="test"', "Content-Type": "application/json"})
        elif request.path == "/v2/":
            _reply(request, 200, b"{}")
        elif request.path == "/v2/app/manifests/1":
            _reply(request, 200, MANIFEST, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        elif request.path == f"/v2/app/blobs/{BLOB_DIGEST}":
            _reply(request, 307, b"", {"Location": f"http://{storage.host}/bucket/blob"})
        else:
            _reply(request, 404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}')

    registry = _Server(registry_handler)
    from builder.registry import credentials

    credentials.save_login(registry.host, USER, PASSWORD)
    Registry.forget_all()
    yield registry, storage
    Registry.forget_all()
    registry.close()
    storage.close()
    settings._loaded = None


def test_a_redirected_blob_never_carries_the_registry_credentials(servers):
    registry, storage = servers
    client = Registry.for_host(registry.host)
    assert client.get_manifest("app", "1").data == MANIFEST
    assert client.fetch_blob("app", BLOB_DIGEST) == BLOB
    assert any(path == f"/v2/app/blobs/{BLOB_DIGEST}" and auth for _, path, auth in registry.seen)
    assert storage.seen == [("GET", "/bucket/blob", None)]


def test_429_and_503_are_retried_after_the_pause_the_registry_asks_for(servers):
    registry, _ = servers
    client = Registry.for_host(registry.host)
    client.ping()
    registry.script["/v2/app/manifests/1"] = [429, 503]
    assert client.get_manifest("app", "1").data == MANIFEST
    tries = [path for _, path, _ in registry.seen if path == "/v2/app/manifests/1"]
    assert len(tries) == 3


def test_a_blob_that_arrives_in_many_pieces_is_read_whole(servers, monkeypatch):
    """fetch_blob must read to the end, however the network cuts the body (it once kept the first piece)."""
    from builder.registry import client as client_mod

    registry, _ = servers
    real_open = client_mod.BlobStream._open

    def small_pieces(self, offset):
        real_open(self, offset)
        raw = self._chunks
        self._chunks = (piece[i:i + 1000] for chunk in raw for piece in [chunk] for i in range(0, len(piece), 1000))

    monkeypatch.setattr(client_mod.BlobStream, "_open", small_pieces)
    assert Registry.for_host(registry.host).fetch_blob("app", BLOB_DIGEST) == BLOB
