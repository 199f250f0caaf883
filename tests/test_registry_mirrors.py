"""docker.io has no route from this machine: pulls fail fast and say how to set a mirror; with a mirror
set (the test's registry), docker.io names are pulled through it, in `pybuild pull` and in FROM."""

from __future__ import annotations

import time

import pytest

from image_fixtures import pb
from registry_fixtures import skopeo_copy

HUB_BUSYBOX = "docker.io/library/busybox:latest"


@pytest.fixture
def user_env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home), "DOCKER_CONFIG": "", "PYBUILD_REGISTRIES": "", "XDG_CONFIG_HOME": ""}


def run(root, *args, env):
    """``pybuild`` with text output."""
    result = pb(root, *args, env=env)
    result.stdout, result.stderr = result.stdout.decode(), result.stderr.decode()
    return result


def settings_file(env: dict, text: str) -> None:
    from pathlib import Path

    path = Path(env["HOME"]) / ".config" / "pybuild" / "registries.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(scope="module")
def mirror(registry, busybox_archive) -> str:
    """The session registry as a docker.io mirror, holding library/busybox:latest."""
    skopeo_copy(f"docker-archive:{busybox_archive}", f"docker://{registry.host}/library/busybox:latest",
                tls_verify=False)
    return registry.host


def test_docker_io_without_a_route_fails_fast_naming_the_mirror_setting(tmp_path, user_env):
    started = time.monotonic()
    result = run(tmp_path / "root", "pull", "busybox", env=user_env)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot reach registry docker.io" in result.stderr
    assert "mirrors" in result.stderr and "registries.toml" in result.stderr
    assert elapsed < 30      # no minutes of retrying a host that never answered


def test_docker_io_pulls_go_through_the_mirror(tmp_path, user_env, mirror):
    settings_file(user_env, f'[registry."docker.io"]\nmirrors = ["{mirror}"]\n')
    root = tmp_path / "root"
    result = run(root, "pull", "-q", "busybox", env=user_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == HUB_BUSYBOX
    listed = run(root, "images", "--format", "{{.Repository}}:{{.Tag}}", env=user_env)
    assert listed.stdout.split() == ["busybox:latest"]
    ran = run(root, "run", "--rm", "--network", "none", "busybox", "echo", "from the mirror", env=user_env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "from the mirror\n"


def test_from_a_docker_io_image_pulls_it_through_the_mirror(tmp_path, user_env, mirror):
    settings_file(user_env, f'[registry."docker.io"]\nmirrors = ["{mirror}"]\n')
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nRUN echo built > /built\n")
    root = tmp_path / "root"
    result = run(root, "build", "-t", "app:1", "--progress", "plain", str(context), env=user_env)
    assert result.returncode == 0, result.stderr
    ran = run(root, "run", "--rm", "--network", "none", "app:1", "cat", "/built", env=user_env)
    assert ran.stdout == "built\n"


def test_a_mirror_that_is_down_falls_back_to_docker_io_and_says_so(tmp_path, user_env):
    from registry_fixtures import free_port

    settings_file(user_env, f'[registry."docker.io"]\nmirrors = ["127.0.0.1:{free_port()}"]\n')
    result = run(tmp_path / "root", "pull", "busybox", env=user_env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot reach registry docker.io" in result.stderr
