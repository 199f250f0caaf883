"""The registry client's pure parts: challenges, settings, credentials files, upload ranges."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from builder.registry import credentials, settings
from builder.registry.auth import Challenge, parse_challenges
from builder.registry.client import _range_end, _with_query
from builder.registry.errors import RegistryError


def test_bearer_challenge_with_quoted_params():
    got = parse_challenges(['Bearer realm="https://auth.example/token",service="registry.example",'
                            'scope="repository:samalba/my-app:pull,push"'])
    assert got == [Challenge("bearer", {"realm": "https://auth.example/token", "service": "registry.example",
                                        "scope": "repository:samalba/my-app:pull,push"})]


def test_basic_challenge_and_several_in_one_header():
    assert parse_challenges(['Basic realm="basic-realm"']) == [Challenge("basic", {"realm": "basic-realm"})]
    got = parse_challenges(['Basic realm="a", Bearer realm="https://t/x",error="insufficient_scope"'])
    assert [c.scheme for c in got] == ["basic", "bearer"]
    assert got[1].params["error"] == "insufficient_scope"


def test_escaped_quotes_in_a_param():
    got = parse_challenges([r'Bearer realm="https://t/x",service="a \"b\""'])
    assert got[0].params["service"] == 'a "b"'


@pytest.mark.parametrize("header, held", [("0-99", 100), ("bytes=0-0", 1), ("", 0), ("0-", 0)])
def test_upload_range_header(header, held):
    assert _range_end(header) == held


def test_with_query_keeps_the_locations_state():
    assert _with_query("http://h/v2/a/blobs/uploads/u?_state=xyz", digest="sha256:ab") == \
        "http://h/v2/a/blobs/uploads/u?_state=xyz&digest=sha256%3Aab"
    assert _with_query("/v2/u", digest="d") == "/v2/u?digest=d"


@pytest.mark.parametrize("host, loopback", [("127.0.0.1:5000", True), ("localhost", True), ("[::1]:5000", True),
                                            ("127.3.2.1", True), ("10.0.0.1:5000", False),
                                            ("registry.example", False)])
def test_loopback_hosts_may_use_plain_http(host, loopback):
    assert settings.is_loopback(host) is loopback
    assert settings.HostSettings(host).plain_http_allowed is loopback


def test_hub_names_fold_into_docker_io():
    for name in ("docker.io", "index.docker.io", "https://index.docker.io/v1/", "registry-1.docker.io"):
        assert settings.canonical_host(name) == "docker.io"
    assert settings.HostSettings("docker.io").api_host == "registry-1.docker.io"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.delenv("PYBUILD_REGISTRIES", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    settings._loaded = None
    yield tmp_path
    settings._loaded = None


def write_settings(home, text: str) -> None:
    path = home / ".config" / "pybuild" / "registries.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_settings_file_mirrors_insecure_and_ca(home):
    write_settings(home, '[registry."docker.io"]\nmirrors = ["127.0.0.1:5000"]\n'
                         '[registry."build.example:5443"]\ninsecure = true\nca = "/x/ca.pem"\n')
    hub = settings.settings_for("index.docker.io")
    assert hub.mirrors == ("127.0.0.1:5000",)
    other = settings.settings_for("build.example:5443")
    assert other.insecure and other.plain_http_allowed and other.ca_file() == "/x/ca.pem"
    assert settings.settings_for("elsewhere.example") == settings.HostSettings("elsewhere.example")


def test_settings_ca_from_certs_d(home):
    ca = home / ".config" / "pybuild" / "certs.d" / "reg.example:443" / "ca.crt"
    ca.parent.mkdir(parents=True)
    ca.write_text("x")
    assert settings.settings_for("reg.example:443").ca_file() == str(ca)


@pytest.mark.parametrize("text, message", [
    ('[registry."a"]\nmirror = ["x"]\n', "unknown setting 'mirror'"),
    ('[registry."a"]\ninsecure = "yes"\n', "insecure must be true or false"),
    ('[registry."a"]\nmirrors = "x"\n', "mirrors must be a list of hosts"),
    ('[registry\n', "registries.toml"),
])
def test_bad_settings_name_the_file_and_setting(home, text, message):
    write_settings(home, text)
    with pytest.raises(RegistryError) as err:
        settings.settings_for("a")
    assert message in str(err.value) and "registries.toml" in str(err.value)


def test_mirror_hint_names_the_setting_for_docker_io_only(home):
    assert "mirrors" in settings.mirror_hint("docker.io") and "registries.toml" in settings.mirror_hint("docker.io")
    assert settings.mirror_hint("127.0.0.1:5000") == ""


def test_login_is_stored_as_docker_does_and_erased(home):
    where = credentials.save_login("127.0.0.1:5000", "alice", "s3cret")
    path = home / ".docker" / "config.json"
    assert where == str(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    obj = json.loads(path.read_text())
    assert base64.b64decode(obj["auths"]["127.0.0.1:5000"]["auth"]) == b"alice:s3cret"
    found = credentials.lookup("127.0.0.1:5000")
    assert (found.username, found.password) == ("alice", "s3cret")
    assert "s3cret" not in repr(found)
    assert credentials.erase_login("127.0.0.1:5000") is True
    assert credentials.lookup("127.0.0.1:5000") is None
    assert credentials.erase_login("127.0.0.1:5000") is False


def test_docker_hub_is_filed_under_its_v1_url(home):
    credentials.save_login("docker.io", "bob", "pw")
    obj = json.loads((home / ".docker" / "config.json").read_text())
    assert list(obj["auths"]) == ["https://index.docker.io/v1/"]
    assert credentials.lookup("index.docker.io").username == "bob"


def test_auths_keys_written_as_urls_and_username_password_fields(home, monkeypatch):
    cfg = home / "cfg"
    cfg.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg))
    (cfg / "config.json").write_text(json.dumps({"auths": {
        "https://reg.example:5000/": {"username": "u", "password": "p"},
        "tok.example": {"identitytoken": "refresh-me"}}}))
    assert credentials.lookup("reg.example:5000").password == "p"
    assert credentials.lookup("tok.example").identity_token == "refresh-me"
    assert credentials.lookup("other.example") is None


def test_a_broken_config_json_is_named(home):
    path = home / ".docker" / "config.json"
    path.parent.mkdir()
    path.write_text("{not json")
    with pytest.raises(credentials.CredentialsError) as err:
        credentials.lookup("a")
    assert str(path) in str(err.value)


def test_a_rewritten_settings_file_is_read_again(home):
    write_settings(home, '[registry."a.example"]\ninsecure = true\n')
    assert settings.settings_for("a.example").insecure
    write_settings(home, '[registry."a.example"]\ninsecure = false\nca = "/ca.pem"\n')
    assert not settings.settings_for("a.example").insecure
