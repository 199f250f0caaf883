"""Real registries for the registry tests: Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1.

``RegistryServer`` starts ``/usr/bin/docker-registry serve CONFIG`` with a generated config (a free port,
filesystem storage in its own directory, deletes enabled) and optionally TLS (a certificate signed by a CA
the test makes with ``openssl``), HTTP basic auth (an ``htpasswd -B`` file) or token auth (``auth: token:``
whose realm is ``tokenserver.TokenServer``, the test's own token server). ``stop()``, ``kill()`` (SIGKILL,
for fault tests) and ``restart()`` (same port and storage) drive it; ``close()`` stops it for good.

Fixtures (registered in ``conftest.py``):

    registry          session; plain http, anonymous. Use unique repository names (``unique_repo``).
    tls_registry      session; https with a test CA and htpasswd basic auth (``.user``/``.password``, ``.ca``)
    token_registry    session; plain http with Bearer tokens from a TokenServer (``.tokens``, users below)
    registry_busybox  session; "127.0.0.1:PORT/busybox:latest" pushed (by skopeo) into ``registry``
    make_registry     function; a factory of private registries (for tests that kill or tamper with one)

Every process is killed at teardown (and at interpreter exit, as a safety net); nothing is left listening.
"""

from __future__ import annotations

import atexit
import base64
import http.client
import itertools
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tokenserver import TokenServer

REGISTRY_BIN = "/usr/bin/docker-registry"
# Users of the auth fixtures: a user who may push and pull, and (token registry) one who may only pull.
USER, PASSWORD = "alice", "s3cret-Pa55word-for-alice"
READER, READER_PASSWORD = "bob", "bob-reads-only-9f2c"

_live: set[RegistryServer] = set()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_counter = itertools.count(1)


def unique_repo(prefix: str = "test") -> str:
    """A repository name no other test uses (the session registries are shared)."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}-{os.urandom(3).hex()}"


def _run(*argv: str, input: bytes | None = None) -> bytes:
    result = subprocess.run(argv, check=False, input=input, capture_output=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: exit {result.returncode}\n{result.stderr.decode(errors='replace')}")
    return result.stdout


# ----------------------------------------------------------------------------------------------
# certificates and passwords


@dataclass(frozen=True)
class TlsFiles:
    """A CA (``ca``: its certificate) and a server certificate + key it signed, valid for 127.0.0.1 and localhost."""

    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path, *, names: tuple[str, ...] = ("IP:127.0.0.1", "IP:::1", "DNS:localhost")) -> TlsFiles:
    """A test CA and a server certificate, made with ``openssl`` (RSA 2048, 30 days)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
         "-days", "30", "-subj", "/CN=pybuild test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
         "-subj", "/CN=127.0.0.1")
    ext = directory / "server.ext"
    ext.write_text(f"subjectAltName={','.join(names)}\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    _run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
         "-out", str(cert), "-days", "30", "-extfile", str(ext))
    return TlsFiles(ca=ca, cert=cert, key=key)


def make_htpasswd(path: Path, users: dict[str, str]) -> Path:
    """An htpasswd file with bcrypt hashes (the only kind distribution accepts), by ``htpasswd -B``."""
    lines = [_run("htpasswd", "-nbB", user, password).decode().strip() for user, password in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------------------------
# the registry process


class RegistryServer:
    """One ``docker-registry`` process; its port and storage survive ``restart()``."""

    def __init__(self, directory: Path, *, tls: TlsFiles | None = None, htpasswd: Path | None = None,
                 tokens: TokenServer | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.storage = self.directory / "storage"
        self.storage.mkdir(exist_ok=True)
        self.tls = tls
        self.htpasswd = htpasswd
        self.tokens = tokens
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.scheme = "https" if tls else "http"
        self.url = f"{self.scheme}://{self.host}"
        self.config = self.directory / "config.yml"
        self.log_path = self.directory / "registry.log"
        self.config.write_text(self._config_text())
        self.proc: subprocess.Popen | None = None
        self._log = None

    def _config_text(self) -> str:
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "  formatter: text",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: {self.host}",
            f"  secret: {os.urandom(16).hex()}",
        ]
        if self.tls:
            lines += ["  tls:", f"    certificate: {self.tls.cert}", f"    key: {self.tls.key}"]
        if self.htpasswd:
            lines += ["auth:", "  htpasswd:", "    realm: pybuild-test", f"    path: {self.htpasswd}"]
        elif self.tokens:
            lines += ["auth:", "  token:", f"    realm: {self.tokens.realm}", f"    service: {self.tokens.service}",
                      f"    issuer: {self.tokens.issuer}", f"    rootcertbundle: {self.tokens.cert}"]
        return "\n".join(lines) + "\n"

    # -- lifecycle

    def start(self) -> RegistryServer:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed by _end)
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(self.config)], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent if _in_main_thread() else None)  # noqa: PLW1509
        _live.add(self)
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                code = self.proc.poll()
                self.close()
                raise AssertionError(f"docker-registry did not start (exit {code}):\n{self.log()[-3000:]}")
            time.sleep(0.02)
        return self

    def _answers(self) -> bool:
        """GET /v2/ gets any HTTP answer (401 counts: the auth registries answer so)."""
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.tls.ca))
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=2, context=context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/v2/")
            return conn.getresponse().status in (200, 401)
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 10 s) and wait."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL, as a crash: uploads in flight are cut off."""
        self._end(signal.SIGKILL)

    def restart(self) -> RegistryServer:
        self.stop()
        return self.start()

    def close(self) -> None:
        self.kill()
        _live.discard(self)

    def _end(self, sig: int) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- looking inside

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def blob_data(self, digest: str) -> Path:
        """Where the registry keeps a blob's bytes (filesystem driver layout)."""
        algorithm, hexdigest = digest.split(":", 1)
        return self.storage / "docker/registry/v2/blobs" / algorithm / hexdigest[:2] / hexdigest / "data"

    def repositories(self) -> list[str]:
        root = self.storage / "docker/registry/v2/repositories"
        if not root.is_dir():
            return []
        return sorted(str(p.parent.relative_to(root)) for p in root.rglob("_manifests"))

    def __repr__(self) -> str:
        return f"RegistryServer({self.url})"


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _die_with_parent() -> None:
    """In the child: SIGKILL when the test process dies (a pytest killed by a timeout runs no teardown).

    The kernel ties this to the thread that forked, so it is set only for registries started from the
    main thread (one restarted by a helper thread would die with that thread)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live):
        server.close()


# ----------------------------------------------------------------------------------------------
# fixtures


@dataclass
class AuthRegistry:
    """A registry that wants credentials: ``server``; ``user``/``password`` may push and pull."""

    server: RegistryServer
    user: str = USER
    password: str = PASSWORD
    ca: Path | None = None
    tokens: TokenServer | None = None
    extra_users: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.server.host

    def basic_auth(self, user: str | None = None, password: str | None = None) -> str:
        """The base64 ``auth`` value of a docker config.json entry."""
        raw = f"{user or self.user}:{password or self.password}".encode()
        return base64.b64encode(raw).decode()


def _scratch_dir(prefix: str) -> Path:
    # Short paths under /tmp: the registry's config and log are read by hand when something fails.
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture(scope="session")
def registry():
    """A plain-http anonymous registry for the whole session (unique repository names per test)."""
    base = _scratch_dir("pbreg-")
    server = RegistryServer(base).start()
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def tls_registry():
    """https (a certificate from a test CA, ``.ca``) with htpasswd basic auth for USER."""
    base = _scratch_dir("pbtls-")
    tls = make_tls(base / "tls")
    htpasswd = make_htpasswd(base / "htpasswd", {USER: PASSWORD})
    server = RegistryServer(base / "registry", tls=tls, htpasswd=htpasswd).start()
    try:
        yield AuthRegistry(server=server, ca=tls.ca)
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def token_registry():
    """Plain http with Bearer tokens from the test's TokenServer: USER may push and pull everything,
    READER may only pull, anonymous requests get tokens that grant nothing."""
    base = _scratch_dir("pbtok-")
    tokens = TokenServer(base / "tokens", users={USER: PASSWORD, READER: READER_PASSWORD},
                         grants={USER: ("pull", "push", "delete", "*"), READER: ("pull",)}).start()
    server = RegistryServer(base / "registry", tokens=tokens)
    try:
        server.start()
        yield AuthRegistry(server=server, tokens=tokens, extra_users={READER: READER_PASSWORD})
    finally:
        server.close()
        tokens.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def make_registry(tmp_path):
    """A factory of private registries (``make_registry(tls=..., htpasswd=...)``), closed after the test."""
    made: list[RegistryServer] = []

    def make(**options) -> RegistryServer:
        server = RegistryServer(tmp_path / f"registry-{len(made)}", **options)
        made.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in made:
            server.close()


def isolated_user_env(tmp_path: Path) -> dict:
    """pybuild's environment as a user with a fresh HOME: no credentials or registry settings from the
    machine's user, and a fixed SOURCE_DATE_EPOCH (reproducible image IDs)."""
    from image_fixtures import EPOCH

    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "DOCKER_CONFIG": str(home / ".docker"), "PYBUILD_REGISTRIES": str(home / "none.toml"),
            "XDG_CONFIG_HOME": str(home / ".config"), "SOURCE_DATE_EPOCH": str(EPOCH)}


# ----------------------------------------------------------------------------------------------
# putting images in


def skopeo_copy(source: str, dest: str, *, src_creds: str | None = None, dest_creds: str | None = None,
                src_cert_dir: Path | None = None, dest_cert_dir: Path | None = None, tls_verify: bool = True,
                extra: tuple[str, ...] = ()) -> None:
    """``skopeo copy SOURCE DEST`` (transport-qualified names). Plain-http registries need tls_verify=False."""
    argv = ["skopeo", "copy", "-q", *extra]
    if src_creds:
        argv += ["--src-creds", src_creds]
    if dest_creds:
        argv += ["--dest-creds", dest_creds]
    if src_cert_dir:
        argv += ["--src-cert-dir", str(src_cert_dir)]
    if dest_cert_dir:
        argv += ["--dest-cert-dir", str(dest_cert_dir)]
    if not tls_verify:
        for ref, flag in ((source, "--src-tls-verify=false"), (dest, "--dest-tls-verify=false")):
            if ref.startswith("docker://"):
                argv.append(flag)
    _run(*argv, source, dest)


def cert_dir_for(ca: Path, directory: Path) -> Path:
    """A docker-style certs directory (``ca.crt``) for skopeo's --*-cert-dir."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ca, directory / "ca.crt")
    return directory


def save_busybox_archive(busybox_tar: Path, directory: Path) -> Path:
    """busybox imported into a scratch store and saved as a docker-archive (what skopeo then pushes)."""
    from image_fixtures import EPOCH, ok, pb

    root = directory / "store"
    ok(pb(root, "import", str(busybox_tar), "busybox:latest", env={"SOURCE_DATE_EPOCH": str(EPOCH)}))
    archive = directory / "busybox.tar"
    ok(pb(root, "save", "-o", str(archive), "busybox:latest"))
    shutil.rmtree(root, ignore_errors=True)
    return archive


@pytest.fixture(scope="session")
def busybox_archive(busybox_tar, tmp_path_factory) -> Path:
    """The busybox base image as a docker-archive tar."""
    return save_busybox_archive(busybox_tar, tmp_path_factory.mktemp("busybox-archive"))


@pytest.fixture(scope="session")
def registry_busybox(registry, busybox_archive) -> str:
    """``127.0.0.1:PORT/busybox:latest`` in the session registry (pushed by skopeo)."""
    ref = f"{registry.host}/busybox:latest"
    skopeo_copy(f"docker-archive:{busybox_archive}", f"docker://{ref}", tls_verify=False)
    return ref


def listening_registries() -> list[int]:
    """PIDs of docker-registry processes still alive (for tests that check teardown)."""
    return [s.proc.pid for s in _live if s.running]
