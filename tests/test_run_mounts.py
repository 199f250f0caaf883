"""RUN --mount in real builds: cache mounts across builds (the cachemount anchor), sharing modes and
ids that cannot escape the store, tmpfs, binds from the context (ignored files invisible, writes
discarded, content in the cache key) and from a stage, ssh agent forwarding with a real ssh-agent,
--network/--security entitlements, --add-host, --ulimit, --shm-size -- and nothing of any mount left
in a layer."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from image_fixtures import fails, ok, pb
from test_build_engine import build, image_tree, new_store, saved_images, step_states, store, write_context  # noqa: F401
from test_build_engine_run import pybuild_mounts

ANCHOR = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "dockerfiles" / "cachemount"


def run_in(root: Path, image: str, *command: str) -> str:
    return ok(pb(root, "run", "--rm", "--network", "none", image, *command))


def tree_of(root: Path, image: str, tmp_path: Path) -> dict:
    return image_tree(saved_images(root, [image], tmp_path / f"{image.replace(':', '_')}.tar")[image])


def failed(result) -> str:
    message = result.stderr.decode(errors="replace")
    assert result.returncode == 1 and "Traceback" not in message, message
    return message


# -- cache mounts ---------------------------------------------------------------------------------------


def test_cachemount_anchor_count_goes_up_and_cache_is_not_in_the_image(tmp_path, busybox_tar):
    root = new_store(tmp_path / "root", busybox_tar)
    ctx = tmp_path / "ctx"
    shutil.copytree(ANCHOR, ctx)
    os.chmod(ctx, 0o755)
    dockerfile = (ctx / "Dockerfile").read_text().replace("localhost:5000/busybox:latest", "busybox")
    os.chmod(ctx / "Dockerfile", 0o644)
    (ctx / "Dockerfile").write_text(dockerfile)
    ok(build(root, ctx, "-t", "cm:1"))
    assert run_in(root, "cm:1") == "cache mount has seen 1 runs\ncachemount input v1\n"
    # unchanged: the RUN is cached (BuildKit does not look into cache mounts)
    again = build(root, ctx, "-t", "cm:1", "--progress", "plain")
    assert "DONE" not in again.stderr.decode() or "CACHED" in again.stderr.decode()
    os.chmod(ctx / "input.txt", 0o644)
    (ctx / "input.txt").write_text("cachemount input v2\n")
    ok(build(root, ctx, "-t", "cm:2"))
    assert run_in(root, "cm:2") == "cache mount has seen 2 runs\ncachemount input v2\n"
    tree = tree_of(root, "cm:2", tmp_path)
    assert not any(path.startswith("var/cache") for path in tree), sorted(tree)
    assert [p for p in os.listdir(root / "cachemounts")]            # kept in the store
    assert pybuild_mounts(root) == []


def test_cache_mount_ids_sharing_and_ownership(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", """\
FROM busybox
RUN --mount=type=cache,id=shared-id,target=/a echo one > /a/f
RUN --mount=type=cache,id=shared-id,target=/b cat /b/f > /seen-by-b
RUN --mount=type=cache,id=../../../../../etc,target=/c echo escaped > /c/probe; ls /c > /c-list
RUN --mount=type=cache,target=/owned,uid=1000,gid=1000,mode=0700 stat -c '%a %u %g' /owned > /owned.stat
RUN --mount=type=cache,target=work,sharing=private ls -d /work > /work.path
""")
    ok(build(store, ctx, "-t", "ids:1"))
    assert run_in(store, "ids:1", "cat", "/seen-by-b") == "one\n"
    assert run_in(store, "ids:1", "cat", "/owned.stat") == "700 1000 1000\n"
    assert run_in(store, "ids:1", "cat", "/work.path") == "/work\n"            # relative to WORKDIR (/)
    assert not Path("/etc/probe").exists()
    probes = list((store / "cachemounts").glob("*/*/probe"))
    assert len(probes) == 1 and probes[0].read_text() == "escaped\n"
    for name in ("a", "b", "c", "owned", "work"):
        assert ok(pb(store, "run", "--rm", "--network", "none", "ids:1", "sh", "-c", f"test -e /{name} && echo there || echo gone")) \
            == "gone\n"


def _start_build(root: Path, ctx: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    import sys

    from helpers import REPO
    from image_fixtures import _BYTECODE

    return subprocess.Popen([sys.executable, "-m", "builder.cli", "--root", str(root), "build", "--progress", "plain",
                             *args, str(ctx)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**(env or os.environ), **_BYTECODE})


def test_locked_waits_for_the_holder_and_private_gets_its_own_dir(tmp_path, store):
    from cache import Store

    cache = Store(store).cache_mounts
    ctx = write_context(tmp_path / "locked", "FROM busybox\nRUN --mount=type=cache,id=serial,target=/c,sharing=locked "
                                             "cat /c/marker > /seen\n")
    with cache.acquire("serial", "locked") as held:
        proc = _start_build(store, ctx, "-t", "locked:1")
        seen = b""
        while b"RUN --mount" not in seen:            # the step started: it is now waiting for the cache
            line = proc.stderr.readline()
            assert line, proc.communicate()
            seen += line
        Path(held, "marker").write_text("written while the other user held it\n")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert run_in(store, "locked:1", "cat", "/seen") == "written while the other user held it\n"

    ctx = write_context(tmp_path / "private", "FROM busybox\nRUN --mount=type=cache,id=priv,target=/c,sharing=private "
                                              "ls /c > /private.ls\n")
    with cache.acquire("priv", "private") as held:
        Path(held, "mine").write_text("")
        ok(build(store, ctx, "-t", "private:1"))              # the held directory is not shared: a new one
        assert run_in(store, "private:1", "cat", "/private.ls") == ""
    ok(build(store, ctx, "-t", "private:2", "--no-cache"))     # free again: the first directory is reused
    assert run_in(store, "private:2", "cat", "/private.ls") == "mine\n"


# -- tmpfs -------------------------------------------------------------------------------------------------


def test_tmpfs_mount_is_empty_sized_and_not_in_the_layer(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", """\
FROM busybox
RUN --mount=type=tmpfs,target=/scratch/t,size=2m \\
    echo data > /scratch/t/f; df -k /scratch/t | tail -1 | tr -s ' ' | cut -d' ' -f2 > /size; echo kept > /kept
""")
    ok(build(store, ctx, "-t", "tmpfs:1"))
    assert run_in(store, "tmpfs:1", "cat", "/size") == "2048\n"
    tree = tree_of(store, "tmpfs:1", tmp_path)
    assert "kept" in tree and not any(p.startswith("scratch") for p in tree), sorted(tree)


# -- bind mounts ------------------------------------------------------------------------------------------


def test_bind_from_context_hides_ignored_files_and_discards_writes(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", """\
FROM busybox
WORKDIR /w
RUN --mount=type=bind,target=src ls -a src | sort > /listing; cat src/sub/keep > /keep; \\
    (echo x > src/new) 2>/dev/null || echo read-only > /ro
RUN --mount=type=bind,source=sub,target=/s,rw echo changed > /s/keep; echo new > /s/new; cat /s/keep > /rw-saw
""", {".env": "PASSWORD=1\n", ".dockerignore": ".env\nsub/ignored\n", "sub/keep": "keep\n",
      "sub/ignored": "no\n", "a.txt": "a\n"})
    ok(build(store, ctx, "-t", "bind:1"))
    listing = run_in(store, "bind:1", "cat", "/listing").split()
    assert listing == sorted([".", "..", ".dockerignore", "Dockerfile", "a.txt", "sub"]), listing
    assert run_in(store, "bind:1", "cat", "/keep") == "keep\n"
    assert run_in(store, "bind:1", "cat", "/ro") == "read-only\n"
    assert run_in(store, "bind:1", "cat", "/rw-saw") == "changed\n"
    assert (ctx / "sub" / "keep").read_text() == "keep\n" and not (ctx / "sub" / "new").exists()
    tree = tree_of(store, "bind:1", tmp_path)
    assert "s" not in tree and not any(p.startswith(("s/", "w/src")) for p in tree), sorted(tree)


def test_bind_source_content_is_in_the_cache_key_mtime_is_not(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nRUN --mount=type=bind,source=data,target=/d cat /d/* > /all\n",
                        {"data/one": "1\n", "other": "o\n"})
    ok(build(store, ctx, "-t", "key:1"))
    os.utime(ctx / "data" / "one", (1, 1))
    (ctx / "other").write_text("changed, but not mounted\n")
    states = step_states(build(store, ctx, "--progress", "plain").stderr.decode())
    assert list(states.values()) == ["CACHED"], states
    (ctx / "data" / "one").write_text("2\n")
    states = step_states(build(store, ctx, "-t", "key:2", "--progress", "plain").stderr.decode())
    assert list(states.values()) == ["DONE"], states
    assert run_in(store, "key:2", "cat", "/all") == "2\n"


def test_bind_from_a_stage_and_missing_source(tmp_path, store):
    ctx = write_context(tmp_path / "ctx", """\
FROM busybox AS builder
RUN mkdir /out && echo built > /out/artifact && ln -s artifact /out/link
FROM busybox
RUN --mount=type=bind,from=builder,source=/out,target=/in cat /in/artifact /in/link > /got; ls /in > /ls
""")
    ok(build(store, ctx, "-t", "fromstage:1"))
    assert run_in(store, "fromstage:1", "cat", "/got") == "built\nbuilt\n"
    assert run_in(store, "fromstage:1", "cat", "/ls").split() == ["artifact", "link"]
    assert "in" not in tree_of(store, "fromstage:1", tmp_path)
    bad = write_context(tmp_path / "bad", "FROM busybox\nRUN --mount=type=bind,source=nope,target=/x true\n")
    message = failed(build(store, bad))
    assert 'Dockerfile:2' in message and '"/nope" not found' in message, message


# -- ssh ---------------------------------------------------------------------------------------------------


@pytest.fixture
def agent(tmp_path):
    """A real ssh-agent holding one fresh ed25519 key."""
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        key = tmp_path / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pybuild-test-key", "-f", str(key)],
                       check=True)
        for _ in range(100):      # the socket exists once bound; the agent listens a moment later
            added = subprocess.run(["ssh-add", str(key)], env=dict(os.environ, SSH_AUTH_SOCK=str(sock)),
                                   capture_output=True)
            if added.returncode == 0:
                break
            time.sleep(0.05)
        assert added.returncode == 0, added
        fingerprint = subprocess.run(["ssh-keygen", "-lf", str(key)], check=True, capture_output=True,
                                     text=True).stdout.split()[1]
        yield sock, fingerprint
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()


def _host_tool(ctx: Path, name: str) -> None:
    """Copy the host's ``name`` and its shared libraries (and loader) into ``ctx/tools``: a real ssh-add
    to run inside busybox through the bind mount."""
    tools = ctx / "tools"
    tools.mkdir(parents=True, exist_ok=True)
    binary = shutil.which(name)
    shutil.copy(binary, tools / name)
    for line in subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout.splitlines():
        match = re.search(r"(/\S+)", line)
        if match:
            shutil.copy(match.group(1), tools / os.path.basename(match.group(1)))


def test_ssh_agent_forwarding_lists_the_key(tmp_path, store, agent):
    sock, fingerprint = agent
    ctx = write_context(tmp_path / "ctx", """\
FROM busybox
RUN --mount=type=bind,source=tools,target=/t --mount=type=ssh \\
    /t/ld-linux-x86-64.so.2 --library-path /t /t/ssh-add -l > /keys; echo "$SSH_AUTH_SOCK" > /sock; \\
    stat -c '%a %u' "$SSH_AUTH_SOCK" > /sock.stat
RUN --mount=type=ssh,id=other,target=/agent,uid=1000,mode=0660 stat -c '%a %u' /agent > /other.stat || true
""")
    _host_tool(ctx, "ssh-add")
    if not (ctx / "tools" / "ld-linux-x86-64.so.2").exists():
        pytest.skip("needs the x86-64 loader")       # the machines here are x86-64
    env = dict(os.environ, SSH_AUTH_SOCK=str(sock))
    ok(build(store, ctx, "-t", "ssh:1", "--ssh", "default", "--ssh", f"other={sock}", env=env))
    keys = run_in(store, "ssh:1", "cat", "/keys")
    assert fingerprint in keys and "pybuild-test-key" in keys, keys
    assert run_in(store, "ssh:1", "cat", "/sock") == "/run/buildkit/ssh_agent.0\n"
    assert run_in(store, "ssh:1", "cat", "/sock.stat") == "600 0\n"
    assert run_in(store, "ssh:1", "cat", "/other.stat") == "660 1000\n"
    tree = tree_of(store, "ssh:1", tmp_path)
    assert not {"t", "agent", "run/buildkit"} & set(tree) and not any(p.startswith("t/") for p in tree), sorted(tree)
    # required and not forwarded: BuildKit's error; --ssh without an agent: buildx's
    need = write_context(tmp_path / "need", "FROM busybox\nRUN --mount=type=ssh,required true\n")
    assert 'no SSH key "default" forwarded' in failed(build(store, need))
    no_agent = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    assert "SSH_AUTH_SOCK" in fails(build(store, need, "--ssh", "default", env=no_agent))


# -- RUN options -------------------------------------------------------------------------------------------


def test_network_and_security_need_entitlements(tmp_path, store):
    host = write_context(tmp_path / "host", "FROM busybox\nRUN --network=host true\n")
    assert "network.host is not allowed" in failed(build(store, host))
    ok(build(store, host, "--allow", "network.host"))
    none = write_context(tmp_path / "none", "FROM busybox\nRUN --network=none ls /sys/class/net > /ifaces\n")
    ok(build(store, none, "-t", "net:1"))
    assert run_in(store, "net:1", "cat", "/ifaces").split() == ["lo"]
    insecure = write_context(tmp_path / "insecure", "FROM busybox\nRUN --security=insecure "
                                                    "grep CapEff /proc/self/status > /caps\n")
    assert "security.insecure is not allowed" in failed(build(store, insecure))
    ok(build(store, insecure, "-t", "insecure:1", "--allow", "security.insecure"))
    assert run_in(store, "insecure:1", "cat", "/caps").split()[1] != "00000000a80425fb"
    assert "invalid entitlement" in fails(build(store, insecure, "--allow", "everything"))


def test_add_host_ulimit_and_shm_size(tmp_path, store):
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nRUN grep myhost /etc/hosts > /hosts; ulimit -n > /nofile; "
                                          "df -k /dev/shm | tail -1 | tr -s ' ' | cut -d' ' -f2 > /shm\n")
    ok(build(store, ctx, "-t", "opts:1", "--add-host", "myhost:10.0.0.7", "--ulimit", "nofile=512:1024",
             "--shm-size", "32m"))
    assert run_in(store, "opts:1", "cat", "/hosts").split() == ["10.0.0.7", "myhost"]
    assert run_in(store, "opts:1", "cat", "/nofile") == "512\n"
    assert run_in(store, "opts:1", "cat", "/shm") == "32768\n"
    # the options are part of the RUN's key: a different host runs it again
    states = step_states(build(store, ctx, "--progress", "plain", "--add-host", "myhost:10.0.0.8",
                               "--ulimit", "nofile=512:1024", "--shm-size", "32m").stderr.decode())
    assert list(states.values()) == ["DONE"]
    if hard != resource.RLIM_INFINITY:
        message = fails(build(store, ctx, "--ulimit", f"nofile={hard}:{hard + 1}"))
        assert "above this process's hard limit" in message and "CAP_SYS_RESOURCE" in message
    assert "invalid ulimit type" in fails(build(store, ctx, "--ulimit", "bogus=1"))
    assert "invalid IP address" in fails(build(store, ctx, "--add-host", "h:not-an-ip"))


# -- interrupted builds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_build_leaves_no_mount_temp_or_secret(tmp_path, busybox_tar, agent, how):
    import uuid

    from test_build_engine_run import _wait_for, after_reopen, processes_with

    from test_secrets import find_secret

    root = new_store(tmp_path / "root", busybox_tar)
    token = uuid.uuid4().hex
    ctx = write_context(tmp_path / "ctx", f"""\
FROM busybox AS other
RUN echo other > /o
FROM busybox
RUN --mount=type=bind,target=/ctx --mount=type=bind,target=/rw,rw --mount=type=bind,from=other,target=/other \\
    --mount=type=cache,target=/cache --mount=type=tmpfs,target=/tmp/t --mount=type=secret,id=s,required \\
    --mount=type=ssh,required echo step-is-running; sleep 30; echo {token}
""", {"file": "x\n"})
    secret = tmp_path / "secret"
    secret.write_text(f"secret-{token}")
    env = dict(os.environ, SSH_AUTH_SOCK=str(agent[0]), PYBUILD_NO_MEMO="1")
    proc = _start_build(root, ctx, "--secret", f"id=s,src={secret}", "--ssh", "default", env=env)
    try:
        _wait_for(proc, b"step-is-running\n")
        proc.send_signal(how)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 10
    while (processes_with(token) or pybuild_mounts(root)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(token) == [] and pybuild_mounts(root) == []
    assert after_reopen(root) == []                       # nothing left in tmp/ (swept if the build was killed)
    assert find_secret([root], f"secret-{token}".encode()) == []
