"""Container features through the CLI: exec, HEALTHCHECK, volumes, restart policies, security flags."""

from __future__ import annotations

import json
import re
import tarfile
import time
from pathlib import Path

import pytest

from runtime_helpers import cli, cli_ok, on_terminal, state, wait_for, cleanup_root

NONE = ("--network", "none")


@pytest.fixture(scope="module")
def root(tmp_path_factory, busybox_tar) -> Path:
    root = tmp_path_factory.mktemp("runtime-features") / "root"
    cli_ok(root, "import", str(busybox_tar), "busybox:latest", "--change", 'CMD ["sh"]')
    yield root
    cleanup_root(root)


def test_exec_runs_in_the_containers_namespaces_with_its_user_env_and_terminal(root):
    cli_ok(root, "run", "-d", *NONE, "--name", "ex", "-e", "GREETING=hi", "-w", "/tmp", "busybox", "sleep", "1000")
    out = cli_ok(root, "exec", "ex", "sh", "-c", "echo $GREETING $(pwd) $(hostname); cat /proc/1/comm; id -u")
    cid = json.loads(cli_ok(root, "inspect", "ex"))[0]["Id"]
    assert out == f"hi /tmp {cid[:12]}\nsleep\n0\n"
    assert cli_ok(root, "exec", "-u", "65534", "-e", "X=1", "ex", "sh", "-c", "id -u; echo $X") == "65534\n1\n"
    assert cli_ok(root, "exec", "-i", "ex", "cat", input=b"piped\n") == "piped\n"
    cli_ok(root, "exec", "ex", "sh", "-c", "echo from-exec > /tmp/mark")
    assert cli(root, "exec", "ex", "sh", "-c", "exit 4").returncode == 4
    missing = cli(root, "exec", "ex", "nosuch")
    assert missing.returncode == 127 and 'exec: "nosuch": executable file not found in $PATH' in missing.stderr.decode()
    out, code = on_terminal(root, ["exec", "-it", "ex", "sh"], b"tty; cat /tmp/mark; exit 6\n")
    assert code == 6 and "/dev/pts/" in out and "from-exec" in out, out
    cli_ok(root, "stop", "-t", "0", "ex")
    stopped = cli(root, "exec", "ex", "true")
    assert stopped.returncode == 1 and "is not running" in stopped.stderr.decode()
    cli_ok(root, "rm", "ex")


def test_healthcheck_goes_starting_unhealthy_healthy_in_ps_and_inspect(root):
    cli_ok(root, "run", "-d", *NONE, "--name", "doc", "--health-cmd", "test -e /ok", "--health-interval", "200ms",
           "--health-retries", "2", "busybox", "sleep", "1000")
    status = lambda: cli_ok(root, "ps", "--filter", "name=doc", "--format", "{{.Status}}").strip()  # noqa: E731
    wait_for(lambda: status().endswith("(unhealthy)"), what="unhealthy")
    health = json.loads(cli_ok(root, "inspect", "-f", "{{json .State.Health}}", "doc"))
    assert health["Status"] == "unhealthy" and health["FailingStreak"] >= 2 and health["Log"][-1]["ExitCode"] == 1
    cli_ok(root, "exec", "doc", "touch", "/ok")
    wait_for(lambda: status().endswith("(healthy)"), what="healthy")
    assert cli_ok(root, "ps", "-q", "--filter", "health=healthy").strip()
    cli_ok(root, "rm", "-f", "doc")


def test_healthcheck_from_the_image(root, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nHEALTHCHECK --interval=200ms --timeout=2s CMD echo ok-probe\nCMD [\"sleep\", \"1000\"]\n")
    cli_ok(root, "build", "-q", "-t", "probed:1", str(tmp_path))
    cli_ok(root, "run", "-d", *NONE, "--name", "probed", "probed:1")
    wait_for(lambda: "(healthy)" in cli_ok(root, "ps", "--filter", "name=probed"), what="healthy")
    health = json.loads(cli_ok(root, "inspect", "-f", "{{json .State.Health}}", "probed"))
    assert health["Log"][-1]["Output"] == "ok-probe\n"
    cli_ok(root, "rm", "-f", "probed")


def test_named_and_anonymous_volumes_outlive_their_containers(root, tmp_path):
    cli_ok(root, "run", "--rm", *NONE, "-v", "keep:/data", "busybox", "sh", "-c", "echo saved > /data/f")
    assert cli_ok(root, "run", "--rm", *NONE, "-v", "keep:/data:ro", "busybox", "cat", "/data/f") == "saved\n"
    ro = cli(root, "run", "--rm", *NONE, "-v", "keep:/data:ro", "busybox", "touch", "/data/x")
    assert ro.returncode == 1 and "Read-only file system" in ro.stderr.decode()
    cli_ok(root, "run", *NONE, "--name", "user", "-v", "keep:/data", "busybox", "true")
    in_use = cli(root, "volume", "rm", "keep")
    assert in_use.returncode == 1 and "volume is in use" in in_use.stderr.decode()
    cli_ok(root, "rm", "user")
    # an image VOLUME gets an anonymous volume, filled from the image; rm -v removes it
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN mkdir /state && echo seeded > /state/s\nVOLUME /state\n")
    cli_ok(root, "build", "-q", "-t", "vol:1", str(tmp_path))
    cli_ok(root, "run", *NONE, "--name", "anon", "vol:1", "sh", "-c", "cat /state/s; echo more >> /state/s")
    doc = json.loads(cli_ok(root, "inspect", "anon"))[0]
    (mount,) = doc["Mounts"]
    assert mount["Type"] == "volume" and mount["Destination"] == "/state" and len(mount["Name"]) == 64
    assert Path(mount["Source"], "s").read_text() == "seeded\nmore\n"
    assert mount["Name"] in cli_ok(root, "volume", "ls", "-q").split()
    cli_ok(root, "rm", "-v", "anon")
    assert mount["Name"] not in cli_ok(root, "volume", "ls", "-q").split()
    # binds and tmpfs
    host = tmp_path / "host"
    host.mkdir()
    (host / "h").write_text("from-host\n")
    out = cli_ok(root, "run", "--rm", *NONE, "-v", f"{host}:/h", "--tmpfs", "/scratch:size=1m", "busybox", "sh", "-c",
                 "cat /h/h; echo back > /h/b; grep /scratch /proc/mounts | cut -d' ' -f3,4")
    lines = out.splitlines()
    assert lines[0] == "from-host" and (host / "b").read_text() == "back\n"
    kind, flags = lines[1].split()
    assert kind == "tmpfs" and {"nosuid", "nodev", "noexec"} <= set(flags.split(",")), flags   # docker's defaults
    cli_ok(root, "volume", "rm", "keep")


def test_restart_policy_on_failure_counts_and_always_restarts(root):
    cid = cli_ok(root, "run", "-d", *NONE, "--restart", "on-failure:2", "busybox", "sh", "-c",
                 "echo run >> /runs; exit 3").strip()
    assert cli_ok(root, "wait", cid, timeout=30) == "3\n"
    wait_for(lambda: state(root, cid)["status"] == "exited" and state(root, cid)["restart_count"] == 2,
             what="two restarts")
    assert cli_ok(root, "inspect", "-f", "{{.RestartCount}}", cid) == "2\n"
    cli_ok(root, "rm", cid)
    cid = cli_ok(root, "run", "-d", *NONE, "--restart", "always", "busybox", "sh", "-c", "sleep 0.1").strip()
    wait_for(lambda: state(root, cid)["restart_count"] >= 2, what="restarts by policy")
    cli_ok(root, "stop", cid)                          # a user stop is final
    time.sleep(0.5)
    assert state(root, cid)["status"] == "exited"
    cli_ok(root, "rm", cid)


def test_security_flags(root):
    caps = lambda *flags: cli_ok(root, "run", "--rm", *NONE, *flags, "busybox", "sh", "-c",  # noqa: E731
                                 "grep CapEff /proc/self/status").split()[1]
    assert caps() == "00000000a80425fb"                              # docker's default set
    assert caps("--cap-drop", "ALL") == "0000000000000000"
    assert caps("--cap-add", "NET_ADMIN") == "00000000a80435fb"
    assert int(caps("--privileged"), 16) > 0xa80425fb
    nnp = lambda *flags: cli_ok(root, "run", "--rm", *NONE, *flags, "busybox", "sh", "-c",  # noqa: E731
                                "grep NoNewPrivs /proc/self/status").split()[1]
    assert nnp() == "0" and nnp("--security-opt", "no-new-privileges") == "1"
    ro = cli(root, "run", "--rm", *NONE, "--read-only", "busybox", "touch", "/x")
    assert ro.returncode == 1 and "Read-only file system" in ro.stderr.decode()
    masked = cli_ok(root, "run", "--rm", *NONE, "busybox", "sh", "-c",
                    "wc -c < /proc/timer_list; grep -c . /proc/keys; cat /proc/1/cgroup")
    lines = masked.splitlines()
    assert lines[:2] == ["0", "0"] and all(line.endswith(":/") for line in lines[2:]), lines   # cgroup namespace
    assert cli_ok(root, "run", "--rm", *NONE, "--hostname", "box1", "busybox", "sh", "-c",
                  "hostname; cat /etc/hostname") == "box1\nbox1\n"


def test_cp_commit_export(root, tmp_path):
    cli_ok(root, "run", *NONE, "--name", "files", "busybox", "sh", "-c",
           "mkdir /app && echo one > /app/a && rm /bin/vi")
    cli_ok(root, "cp", "files:/app/a", str(tmp_path / "a"))
    assert (tmp_path / "a").read_text() == "one\n"
    (tmp_path / "b").write_text("two\n")
    cli_ok(root, "cp", str(tmp_path / "b"), "files:/app/b")
    image_id = cli_ok(root, "commit", "-c", 'CMD ["cat", "/app/b"]', "-m", "a message", "files", "committed:1").strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    assert cli_ok(root, "run", "--rm", *NONE, "committed:1") == "two\n"
    gone = cli(root, "run", "--rm", *NONE, "committed:1", "ls", "/bin/vi")       # the deletion is a whiteout
    assert gone.returncode == 1 and "No such file" in gone.stderr.decode()
    assert "a message" in cli_ok(root, "history", "committed:1").splitlines()[1]
    cli_ok(root, "export", "-o", str(tmp_path / "fs.tar"), "files")
    with tarfile.open(tmp_path / "fs.tar") as tar:
        names = set(tar.getnames())
    assert {"app/a", "app/b", "bin/busybox"} <= names and "bin/vi" not in names
    cli_ok(root, "rm", "files")


def test_images_used_by_containers_are_kept_as_docker_keeps_them(tmp_path, busybox_tar):
    root = tmp_path / "own-root"            # this test deletes its images: a store of its own
    cli_ok(root, "import", str(busybox_tar), "busybox:latest", "--change", 'CMD ["sh"]')
    cli_ok(root, "tag", "busybox", "inuse:1")
    cid = cli_ok(root, "create", *NONE, "--name", "user1", "inuse:1", "sh", "-c", "echo still-runs").strip()
    assert cli_ok(root, "rmi", "inuse:1") == "Untagged: inuse:1\n"          # another name is left: no conflict
    refused = cli(root, "rmi", "busybox")                                   # its last name
    assert refused.returncode == 1 and "Traceback" not in refused.stderr.decode()
    assert 'conflict: unable to remove repository reference "busybox" (must force) - container ' \
           f"{cid[:12]} is using its referenced image" in refused.stderr.decode()
    image_id = json.loads(cli_ok(root, "inspect", "--type", "image", "busybox"))[0]["Id"]
    by_id = cli(root, "rmi", image_id)
    assert by_id.returncode == 1 and "(must be forced) - image is being used by stopped container" \
        in by_id.stderr.decode()
    cli_ok(root, "image", "prune", "-a", "-f")                   # prune skips images containers use
    assert image_id in cli_ok(root, "images", "-q", "--no-trunc")
    cli_ok(root, "run", "-d", *NONE, "--name", "runner", "busybox", "sleep", "1000")
    running = cli(root, "rmi", "-f", "busybox")                 # forced, under a running container: untag only
    assert running.returncode == 0 and running.stdout.decode() == "Untagged: busybox:latest\n"
    assert image_id in cli_ok(root, "images", "-q", "--no-trunc", "-a")
    cli_ok(root, "rm", "-f", "runner")
    assert cli_ok(root, "rmi", "-f", image_id) == f"Deleted: {image_id}\n"
    cli_ok(root, "image", "prune", "-a", "-f")
    assert cli_ok(root, "start", "-a", "user1") == "still-runs\n"   # its layers stayed with it
    cli_ok(root, "rm", "user1")
    cleanup_root(root)


def test_pause_unpause_rename(root):
    cli_ok(root, "run", "-d", *NONE, "--name", "ticker", "busybox", "sh", "-c",
           "while true; do date +%s%N >> /ticks; sleep 0.05; done")
    wait_for(lambda: cli(root, "exec", "ticker", "cat", "/ticks").stdout.count(b"\n") >= 2, what="ticks")
    assert cli_ok(root, "pause", "ticker") == "ticker\n"
    assert "(Paused)" in cli_ok(root, "ps", "--filter", "name=ticker")
    assert cli_ok(root, "inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "ticker") == "paused true\n"
    refused = cli(root, "exec", "ticker", "true")
    assert refused.returncode == 1 and "is paused, unpause the container before exec" in refused.stderr.decode()
    files = [p for p in (root / "containers").glob("*/upper/ticks")]
    frozen = files[0].read_text()
    time.sleep(0.4)
    assert files[0].read_text() == frozen                       # nothing ran while frozen
    assert "already paused" in cli(root, "pause", "ticker").stderr.decode()
    assert cli_ok(root, "unpause", "ticker") == "ticker\n"
    wait_for(lambda: files[0].read_text() != frozen, what="ticks again")
    assert cli_ok(root, "rename", "ticker", "clock") == ""
    assert cli_ok(root, "ps", "--format", "{{.Names}}", "--filter", "name=clock") == "clock\n"
    cli_ok(root, "pause", "clock")
    cli_ok(root, "stop", "-t", "1", "clock")                    # a paused container stops (it is thawed first)
    assert cli_ok(root, "inspect", "-f", "{{.State.Status}}", "clock") == "exited\n"
    cli_ok(root, "rm", "clock")


def test_port_lists_published_ports(root):
    import socket
    from contextlib import closing

    from test_network import own_netns

    with own_netns():
        cli_ok(root, "run", "-d", "-p", "18090:80", "-p", "127.0.0.1:18091:81/udp", "--name", "ports", "busybox",
               "sleep", "1000")
        assert cli_ok(root, "port", "ports") == "80/tcp -> 0.0.0.0:18090\n81/udp -> 127.0.0.1:18091\n"
        assert cli_ok(root, "port", "ports", "80") == "0.0.0.0:18090\n"
        missing = cli(root, "port", "ports", "99")
        assert missing.returncode == 1 and "No public port '99/tcp' published for ports" in missing.stderr.decode()
        cli_ok(root, "rm", "-f", "ports")
        with closing(socket.socket()) as sock:               # the port is free again
            sock.bind(("127.0.0.1", 18090))
        from builder.runtime.network import NetworkManager

        NetworkManager(root).sweep(set(), deep=True)
