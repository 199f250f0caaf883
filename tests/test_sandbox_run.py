"""The RUN sandbox for real (root, real namespaces) on a busybox rootfs: what a RUN sees matches
/work/shared/design/run-environment.md, writes land only in the upper dir, and nothing stays mounted
or running afterwards -- also when the parent is interrupted or killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from builder.sandbox import BindMount, RunSpec, SandboxError, TmpfsMount, run, shell_argv
from builder.sandbox.spec import HostEntry

REPO = Path(__file__).resolve().parents[1]
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> Path:
    """``bin/busybox-rootfs`` unpacked once: the bottom layer of every sandbox here."""
    work = tmp_path_factory.mktemp("sandbox-busybox")
    tar = work / "busybox.tar"
    subprocess.run([str(REPO / "bin" / "busybox-rootfs"), str(tar)], check=True)
    root = work / "rootfs"
    root.mkdir()
    subprocess.run(["tar", "-xf", str(tar), "-C", str(root)], check=True)
    return root


@pytest.fixture
def box(tmp_path, busybox_rootfs):
    """``box(command, **spec)`` runs a shell command in a fresh sandbox over busybox."""
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()

    def spec(command, lowers=(), **kw) -> RunSpec:
        kw.setdefault("env", (PATH,))
        argv = shell_argv(command) if isinstance(command, str) else command
        return RunSpec(argv=argv, lower_dirs=(*map(str, lowers), str(busybox_rootfs)), upper_dir=str(upper),
                       work_dir=str(work), **kw)

    def go(command, lowers=(), **kw):
        return run(spec(command, lowers, **kw))

    go.spec = spec
    go.upper = upper
    return go


def out(result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.stderr)
    return result.stdout.decode()


def upper_files(upper: Path) -> list[str]:
    return sorted(str(p.relative_to(upper)) for p in upper.rglob("*"))


def mounts_mentioning(path: str) -> list[str]:
    """Every mount, in any process's mount namespace, whose line mentions ``path``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/mountinfo") as fh:
                found += [f"{pid}: {line.strip()}" for line in fh if path in line]
        except OSError:
            continue
    return found


def processes_with(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if marker.encode() in fh.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def wait_until(predicate, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# --- what the process sees -------------------------------------------------------------------------
def test_sees_only_its_own_processes_and_hostname(box):
    text = out(box("hostname; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo; cat /proc/1/cmdline"))
    hostname, pids, init_cmdline = text.split("\n", 2)
    assert hostname == "buildkitsandbox"
    pids = [int(p) for p in pids.split()]
    assert pids[0] == 1 and max(pids) < 10, pids                    # no host pid is visible
    assert "builder.sandbox.init" in init_cmdline and str(os.getpid()) not in pids.__repr__()


def test_security_profile_matches_buildkit(box):
    status = dict(line.split(":\t") for line in out(box("cat /proc/self/status")).splitlines() if ":\t" in line)
    assert status["CapEff"] == status["CapPrm"] == status["CapBnd"] == "00000000a80425fb"
    assert status["CapInh"] == status["CapAmb"] == "0000000000000000"
    assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "0"
    # Seccomp, not capabilities, refuses unshare(CLONE_NEWUSER) (root needs no capability for it).
    denied = box("unshare -U true")
    assert denied.exit_code != 0 and b"Operation not permitted" in denied.stderr
    assert out(box("chroot / true && linux32 true && echo allowed")) == "allowed\n"


def test_non_root_user_keeps_only_the_bounding_set(box):
    text = out(box("id -u; grep -E '^Cap(Eff|Bnd)' /proc/self/status", user="nobody"))
    assert text.split() == ["65534", "CapEff:", "0000000000000000", "CapBnd:", "00000000a80425fb"]


def test_proc_sys_and_dev_as_buildkit_sets_them_up(box):
    text = out(box(textwrap.dedent("""\
        wc -c < /proc/keys; wc -c < /proc/timer_list; ls -A /proc/acpi | wc -l; ls -A /sys/firmware | wc -l
        echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || echo proc-sys-ro
        touch /proc/sysrq-trigger 2>/dev/null || echo sysrq-ro
        touch /sys/x 2>/dev/null || echo sys-ro
        mkdir /sys/fs/cgroup/cpu/x 2>/dev/null || echo cgroup-ro
        ls /dev | tr '\\n' ' '; echo
        for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done | tr '\\n' ' '; echo
        grep -E ' /dev(/pts|/shm|/mqueue)? ' /proc/mounts
        """)))
    lines = text.splitlines()
    assert lines[:4] == ["0", "0", "0", "0"]                               # masked paths are empty
    assert lines[4:8] == ["proc-sys-ro", "sysrq-ro", "sys-ro", "cgroup-ro"]
    assert lines[8].split() == ["fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
                                "stdout", "tty", "urandom", "zero"]
    assert lines[9].split() == ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2",
                                "pts/ptmx"]
    mounts = {line.split()[1]: line.split() for line in lines[10:]}
    assert mounts["/dev"][2] == "tmpfs" and "size=65536k" in mounts["/dev"][3]
    assert mounts["/dev/shm"][2] == "tmpfs" and "size=65536k" in mounts["/dev/shm"][3]
    assert mounts["/dev/pts"][2] == "devpts" and "ptmxmode=666" in mounts["/dev/pts"][3]
    assert "gid=5" in mounts["/dev/pts"][3]
    assert mounts["/dev/mqueue"][2] == "mqueue"
    assert out(box("echo hi > /dev/null && head -c 4 /dev/zero | wc -c")) == "4\n"


def test_host_paths_are_unreachable_and_writes_land_in_the_upper_dir(box, tmp_path, busybox_rootfs):
    canary = tmp_path / "canary"
    canary.write_text("host secret")
    result = box(f"cat {canary}; ls /; mkdir -p {tmp_path}; echo sandbox > {canary}; echo new > /tmp/new")
    assert b"host secret" not in result.stdout and b"No such file" in result.stderr
    assert result.stdout.decode().split() == sorted(os.listdir(busybox_rootfs))
    assert canary.read_text() == "host secret"
    assert (box.upper / "tmp" / "new").read_text() == "new\n"
    assert (box.upper / str(canary).lstrip("/")).read_text() == "sandbox\n"
    assert not (busybox_rootfs / "tmp" / "new").exists()


def test_hosts_and_resolv_conf_are_read_only_and_leave_nothing(box):
    result = box("cat /etc/hosts; echo x >> /etc/hosts || echo hosts-ro; echo x >> /etc/resolv.conf || echo resolv-ro;"
                 "grep -E ' /etc/(hosts|resolv.conf) ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1",
                 extra_hosts=[HostEntry("db.local", "10.1.2.3")])
    lines = out(result).splitlines()
    assert lines[:3] == ["127.0.0.1\tlocalhost buildkitsandbox", "::1\tlocalhost ip6-localhost ip6-loopback",
                         "10.1.2.3\tdb.local"]
    assert lines[3:] == ["hosts-ro", "resolv-ro", "ro", "ro"]
    assert upper_files(box.upper) == []                     # busybox has no /etc/hosts: still no trace


def test_image_hosts_file_is_covered_and_whiteout_hidden_one_is_cleaned(box, tmp_path):
    image = tmp_path / "image-layer"
    (image / "etc").mkdir(parents=True)
    (image / "etc" / "hosts").write_text("image hosts\n")
    assert "localhost buildkitsandbox" in out(box("cat /etc/hosts", lowers=[image]))
    assert (image / "etc" / "hosts").read_text() == "image hosts\n" and upper_files(box.upper) == []

    deleted = tmp_path / "deleting-layer"
    (deleted / "etc").mkdir(parents=True)
    os.mknod(deleted / "etc" / "hosts", 0o600 | 0o020000, os.makedev(0, 0))   # overlay whiteout
    text = out(box("cat /etc/hosts; touch /etc/hosts || echo ro", lowers=[deleted, image]))
    assert "localhost buildkitsandbox" in text and text.endswith("ro\n")
    assert not (box.upper / "etc" / "hosts").exists()        # the stub made through the whiteout is gone


def test_network_none_has_only_loopback_and_host_network_sees_the_host(box):
    assert out(box("ls /sys/class/net", network="none")).split() == ["lo"]
    assert out(box("cat /sys/class/net/lo/operstate; ping -c1 -W1 127.0.0.1 >/dev/null && echo ping",
                   network="none")).split()[-1] == "ping"
    assert out(box("ls /sys/class/net")).split() == sorted(os.listdir("/sys/class/net"))


# --- process, user, environment --------------------------------------------------------------------
def test_exit_codes_and_signals_pass_through(box):
    assert box("exit 7").exit_code == 7
    killed = box("kill -KILL $$")
    assert (killed.exit_code, killed.signal, killed.ok) == (137, 9, False)
    assert box("kill -TERM $$").signal == signal.SIGTERM


def test_failing_command_output_is_captured_and_streamed(box):
    result = box("echo building; echo 'error: no such target' >&2; exit 2")
    assert (result.exit_code, result.stdout, result.stderr) == (2, b"building\n", b"error: no such target\n")
    chunks = []
    streamed = run(box.spec("echo one; sleep 0.1; echo two >&2"), on_output=lambda name, data: chunks.append(
        (name, data)))
    assert streamed.ok and (streamed.stdout, streamed.stderr) == (b"", b"")
    assert chunks == [("stdout", b"one\n"), ("stderr", b"two\n")]
    merged = box("echo a; echo b >&2", stderr="stdout")
    assert merged.stdout == b"a\nb\n"
    piped = run(box.spec("tr a-z A-Z", stdin="pipe"), stdin_data=b"hello")
    assert piped.stdout == b"HELLO"


@pytest.mark.parametrize("user, expected", [
    ("", "0 0 0 /root"),
    ("nobody", "65534 65534 65534 /nonexistent"),
    ("1000", "1000 0 0 /"),
    ("1000:1000", "1000 1000 1000 /"),
    ("nobody:root", "65534 0 0 /nonexistent"),
])
def test_user_resolution(box, user, expected):
    assert out(box('echo $(id -u) $(id -g) $(id -G) "$HOME"', user=user)).strip() == expected


def test_supplementary_groups_and_missing_user(box, tmp_path):
    layer = tmp_path / "groups-layer"
    (layer / "etc").mkdir(parents=True)
    (layer / "etc" / "group").write_text("root:x:0:\nwheel:x:10:root\nnogroup:x:65534:\n")
    assert out(box("id -G", lowers=[layer], user="root")).split() == ["0", "10"]
    with pytest.raises(SandboxError, match=r"^unable to find user ghost: no matching entries in passwd file$"):
        box("true", user="ghost")
    assert upper_files(box.upper) == [] and mounts_mentioning(str(box.upper)) == []


def test_workdir_is_created_for_the_user_and_env_applies(box):
    result = box('pwd; echo "$GREETING"; env | sort', cwd="/app/src", user="nobody",
                 env=(PATH, "GREETING=hello world", "GREETING=hi"))
    lines = out(result).splitlines()
    assert lines[:2] == ["/app/src", "hi"]
    assert "HOME=/nonexistent" in lines
    app = box.upper / "app"
    assert (app.stat().st_uid, (app / "src").stat().st_uid, (app / "src").stat().st_gid) == (65534, 65534, 65534)
    assert oct((app / "src").stat().st_mode & 0o7777) == "0o755"


def test_command_not_found_errors(box):
    with pytest.raises(SandboxError, match=r'exec: "no-such-tool": executable file not found in \$PATH'):
        box(["no-such-tool"])
    with pytest.raises(SandboxError, match=r'exec: "/bin/nope": stat /bin/nope: no such file or directory'):
        box(["/bin/nope"])


def test_orphans_are_reaped_and_background_processes_do_not_hold_the_run(box):
    text = out(box("(sleep 0.1 &); sleep 0.4; ps -o stat | grep -c Z; sleep 987001 & echo started"))
    assert text.split() == ["0", "started"]
    assert processes_with("987001") == []


def test_extra_bind_and_tmpfs_mounts(box, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "input").write_text("in\n")
    text = out(box("cat /ro/input; touch /ro/x 2>/dev/null || echo ro-refused; echo out > /rw/output;"
                   "echo t > /scratch/t; grep ' /scratch ' /proc/mounts | cut -d' ' -f3",
                   binds=[BindMount(str(shared), "/ro"), BindMount(str(shared), "/rw", readonly=False)],
                   tmpfs=[TmpfsMount("/scratch", size=1 << 20)]))
    assert text.split() == ["in", "ro-refused", "tmpfs"]
    assert (shared / "output").read_text() == "out\n"
    assert upper_files(box.upper) == []


def test_runs_from_several_threads_at_once(busybox_rootfs, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    def one(i):
        upper, work = tmp_path / f"u{i}", tmp_path / f"w{i}"
        upper.mkdir()
        work.mkdir()
        spec = RunSpec(argv=shell_argv(f"echo {i} > /mine; sleep 0.2; cat /mine; hostname"),
                       lower_dirs=[str(busybox_rootfs)], upper_dir=str(upper), work_dir=str(work), env=[PATH],
                       hostname=f"box{i}")
        return run(spec).stdout.decode().split()

    with ThreadPoolExecutor(max_workers=3) as pool:
        assert list(pool.map(one, range(3))) == [[str(i), f"box{i}"] for i in range(3)]


def test_many_lower_layers_mount(box, tmp_path):
    layers = []
    for i in range(130):
        layer = tmp_path / f"layer-with-a-rather-long-directory-name-{i:03d}" / "fs"
        (layer / "layers").mkdir(parents=True)
        (layer / "layers" / f"{i:03d}").write_text("")
        (layer / "order").write_text(f"{i}\n")
        layers.append(layer)
    assert sum(len(str(p)) + 1 for p in layers) > 4096                   # needs the short names
    text = out(box("ls /layers | wc -l; cat /order; grep ' / ' /proc/mounts | cut -d' ' -f3", lowers=layers))
    assert text.split() == ["130", "0", "overlay"]


# --- cleanup ---------------------------------------------------------------------------------------
def _sandbox_init_pid() -> int:
    """The host pid of a running sandbox's pid 1 (its innermost NSpid is 1)."""
    for pid in processes_with("builder.sandbox.init"):
        with open(f"/proc/{pid}/status") as fh:
            nspid = next(line.split()[1:] for line in fh if line.startswith("NSpid:"))
        if len(nspid) == 2 and nspid[1] == "1":
            return int(pid)
    raise AssertionError("no sandbox init found")


def test_killed_command_or_killed_sandbox_is_reported_and_cleaned_up(box):
    def kill_command(name, data):
        for pid in processes_with("987004"):          # the shell (its -c text names the marker)
            os.kill(int(pid), signal.SIGKILL)

    result = run(box.spec("echo go; sleep 987004; echo never"), on_output=kill_command)
    assert (result.signal, result.exit_code, result.stdout) == (9, 137, b"")
    assert processes_with("987004") == []

    def kill_init(name, data):
        os.kill(_sandbox_init_pid(), signal.SIGKILL)

    with pytest.raises(SandboxError, match="the sandbox was killed by signal 9"):
        run(box.spec("echo go; exec sleep 987005"), on_output=kill_init)
    assert processes_with("987005") == [] and mounts_mentioning(str(box.upper)) == []
    assert not [p for p in os.listdir(box.upper.parent) if p.startswith(".pybuild-run-")]


def test_nothing_stays_mounted_after_a_run(box):
    assert out(box("grep -c overlay /proc/mounts")) == "1\n"
    assert mounts_mentioning(str(box.upper)) == []
    assert not [p for p in os.listdir(box.upper.parent) if p.startswith(".pybuild-run-")]


_PARENT = textwrap.dedent("""\
    import sys
    from builder.sandbox import RunSpec, run, shell_argv
    spec = RunSpec(argv=shell_argv("echo ready; exec sleep 987002"), lower_dirs=[sys.argv[1]],
                   upper_dir=sys.argv[2], work_dir=sys.argv[3], env=[{path!r}])
    def show(name, data):
        sys.stdout.write(data.decode()); sys.stdout.flush()
    try:
        run(spec, on_output=show)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        raise SystemExit(130)
    """).format(path=PATH)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_or_killed_parent_leaves_no_mount_or_process(busybox_rootfs, tmp_path, how):
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(busybox_rootfs), str(upper), str(work)],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert parent.stdout.readline() == "ready\n"
    assert processes_with("987002") and mounts_mentioning(str(upper))
    parent.send_signal(how)
    rest = parent.communicate(timeout=20)[0]
    if how == signal.SIGINT:
        assert (parent.returncode, rest) == (130, "interrupted\n")
        assert not [p for p in os.listdir(tmp_path) if p.startswith(".pybuild-run-")]
    assert wait_until(lambda: not processes_with("987002")), processes_with("987002")
    assert wait_until(lambda: not mounts_mentioning(str(upper))), mounts_mentioning(str(upper))
    assert upper.is_dir()
