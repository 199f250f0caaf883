"""Volumes and run mounts through ``pybuild run`` as a user runs it: named volumes outlive their
containers, an image's VOLUME gets an anonymous volume filled from the image, ``volume rm``/``prune``
respect the containers that use them, and bad mount flags fail with docker's texts."""

from __future__ import annotations

import re

import pytest

from image_fixtures import fails, ok, pb


@pytest.fixture
def root(tmp_path, busybox_tar):
    root = tmp_path / "root"
    ok(pb(root, "import", str(busybox_tar), "busybox:latest", "--change", 'CMD ["sh"]'))
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "FROM busybox\n"
        "RUN mkdir -p /data/sub && echo from-image > /data/seed && chown -R 1000:1001 /data && chmod 710 /data\n"
        "VOLUME /data\n")
    ok(pb(root, "build", "-q", "-t", "withvol", str(context)))
    return root


def _run(root, *args):
    return pb(root, "run", "--network", "none", *args)


def test_named_volume_outlives_its_containers(root):
    assert ok(_run(root, "--rm", "-v", "shared:/srv", "busybox", "sh", "-c", "echo one > /srv/f; ls /srv")) == "f\n"
    assert ok(_run(root, "--rm", "--mount", "source=shared,target=/mnt", "busybox", "cat", "/mnt/f")) == "one\n"
    assert ok(pb(root, "volume", "ls", "-q")) == "shared\n"
    assert (root / "volumes" / "shared" / "_data" / "f").read_text() == "one\n"
    denied = _run(root, "--rm", "-v", "shared:/srv:ro", "busybox", "sh", "-c", "echo two > /srv/f")
    assert denied.returncode != 0 and b"Read-only file system" in denied.stderr


def test_a_volume_a_container_uses_cannot_be_removed_or_pruned(root):
    ok(_run(root, "--name", "user1", "-v", "kept:/srv", "busybox", "true"))
    cid = ok(pb(root, "inspect", "-f", "{{.Id}}", "user1")).strip()
    assert fails(pb(root, "volume", "rm", "kept")) == f"error: remove kept: volume is in use - [{cid}]\n"
    assert ok(pb(root, "volume", "prune", "-f")) == "Total reclaimed space: 0B\n"
    assert ok(pb(root, "volume", "ls", "-q", "-f", "dangling=false")) == "kept\n"
    ok(pb(root, "rm", "user1"))
    assert ok(pb(root, "volume", "ls", "-q", "-f", "dangling=true")) == "kept\n"
    assert ok(pb(root, "volume", "rm", "kept")) == "kept\n"


def test_image_volume_is_an_anonymous_volume_filled_from_the_image(root):
    text = ok(_run(root, "--name", "c1", "withvol", "sh", "-c",
                   "stat -c '%a %u:%g' /data; cat /data/seed; ls /data; echo mine > /data/mine"))
    assert text == "710 1000:1001\nfrom-image\nseed\nsub\n"
    (name,) = ok(pb(root, "volume", "ls", "-q")).split()
    assert re.fullmatch(r"[0-9a-f]{64}", name)
    assert (root / "volumes" / name / "_data" / "mine").read_text() == "mine\n"
    # a named volume over the same path is filled the same way, once
    assert ok(_run(root, "--rm", "-v", "named:/data", "withvol", "cat", "/data/seed")) == "from-image\n"
    assert ok(_run(root, "--rm", "-v", "empty:/data:nocopy", "withvol", "ls", "-A", "/data")) == ""
    ok(pb(root, "rm", "-v", "c1"))                            # rm -v takes the anonymous volume along
    assert ok(pb(root, "volume", "ls", "-q")) == "empty\nnamed\n"
    assert ok(pb(root, "volume", "prune", "-f")) == "Deleted Volumes:\nempty\nnamed\n\nTotal reclaimed space: 11B\n"


def test_binds_and_tmpfs(root, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "in").write_text("from host\n")
    made = tmp_path / "made-by-run"
    text = ok(_run(root, "--rm", "-v", f"{host}:/h", "-v", f"{made}:/m", "--tmpfs", "/scratch:size=1m,mode=700",
                   "busybox", "sh", "-c", "cat /h/in; echo out > /h/out; touch /m/x; "
                   "grep ' /scratch ' /proc/mounts | cut -d' ' -f3"))
    assert text == "from host\ntmpfs\n"
    assert (host / "out").read_text() == "out\n" and (made / "x").exists()


@pytest.mark.parametrize("flags, message", [
    (["--mount", "type=bind,src=/nonexistent-pybuild-src,dst=/x"],
     'error: invalid mount config for type "bind": bind source path does not exist: /nonexistent-pybuild-src\n'),
    (["-v", "./relative:/x"], 'error: create ./relative: "./relative" includes invalid characters for a local volume '
                              'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                              "directory, use absolute path\n"),
    (["-v", "/x:rw"], "error: invalid volume specification: '/x:rw'\n"),
    (["-v", "ab:/x", "--tmpfs", "/x"], "error: Duplicate mount point: /x\n"),
    (["--mount", "type=volume,dst=/x,bogus=1"],
     'error: invalid argument "type=volume,dst=/x,bogus=1" for "--mount" flag: unexpected key \'bogus\' in '
     "'bogus=1'\n"),
    (["--tmpfs", "/x:bogus"], 'error: invalid tmpfs option ["bogus"]\n'),
])
def test_bad_mount_flags(root, flags, message):
    assert fails(_run(root, "--rm", *flags, "busybox", "true")) == message
    assert ok(pb(root, "volume", "ls", "-q")) == ""
    assert ok(pb(root, "ps", "-a", "-q")) == ""
