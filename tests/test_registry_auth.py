"""Registry authentication against real registries (``registry_fixtures``): HTTP basic over TLS with a
test CA, the Bearer token flow with the test's own token server, credentials from docker's config.json
(``auths``, ``credsStore``, ``credHelpers`` through a real ``docker-credential-*`` program), and the
rules for plain http. Wrong or missing credentials give AuthenticationFailed naming the registry; no
password, token or Authorization value ever appears in an error or in ``--debug`` output.

Each test has its own HOME, DOCKER_CONFIG and registry settings file (``client_env``), and drops the
pooled per-host clients before and after, so nothing leaks between tests.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
import traceback
from pathlib import Path

import pytest
from registry_fixtures import PASSWORD, READER, READER_PASSWORD, USER, unique_repo

from builder.registry import settings as registry_settings
from builder.registry.client import Registry
from builder.registry.errors import (
    AuthenticationFailed,
    RegistryError,
    RegistryUnreachable,
)

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"


# ----------------------------------------------------------------------------------------------
# the environment of one test: HOME, docker config, registry settings


class ClientEnv:
    def __init__(self, tmp_path: Path, monkeypatch):
        self.home = tmp_path / "home"
        self.docker_config = self.home / ".docker"
        self.settings = self.home / ".config" / "pybuild" / "registries.toml"
        self.bin = tmp_path / "bin"
        for path in (self.docker_config, self.settings.parent, self.bin):
            path.mkdir(parents=True, exist_ok=True)
        self.vars = {"HOME": str(self.home), "DOCKER_CONFIG": str(self.docker_config),
                     "PYBUILD_REGISTRIES": str(self.settings),
                     "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"}
        for name, value in self.vars.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
        self.settings.write_text("")
        self._monkeypatch = monkeypatch
        self._versions = 0

    def write_config(self, obj: dict) -> None:
        (self.docker_config / "config.json").write_text(json.dumps(obj))
        Registry.forget_all()

    def config(self) -> dict:
        return json.loads((self.docker_config / "config.json").read_text())

    def write_settings(self, text: str) -> None:
        """A new settings file (a new path: the settings are read once per process and path)."""
        self._versions += 1
        self.settings = self.settings.with_name(f"registries-{self._versions}.toml")
        self.settings.write_text(text)
        self._monkeypatch.setenv("PYBUILD_REGISTRIES", str(self.settings))
        self.vars["PYBUILD_REGISTRIES"] = str(self.settings)
        Registry.forget_all()

    def login(self, host: str, user: str, password: str) -> None:
        """A config.json ``auths`` entry, as ``docker login`` writes it."""
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.write_config({"auths": {host: {"auth": auth}}})

    def trust(self, host: str, ca: Path) -> None:
        self.write_settings(f'[registry."{host}"]\nca = "{ca}"\n')


@pytest.fixture
def client_env(tmp_path, monkeypatch):
    Registry.forget_all()
    env = ClientEnv(tmp_path, monkeypatch)
    try:
        yield env
    finally:
        Registry.forget_all()


# ----------------------------------------------------------------------------------------------
# a small image pushed and pulled through the client


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_small_image(reg: Registry, repo: str, tag: str = "v1") -> tuple[str, dict[str, bytes]]:
    """A config and one layer blob, then the manifest; (manifest digest, blobs by digest)."""
    layer = os.urandom(4096)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
                         "diff_ids": [sha256(layer)]}}).encode()
    blobs = {sha256(config): config, sha256(layer): layer}
    for digest, data in blobs.items():
        if reg.blob_size(repo, digest) is None:
            reg.upload_blob(repo, digest, len(data), lambda offset, data=data: io.BytesIO(data[offset:]))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                   "digest": sha256(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer),
                    "digest": sha256(layer)}],
    }).encode()
    digest = reg.put_manifest(repo, tag, manifest, DOCKER_V2)
    assert digest == sha256(manifest)
    return digest, blobs


def pull_back(reg: Registry, repo: str, tag: str, blobs: dict[str, bytes]) -> str:
    fetched = reg.get_manifest(repo, tag)
    for digest, data in blobs.items():
        with reg.open_blob(repo, digest) as stream:
            assert stream.read() == data
    return fetched.digest


def assert_no_secrets(text: str, *secrets: str) -> None:
    for secret in secrets:
        if secret:
            assert secret not in text, f"a secret leaked into: {text}"
            encoded = base64.b64encode(secret.encode()).decode()
            assert encoded not in text, f"a base64 secret leaked into: {text}"
    assert "authorization:" not in text.lower()


def error_text(err: BaseException) -> str:
    """What a user could see of an error: its message and its whole traceback (as --debug prints it)."""
    return str(err) + "\n" + "".join(traceback.format_exception(err))


# ----------------------------------------------------------------------------------------------
# HTTP basic over TLS


def test_tls_basic_auth_with_ca_setting_pushes_and_pulls(tls_registry, client_env):
    client_env.trust(tls_registry.host, tls_registry.ca)
    client_env.login(tls_registry.host, USER, PASSWORD)
    reg = Registry.for_host(tls_registry.host)
    reg.ping()
    repo = unique_repo("tls")
    digest, blobs = push_small_image(reg, repo)
    assert pull_back(reg, repo, "v1", blobs) == digest
    assert reg.transport.base() == f"https://{tls_registry.host}"
    assert repo in tls_registry.server.repositories()


def test_tls_ca_found_in_certs_d_under_home(tls_registry, client_env):
    certs = client_env.home / ".config" / "pybuild" / "certs.d" / tls_registry.host
    certs.mkdir(parents=True)
    (certs / "ca.crt").write_bytes(tls_registry.ca.read_bytes())
    client_env.login(tls_registry.host, USER, PASSWORD)
    reg = Registry.for_host(tls_registry.host)
    reg.ping()
    repo = unique_repo("certsd")
    digest, blobs = push_small_image(reg, repo)
    assert pull_back(reg, repo, "v1", blobs) == digest


def test_tls_without_the_ca_is_a_clear_tls_error(tls_registry, client_env):
    client_env.login(tls_registry.host, USER, PASSWORD)
    reg = Registry.for_host(tls_registry.host)
    with pytest.raises(RegistryUnreachable) as caught:
        reg.ping()
    message = str(caught.value)
    assert tls_registry.host in message
    assert "certificate" in message.lower()
    assert "ca" in message.lower()           # says how to trust it
    assert caught.value.registry == tls_registry.host
    assert_no_secrets(error_text(caught.value), PASSWORD)


def test_tls_wrong_password_is_authentication_failed(tls_registry, client_env):
    client_env.trust(tls_registry.host, tls_registry.ca)
    wrong = "not-the-password-7d1e"
    client_env.login(tls_registry.host, USER, wrong)
    reg = Registry.for_host(tls_registry.host)
    with pytest.raises(AuthenticationFailed) as caught:
        reg.ping()
    assert tls_registry.host in str(caught.value)
    assert caught.value.registry == tls_registry.host
    assert_no_secrets(error_text(caught.value), wrong, PASSWORD)
    with pytest.raises(AuthenticationFailed) as caught:
        reg.get_manifest(unique_repo("wrong"), "latest")
    assert tls_registry.host in str(caught.value)
    assert_no_secrets(error_text(caught.value), wrong, PASSWORD)


def test_tls_no_credentials_says_to_log_in(tls_registry, client_env):
    client_env.trust(tls_registry.host, tls_registry.ca)
    reg = Registry.for_host(tls_registry.host)
    with pytest.raises(AuthenticationFailed) as caught:
        reg.get_manifest(unique_repo("anon"), "latest")
    message = str(caught.value)
    assert tls_registry.host in message
    assert "login" in message


def test_auths_entry_written_as_url_is_found(tls_registry, client_env):
    client_env.trust(tls_registry.host, tls_registry.ca)
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    client_env.write_config({"auths": {f"https://{tls_registry.host}": {"auth": auth}}})
    Registry.for_host(tls_registry.host).ping()


def test_auths_entry_with_username_and_password_fields(tls_registry, client_env):
    client_env.trust(tls_registry.host, tls_registry.ca)
    client_env.write_config({"auths": {tls_registry.host: {"username": USER, "password": PASSWORD}}})
    Registry.for_host(tls_registry.host).ping()


# ----------------------------------------------------------------------------------------------
# Bearer tokens


def test_token_flow_pushes_and_pulls_with_scoped_tokens(token_registry, client_env):
    tokens = token_registry.tokens
    client_env.login(token_registry.host, USER, PASSWORD)
    reg = Registry.for_host(token_registry.host)
    repo = unique_repo("token")
    seen = len(tokens.requests)
    digest, blobs = push_small_image(reg, repo)
    assert pull_back(reg, repo, "v1", blobs) == digest
    mine = tokens.requests[seen:]
    assert mine and all(r["user"] == USER and r["status"] == 200 for r in mine)
    scopes = {s for r in mine for s in r["scopes"]}
    assert f"repository:{repo}:pull,push" in scopes or f"repository:{repo}:push,pull" in scopes, scopes
    # a token is asked for once per scope set, not once per request
    assert len(mine) <= 4, mine


def test_token_reader_can_pull_but_not_push(token_registry, client_env):
    client_env.login(token_registry.host, USER, PASSWORD)
    repo = unique_repo("reader")
    digest, blobs = push_small_image(Registry.for_host(token_registry.host), repo)

    client_env.login(token_registry.host, READER, READER_PASSWORD)
    reg = Registry.for_host(token_registry.host)
    assert pull_back(reg, repo, "v1", blobs) == digest
    with pytest.raises(AuthenticationFailed) as caught:
        push_small_image(reg, repo, "v2")
    assert token_registry.host in str(caught.value)
    assert_no_secrets(error_text(caught.value), READER_PASSWORD, *token_registry.tokens.issued)


def test_token_wrong_password_is_authentication_failed(token_registry, client_env):
    wrong = "wrong-password-for-alice-33"
    client_env.login(token_registry.host, USER, wrong)
    reg = Registry.for_host(token_registry.host)
    seen = len(token_registry.tokens.requests)
    with pytest.raises(AuthenticationFailed) as caught:
        reg.get_manifest(unique_repo("tokwrong"), "latest")
    assert token_registry.host in str(caught.value)
    assert caught.value.registry == token_registry.host
    assert [r["status"] for r in token_registry.tokens.requests[seen:]][-1] == 401
    assert_no_secrets(error_text(caught.value), wrong, PASSWORD)


def test_token_anonymous_gets_nothing(token_registry, client_env):
    client_env.login(token_registry.host, USER, PASSWORD)
    repo = unique_repo("anon")
    push_small_image(Registry.for_host(token_registry.host), repo)

    client_env.write_config({})
    reg = Registry.for_host(token_registry.host)
    with pytest.raises(AuthenticationFailed) as caught:
        reg.get_manifest(repo, "v1")
    message = str(caught.value)
    assert token_registry.host in message
    assert "login" in message
    assert_no_secrets(error_text(caught.value), *token_registry.tokens.issued)


def test_token_errors_never_carry_tokens(token_registry, client_env):
    """A 404 and a denied push after tokens were issued: no token in any message or traceback."""
    client_env.login(token_registry.host, USER, PASSWORD)
    reg = Registry.for_host(token_registry.host)
    repo = unique_repo("notoken")
    push_small_image(reg, repo)
    with pytest.raises(RegistryError) as caught:
        reg.get_manifest(repo, "no-such-tag")
    assert token_registry.tokens.issued
    assert_no_secrets(error_text(caught.value), PASSWORD, *token_registry.tokens.issued)


# ----------------------------------------------------------------------------------------------
# credential helpers: a real docker-credential-<name> program


HELPER = r"""#!/bin/sh
# A file-backed docker credential helper (the protocol docker uses): get/store/erase/list on stdin/stdout.
dir='@DIR@'
action="$1"
input="$(cat)"
echo "$action" >> "$dir/calls.log"
key_of() { printf %s "$1" | sha256sum | cut -c1-32; }
case "$action" in
  get)
    f="$dir/$(key_of "$input").json"
    if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  store)
    server="$(printf %s "$input" | sed -n 's/.*"ServerURL": *"\([^"]*\)".*/\1/p')"
    printf %s "$input" > "$dir/$(key_of "$server").json" ;;
  erase)
    f="$dir/$(key_of "$input").json"
    if [ -f "$f" ]; then rm -f "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  list)
    echo "{}" ;;
  *)
    echo "unknown action $action" >&2; exit 2 ;;
esac
"""


class CredentialHelper:
    def __init__(self, env: ClientEnv, name: str):
        import subprocess

        self._subprocess = subprocess
        self.name = name
        self.dir = env.home / f"creds-{name}"
        self.dir.mkdir()
        self.program = env.bin / f"docker-credential-{name}"
        self.program.write_text(HELPER.replace("@DIR@", str(self.dir)))
        self.program.chmod(self.program.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def call(self, action: str, payload: str):
        return self._subprocess.run([str(self.program), action], input=payload.encode(), capture_output=True)

    def store(self, server: str, user: str, secret: str) -> None:
        done = self.call("store", json.dumps({"ServerURL": server, "Username": user, "Secret": secret}))
        assert done.returncode == 0, done.stderr

    def get(self, server: str) -> dict | None:
        done = self.call("get", server)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def calls(self) -> list[str]:
        log = self.dir / "calls.log"
        return log.read_text().split() if log.exists() else []


def test_creds_store_program_supplies_credentials(tls_registry, client_env):
    client_env.trust(tls_registry.host, tls_registry.ca)
    helper = CredentialHelper(client_env, "pbtest")
    helper.store(tls_registry.host, USER, PASSWORD)
    client_env.write_config({"credsStore": "pbtest"})
    Registry.for_host(tls_registry.host).ping()
    assert "get" in helper.calls()


def test_cred_helpers_entry_wins_over_auths(token_registry, client_env):
    helper = CredentialHelper(client_env, "pbhost")
    helper.store(token_registry.host, USER, PASSWORD)
    wrong = base64.b64encode(f"{USER}:wrong-in-auths".encode()).decode()
    client_env.write_config({"auths": {token_registry.host: {"auth": wrong}},
                             "credHelpers": {token_registry.host: "pbhost"}})
    reg = Registry.for_host(token_registry.host)
    repo = unique_repo("helper")
    digest, blobs = push_small_image(reg, repo)
    assert pull_back(reg, repo, "v1", blobs) == digest
    assert "get" in helper.calls()


def test_credential_helper_wrong_secret_is_authentication_failed(tls_registry, client_env):
    client_env.trust(tls_registry.host, tls_registry.ca)
    helper = CredentialHelper(client_env, "pbwrong")
    wrong = "helper-kept-a-stale-password"
    helper.store(tls_registry.host, USER, wrong)
    client_env.write_config({"credHelpers": {tls_registry.host: "pbwrong"}})
    with pytest.raises(AuthenticationFailed) as caught:
        Registry.for_host(tls_registry.host).ping()
    assert tls_registry.host in str(caught.value)
    assert_no_secrets(error_text(caught.value), wrong)


def test_missing_credential_helper_program_is_a_clear_error(tls_registry, client_env):
    client_env.trust(tls_registry.host, tls_registry.ca)
    client_env.write_config({"credsStore": "pb-not-installed"})
    with pytest.raises(RegistryError) as caught:
        Registry.for_host(tls_registry.host).ping()
    assert "docker-credential-pb-not-installed" in str(caught.value)


def test_save_and_erase_login_through_the_helper(tls_registry, client_env):
    from builder.registry import credentials

    helper = CredentialHelper(client_env, "pbsave")
    client_env.write_config({"credsStore": "pbsave"})
    where = credentials.save_login(tls_registry.host, USER, PASSWORD)
    assert "pbsave" in where
    stored = helper.get(tls_registry.host)
    assert stored == {"ServerURL": tls_registry.host, "Username": USER, "Secret": PASSWORD}
    # docker lists the host in auths with no secret in the file itself
    text = (client_env.docker_config / "config.json").read_text()
    assert_no_secrets(text, PASSWORD)
    found = credentials.lookup(tls_registry.host)
    assert (found.username, found.password) == (USER, PASSWORD)
    assert PASSWORD not in repr(found)
    assert credentials.erase_login(tls_registry.host) is True
    assert helper.get(tls_registry.host) is None
    assert credentials.lookup(tls_registry.host) is None
    assert credentials.erase_login(tls_registry.host) is False


def test_save_login_without_helper_writes_auths_0600(client_env):
    from builder.registry import credentials

    credentials.save_login("registry.example:5000", USER, PASSWORD)
    path = client_env.docker_config / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    entry = client_env.config()["auths"]["registry.example:5000"]
    assert base64.b64decode(entry["auth"]).decode() == f"{USER}:{PASSWORD}"
    assert credentials.erase_login("registry.example:5000") is True
    assert "registry.example:5000" not in client_env.config().get("auths", {})


# ----------------------------------------------------------------------------------------------
# plain http: loopback, or hosts listed insecure


def test_plain_http_only_for_loopback_or_insecure_hosts(client_env):
    for host in ("127.0.0.1:5000", "localhost:5000", "[::1]:5000", "127.0.0.2", "localhost"):
        assert registry_settings.settings_for(host).plain_http_allowed, host
    for host in ("registry.example:5000", "10.1.2.3:5000", "192.168.0.10", "localhost.example.com",
                 "docker.io"):
        assert not registry_settings.settings_for(host).plain_http_allowed, host
    client_env.write_settings('[registry."registry.example:5000"]\ninsecure = true\n')
    assert registry_settings.settings_for("registry.example:5000").plain_http_allowed
    assert not registry_settings.settings_for("registry.example:5001").plain_http_allowed


def test_loopback_registry_over_plain_http(registry, client_env):
    reg = Registry.for_host(registry.host)
    reg.ping()
    assert reg.transport.base() == f"http://{registry.host}"


def test_unknown_settings_are_a_clear_error(client_env):
    client_env.write_settings('[registry."r.example"]\ninsecure = "yes"\n')
    with pytest.raises(RegistryError) as caught:
        registry_settings.settings_for("r.example")
    assert "insecure" in str(caught.value)
    assert str(client_env.settings) in str(caught.value)


# ----------------------------------------------------------------------------------------------
# the CLI: pybuild login / logout, then pull and push; what --debug shows


def cli(env: ClientEnv, root: Path, *args: str, input: bytes | None = None):
    from image_fixtures import pb

    return pb(root, *args, input=input, env={**env.vars, "SOURCE_DATE_EPOCH": "1577836800"})


def cli_ok(env: ClientEnv, root: Path, *args: str, input: bytes | None = None) -> str:
    from image_fixtures import ok

    return ok(cli(env, root, *args, input=input))


def all_output(result) -> str:
    return result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")


@pytest.fixture
def busybox_root(tmp_path, busybox_tar, client_env):
    root = tmp_path / "root"
    cli_ok(client_env, root, "import", str(busybox_tar), "busybox:latest")
    return root


def test_cli_login_push_pull_logout_over_tls(tls_registry, client_env, busybox_root, tmp_path):
    from image_fixtures import fails

    host = tls_registry.host
    client_env.trust(host, tls_registry.ca)
    name = f"{host}/{unique_repo('cli')}:1"
    cli_ok(client_env, busybox_root, "tag", "busybox:latest", name)
    # before login: a clear refusal that says how to log in
    err = fails(cli(client_env, busybox_root, "push", name))
    assert host in err and "login" in err, err

    result = cli(client_env, busybox_root, "login", "-u", USER, "--password-stdin", host,
                 input=f"{PASSWORD}\n".encode())
    from image_fixtures import ok

    assert "Login Succeeded" in ok(result)
    assert_no_secrets(all_output(result), PASSWORD)
    entry = client_env.config()["auths"][host]
    assert base64.b64decode(entry["auth"]).decode() == f"{USER}:{PASSWORD}"

    pushed = cli(client_env, busybox_root, "--debug", "push", name)
    assert pushed.returncode == 0, all_output(pushed)
    assert_no_secrets(all_output(pushed), PASSWORD)
    fresh = tmp_path / "fresh"
    pulled = cli(client_env, fresh, "--debug", "pull", name)
    assert pulled.returncode == 0, all_output(pulled)
    assert_no_secrets(all_output(pulled), PASSWORD)
    assert cli_ok(client_env, fresh, "run", "--rm", "--network", "none", name, "echo", "pulled") == "pulled\n"

    assert cli_ok(client_env, fresh, "logout", host) == f"Removing login credentials for {host}\n"
    assert host not in client_env.config().get("auths", {})
    assert cli_ok(client_env, fresh, "logout", host) == f"Not logged in to {host}\n"
    err = fails(cli(client_env, tmp_path / "third", "pull", name))
    assert host in err and "login" in err, err


def test_cli_login_with_a_wrong_password_saves_nothing(tls_registry, client_env, tmp_path):
    from image_fixtures import fails

    host = tls_registry.host
    client_env.trust(host, tls_registry.ca)
    wrong = "Wrong-Password-4711"
    result = cli(client_env, tmp_path / "root", "login", "-u", USER, "--password-stdin", host,
                 input=f"{wrong}\n".encode())
    err = fails(result)
    assert host in err
    assert_no_secrets(all_output(result), wrong)
    assert not (client_env.docker_config / "config.json").exists() or \
        host not in client_env.config().get("auths", {})
    # --debug shows a traceback, still without the password
    result = cli(client_env, tmp_path / "root", "--debug", "login", "-u", USER, "--password-stdin", host,
                 input=f"{wrong}\n".encode())
    assert result.returncode != 0
    assert_no_secrets(all_output(result), wrong)


def test_cli_login_to_a_tls_registry_without_its_ca(tls_registry, client_env, tmp_path):
    from image_fixtures import fails

    result = cli(client_env, tmp_path / "root", "login", "-u", USER, "--password-stdin", tls_registry.host,
                 input=f"{PASSWORD}\n".encode())
    err = fails(result)
    assert tls_registry.host in err and "certificate" in err.lower()
    assert_no_secrets(all_output(result), PASSWORD)


def test_cli_token_registry_debug_output_has_no_password_or_token(token_registry, client_env, busybox_root,
                                                                  tmp_path):
    from image_fixtures import fails

    host = token_registry.host
    tokens = token_registry.tokens
    cli_ok(client_env, busybox_root, "login", "-u", USER, "--password-stdin", host, input=f"{PASSWORD}\n".encode())
    name = f"{host}/{unique_repo('tokcli')}:1"
    cli_ok(client_env, busybox_root, "tag", "busybox:latest", name)
    seen = len(tokens.issued)
    pushed = cli(client_env, busybox_root, "--debug", "push", name)
    assert pushed.returncode == 0, all_output(pushed)
    pulled = cli(client_env, tmp_path / "fresh", "--debug", "pull", name)
    assert pulled.returncode == 0, all_output(pulled)
    assert len(tokens.issued) > seen
    for result in (pushed, pulled):
        assert_no_secrets(all_output(result), PASSWORD, *tokens.issued)

    # the reader may pull but not push: a clear error, no token in it even with --debug
    client_env.write_config({})
    cli_ok(client_env, busybox_root, "login", "-u", READER, "--password-stdin", host,
           input=f"{READER_PASSWORD}\n".encode())
    denied = cli(client_env, busybox_root, "push", name)
    err = fails(denied)
    assert host in err
    denied_debug = cli(client_env, busybox_root, "--debug", "push", name)
    assert denied_debug.returncode != 0
    for result in (denied, denied_debug):
        assert_no_secrets(all_output(result), READER_PASSWORD, PASSWORD, *tokens.issued)


def test_cli_login_and_logout_through_a_credential_helper(tls_registry, client_env, tmp_path):
    host = tls_registry.host
    client_env.trust(host, tls_registry.ca)
    helper = CredentialHelper(client_env, "pbcli")
    client_env.write_config({"credsStore": "pbcli"})
    out = cli_ok(client_env, tmp_path / "root", "login", "-u", USER, "--password-stdin", host,
                 input=f"{PASSWORD}\n".encode())
    assert "Login Succeeded" in out and "docker-credential-pbcli" in out
    assert helper.get(host) == {"ServerURL": host, "Username": USER, "Secret": PASSWORD}
    assert_no_secrets((client_env.docker_config / "config.json").read_text(), PASSWORD)
    assert cli_ok(client_env, tmp_path / "root", "logout", host) == f"Removing login credentials for {host}\n"
    assert helper.get(host) is None
    assert "erase" in helper.calls()
