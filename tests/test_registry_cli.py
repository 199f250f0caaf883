"""The registry commands as a user runs them: ``pybuild login`` / ``logout`` against a TLS registry with
basic auth (the credentials are checked before they are saved, and never printed), ``pull`` / ``push``
output and flags."""

from __future__ import annotations

import base64
import json

import pytest

from image_fixtures import EPOCH, fails, ok, pb
from registry_fixtures import PASSWORD, USER, unique_repo


@pytest.fixture
def env(tmp_path, tls_registry):
    """A user with an empty docker config and the TLS registry's CA in the settings file."""
    home = tmp_path / "home"
    home.mkdir()
    settings = home / "registries.toml"
    settings.write_text(f'[registry."{tls_registry.host}"]\nca = "{tls_registry.ca}"\n')
    return {"HOME": str(home), "DOCKER_CONFIG": str(home / ".docker"), "PYBUILD_REGISTRIES": str(settings),
            "XDG_CONFIG_HOME": str(home / ".config"), "SOURCE_DATE_EPOCH": str(EPOCH)}


def run(root, *args, env, input: bytes | None = None):
    return pb(root, *args, env=env, input=input)


def docker_config(env) -> dict:
    from pathlib import Path

    path = Path(env["DOCKER_CONFIG"]) / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def assert_no_password(*texts: bytes | str) -> None:
    for text in texts:
        text = text.decode(errors="replace") if isinstance(text, bytes) else text
        assert PASSWORD not in text and "wrong-pass-1234" not in text
        assert base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in text


def test_login_checks_saves_and_logout_forgets(tmp_path, tls_registry, busybox_tar, env):
    root = tmp_path / "root"
    host = tls_registry.host
    result = run(root, "login", "-u", USER, "--password-stdin", host, env=env, input=PASSWORD.encode() + b"\n")
    out = ok(result)
    assert out.startswith("Login Succeeded"), out
    assert_no_password(result.stdout, result.stderr)
    auths = docker_config(env)["auths"]
    assert len(auths) == 1 and base64.b64decode(next(iter(auths.values()))["auth"]).decode() == f"{USER}:{PASSWORD}"

    # the saved credentials serve push and pull
    ok(run(root, "import", str(busybox_tar), "busybox:latest", env=env))
    name = f"{host}/{unique_repo('login')}:1"
    ok(run(root, "tag", "busybox", name, env=env))
    pushed = run(root, "push", name, env=env)
    assert ": digest: sha256:" in ok(pushed)
    assert_no_password(pushed.stdout, pushed.stderr)
    other = tmp_path / "other"
    assert ok(run(other, "pull", "-q", name, env=env)) == f"{name}\n"

    assert ok(run(root, "logout", host, env=env)) == f"Removing login credentials for {host}\n"
    assert ok(run(root, "logout", host, env=env)) == f"Not logged in to {host}\n"
    err = fails(run(tmp_path / "third", "pull", name, env=env))
    assert "login" in err.lower() or "credentials" in err.lower() or "unauthorized" in err.lower(), err


def test_login_with_a_wrong_password_saves_nothing(tmp_path, tls_registry, env):
    result = run(tmp_path / "root", "login", "-u", USER, "--password-stdin", tls_registry.host, env=env,
                 input=b"wrong-pass-1234\n")
    err = fails(result)
    assert tls_registry.host in err
    assert_no_password(result.stdout, result.stderr)
    assert docker_config(env).get("auths", {}) == {}


def test_login_password_flag_warns_and_flags_are_checked(tmp_path, tls_registry, env):
    root = tmp_path / "root"
    result = run(root, "login", "-u", USER, "-p", PASSWORD, tls_registry.host, env=env)
    ok(result)
    assert "WARNING! Using --password via the CLI is insecure. Use --password-stdin." in result.stderr.decode()
    err = fails(run(root, "login", "--password-stdin", tls_registry.host, env=env, input=b"x\n"))
    assert "must provide --username with --password-stdin" in err
    err = fails(run(root, "login", "-u", USER, "-p", "x", "--password-stdin", tls_registry.host, env=env))
    assert "mutually exclusive" in err
    err = fails(run(root, "login", tls_registry.host, env=env, input=b""))
    assert "stdin is not a terminal" in err


def test_pull_and_push_flags(tmp_path, registry_busybox, env):
    root = tmp_path / "root"
    err = fails(run(root, "pull", "--platform", "linux/x y", registry_busybox, env=env))
    assert err.startswith("error: --platform linux/x y:"), err
    err = fails(run(root, "pull", "Not/A/Valid:Ref", env=env))
    assert "not a valid repository/tag" in err
    out = ok(run(root, "pull", registry_busybox.rsplit(":", 1)[0], env=env))
    assert out.startswith("Using default tag: latest\nlatest: Pulling from "), out
    lines = out.splitlines()
    assert any(line.endswith(": Pull complete") for line in lines), out
    assert lines[-1] == registry_busybox


def test_push_prints_each_blob_and_the_digest_line(tmp_path, registry, busybox_tar, env):
    root = tmp_path / "root"
    ok(run(root, "import", str(busybox_tar), "busybox:latest", env=env))
    name = f"{registry.host}/{unique_repo('lines')}:v1"
    ok(run(root, "tag", "busybox", name, env=env))
    out = ok(run(root, "push", name, env=env)).splitlines()
    assert out[0] == f"The push refers to repository [{name.rsplit(':', 1)[0]}]"
    assert sorted(line.split(": ", 1)[1] for line in out[1:-1] if ": Pushing" not in line) == ["Pushed", "Pushed"]
    assert out[-1].startswith("v1: digest: sha256:") and out[-1].split(" size: ")[1].isdigit()
