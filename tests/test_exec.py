"""``exec`` for real: a container-like sandbox runs ``sleep`` in a thread, and ``enter.run_in`` joins
it -- same hostname, pid namespace, filesystem, cgroups; user, env, cwd, security profile, tty, exit
codes and docker's error texts -- and nothing is left running or mounted afterwards."""

from __future__ import annotations

import fcntl
import os
import random
import signal
import struct
import termios
import threading
import time

import pytest
from runtime_helpers import find_process
from test_sandbox_run import busybox_rootfs, mounts_mentioning, wait_until  # noqa: F401  (fixture)

from builder.sandbox import RunSpec, SandboxError, run
from builder.sandbox.enter import (
    EnterSpec,
    ExecError,
    ExecTimeout,
    NotRunningError,
    cgroup_procs_files,
    exec_failure,
    process_start_time,
    run_in,
)
from builder.sandbox.spec import Ulimit
from builder.sandbox.terminal import TerminalRelay

PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        data = fh.read()
    return int(data[data.rindex(b")") + 2:].split()[1])


class Container:
    """A sandbox running ``sleep`` in a thread: ``pid`` is its command, ``pid1`` its pid 1."""

    def __init__(self, rootfs, tmp_path):
        self.seconds = str(random.randint(100000, 999999))
        self.upper, work = tmp_path / "upper", tmp_path / "work"
        self.upper.mkdir()
        work.mkdir()
        self.spec = RunSpec(argv=("sleep", self.seconds), lower_dirs=(str(rootfs),), upper_dir=str(self.upper),
                            work_dir=str(work), env=(PATH,), hostname="ctr-host", network="none",
                            ulimits=(Ulimit("nofile", 4321, 4321),))
        self.result = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        marker = b"sleep\0" + self.seconds.encode() + b"\0"
        assert wait_until(lambda: find_process(marker) is not None), "the container did not start"
        self.pid = find_process(marker)
        self.pid1 = _ppid(self.pid)

    def _run(self):
        self.result = run(self.spec)

    def stop(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def container(busybox_rootfs, tmp_path):  # noqa: F811
    ctr = Container(busybox_rootfs, tmp_path)
    yield ctr
    ctr.stop()
    assert mounts_mentioning(str(tmp_path)) == []
    assert find_process(b"sleep\0" + ctr.seconds.encode() + b"\0") is None


def ex(container, command, timeout=None, cancel=None, **kw):
    kw.setdefault("env", (PATH,))
    argv = ("sh", "-c", command) if isinstance(command, str) else command
    return run_in(container.pid1, EnterSpec(argv=argv, **kw), timeout=timeout, cancel=cancel)


def out(result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result.stdout.decode()


def test_joins_the_containers_namespaces(container):
    text = out(ex(container, "hostname; cat /proc/1/cmdline; echo; ps -o pid,args"))
    hostname, cmdline, ps = text.split("\n", 2)
    assert hostname == "ctr-host"
    with open(f"/proc/{container.pid1}/cmdline", "rb") as fh:
        assert cmdline.encode() == fh.read()
    assert f"sleep {container.seconds}" in ps                    # the container's processes, by its pids
    pids = [int(line.split()[0]) for line in ps.splitlines()[1:] if line.split()]
    assert 1 in pids and max(pids) < 20
    for ns in ("ipc", "uts", "net", "pid", "mnt"):
        assert os.readlink(f"/proc/{container.pid1}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
    net = out(ex(container, "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '"))
    assert net.split() == ["lo"]                                  # the container's network namespace


def test_files_are_shared_with_the_running_container(container):
    out(ex(container, "echo hello > /tmp/from-exec"))
    assert (container.upper / "tmp" / "from-exec").read_text() == "hello\n"
    assert out(ex(container, "cat /tmp/from-exec")) == "hello\n"
    assert "from-exec" in out(ex(container, ("ls", "/tmp"))).split()


def test_exit_codes_and_signals(container):
    assert ex(container, "exit 3").exit_code == 3
    result = ex(container, "kill -TERM $$")
    assert (result.exit_code, result.signal) == (143, signal.SIGTERM)
    assert out(ex(container, "true")) == ""


def test_user_env_cwd(container):
    assert out(ex(container, "id", user="nobody")) == "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"
    assert out(ex(container, "id -u; id -g", user="1234:55")) == "1234\n55\n"
    env = out(ex(container, "env | sort", env=(PATH, "FOO=bar")))
    assert "FOO=bar\n" in env and "HOME=/root\n" in env
    assert out(ex(container, "pwd", cwd="/etc")) == "/etc\n"
    assert out(ex(container, "echo $HOME", user="nobody")) == "/nonexistent\n"


def test_security_profile(container):
    status = dict(line.split(":\t") for line in out(ex(container, "cat /proc/self/status")).splitlines()
                  if ":\t" in line)
    assert status["CapEff"] == status["CapPrm"] == status["CapBnd"] == "00000000a80425fb"
    assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "0"
    nnp = out(ex(container, "grep NoNewPrivs /proc/self/status", no_new_privs=True))
    assert nnp.split() == ["NoNewPrivs:", "1"]
    with pytest.raises(ExecError) as caught:       # docker: no capability beyond the container's bounding set
        ex(container, "true", privileged=True)
    assert caught.value.exit_code == 126 and caught.value.message == (
        "OCI runtime exec failed: exec failed: unable to start container process: unable to apply caps: "
        "operation not permitted: unknown")
    fewer = dict(line.split(":\t") for line in out(ex(container, "cat /proc/self/status", caps=0x20, seccomp=False))
                 .splitlines() if ":\t" in line)
    assert fewer["CapEff"] == fewer["CapBnd"] == "0000000000000020" and fewer["Seccomp"] == "0"
    assert out(ex(container, "id -u; grep CapBnd /proc/self/status", user="nobody", caps=0)).split() == [
        "65534", "CapBnd:", "0000000000000000"]                          # --cap-drop ALL: the user switch works
    assert ex(container, "unshare -U true").exit_code != 0


def test_stdin_and_stderr(container):
    result = run_in(container.pid1, EnterSpec(argv=("sh", "-c", "cat; echo err >&2"), env=(PATH,), stdin="pipe"),
                    stdin_data=b"from stdin\n")
    assert (result.stdout, result.stderr) == (b"from stdin\n", b"err\n")
    chunks = []
    result = run_in(container.pid1, EnterSpec(argv=("echo", "streamed"), env=(PATH,)),
                    on_output=lambda name, data: chunks.append((name, data)))
    assert result.exit_code == 0 and chunks == [("stdout", b"streamed\n")]


def test_missing_command_is_docker_s_error(container):
    with pytest.raises(ExecError) as caught:
        ex(container, ("nosuch-cmd",))
    assert caught.value.exit_code == 127
    assert caught.value.message == ('OCI runtime exec failed: exec failed: unable to start container process: exec: '
                                    '"nosuch-cmd": executable file not found in $PATH: unknown')
    with pytest.raises(ExecError) as caught:
        ex(container, ("/etc/passwd",))
    assert caught.value.exit_code == 126 and "permission denied" in caught.value.message
    with pytest.raises(ExecError) as caught:                # docker 20.10: the lookup's own text, exit 126
        ex(container, "true", user="nosuch")
    assert caught.value.message == "unable to find user nosuch: no matching entries in passwd file"
    assert caught.value.exit_code == 126
    with pytest.raises(ExecError) as caught:
        ex(container, "true", cwd="/no/such/dir")
    assert caught.value.message == ('OCI runtime exec failed: exec failed: unable to start container process: '
                                    'chdir to cwd ("/no/such/dir") set in config.json failed: no such file or '
                                    'directory: unknown')
    with pytest.raises(ExecError, match="^OCI runtime exec failed: exec failed: Cwd must be an absolute path: "
                                        "unknown$"):
        ex(container, "true", cwd="relative")
    assert out(ex(container, "pwd", cwd="/tmp", user="nobody")) == "/tmp\n"


def test_tty_session(container):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    try:
        with TerminalRelay(False, in_fd=slave, out_fd=slave) as relay:
            result = run_in(container.pid1, EnterSpec(argv=("sh", "-c", "tty; stty size; exit 5"), env=(PATH,),
                                                      tty=True), on_console=relay.attach)
        assert result.exit_code == 5
        data = b""
        while b"101" not in data:
            data += os.read(master, 4096)
    finally:
        os.close(master)
        os.close(slave)
    lines = data.decode().replace("\r", "").splitlines()
    assert lines[0].startswith("/dev/pts/") and lines[1] == "33 101"


def test_joins_the_cgroups_of_the_target(container):
    procs = cgroup_procs_files(container.pid1)
    assert procs and all(p.startswith("/sys/fs/cgroup/") and p.endswith("/cgroup.procs") for p in procs)
    with open(f"/proc/{container.pid1}/cgroup") as fh:
        theirs = sorted(fh.read().splitlines())
    assert sorted(out(ex(container, "cat /proc/self/cgroup")).splitlines()) == theirs


def test_a_gone_or_reused_pid_is_refused(container):
    start = process_start_time(container.pid1)
    assert out(run_in(container.pid1, EnterSpec(argv=("true",), env=(PATH,)), start_time=start)) == ""
    with pytest.raises(NotRunningError, match="is not running"):
        run_in(container.pid1, EnterSpec(argv=("true",), env=(PATH,)), start_time=start + 1)
    container.stop()
    with pytest.raises(NotRunningError, match=f"process {container.pid1} is not running"):
        run_in(container.pid1, EnterSpec(argv=("true",), env=(PATH,)))


def test_errors_are_worded_as_docker_s():
    assert exec_failure('exec: "x": permission denied').exit_code == 126
    dir_error = exec_failure('exec: "/bin": is a directory')
    assert dir_error.exit_code == 126 and dir_error.message.endswith(": unknown: permission denied")
    assert exec_failure("something else").exit_code == 126
    with pytest.raises(Exception, match="no command"):
        EnterSpec(argv=())


def test_interrupted_exec_leaves_nothing_running(container):
    marker = str(random.randint(100000, 999999))

    def on_output(name, data):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_in(container.pid1, EnterSpec(argv=("sh", "-c", f"echo go; exec sleep {marker}"), env=(PATH,)),
               on_output=on_output)
    assert wait_until(lambda: find_process(f"sleep\0{marker}\0".encode()) is None)


def test_exec_gets_the_containers_limits(container):
    assert out(ex(container, "ulimit -n")) == "4321\n"


def test_detached_exec_outlives_the_call(container):
    marker = str(random.randint(100000, 999999))
    result = ex(container, f"echo started > /tmp/detached; exec sleep {marker}", detach=True)
    assert result.exit_code == 0 and result.stdout == b""
    assert wait_until(lambda: find_process(f"sleep\0{marker}\0".encode()) is not None)
    assert (container.upper / "tmp" / "detached").read_text() == "started\n"
    with pytest.raises(ExecError, match="executable file not found"):
        ex(container, ("nosuch",), detach=True)
    with pytest.raises(SandboxError, match="cannot have a terminal"):
        EnterSpec(argv=("sh",), tty=True, detach=True)


def test_cgroup_files_follow_each_hierarchy_s_mount(tmp_path):
    """A v1 mount may show a subtree (its root field): paths are taken relative to it; cgroup2 is the
    ``0::`` line; name=systemd and co-mounted controllers match their mount's options."""
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    (proc / "self").mkdir()
    (proc / "42" / "cgroup").write_text(
        "9:name=systemd:/\n5:cpu,cpuacct:/pybuild/c1\n4:memory:/process_api/ab/pybuild/c1\n0::/pybuild/c1\n")
    (proc / "self" / "mountinfo").write_text(
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
        "35 31 0:32 /process_api/ab /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
        "50 23 0:40 / /other/cgroup rw - cgroup cgroup rw,pids\n")
    assert cgroup_procs_files(42, proc=str(proc)) == (
        "/sys/fs/cgroup/systemd/cgroup.procs", "/sys/fs/cgroup/cpu,cpuacct/pybuild/c1/cgroup.procs",
        "/sys/fs/cgroup/memory/pybuild/c1/cgroup.procs", "/sys/fs/cgroup/unified/pybuild/c1/cgroup.procs")


def test_timeout_kills_the_command_and_its_children(container):
    marker = str(random.randint(100000, 999999))
    with pytest.raises(ExecTimeout, match="did not finish within 0.5s"):
        ex(container, f"sleep {marker} & sleep {marker}; echo never", timeout=0.5)
    assert wait_until(lambda: find_process(f"sleep\0{marker}\0".encode()) is None)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(SandboxError, match="cancelled"):
        ex(container, f"sleep {marker}", cancel=cancel)
    assert out(ex(container, "echo quick", timeout=60)) == "quick\n"


def _read_until(fd: int, needle: bytes, limit: int = 1 << 20) -> bytes:
    data = b""
    while needle not in data and len(data) < limit:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


def test_interactive_tty_session_follows_the_window(container):
    """A shell on the container's terminal, typed into through a pty of ours, like `exec -it`: input
    reaches it, ^C interrupts its foreground command, and a window resize (SIGWINCH) reaches it."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    typed = threading.Event()

    def user():
        os.write(master, b"stty size; echo typed-$((6*7))\n")
        _read_until(master, b"typed-42")
        os.write(master, b"sleep 1000\n")
        time.sleep(0.3)
        os.write(master, b"\x03")                                   # ^C: the sleep, not the shell
        os.write(master, b"while [ \"$(stty size)\" = '24 80' ]; do sleep 0.05; done; stty size; exit 7\n")
        time.sleep(0.3)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
        os.kill(os.getpid(), signal.SIGWINCH)                       # what the user's terminal sends us
        typed.set()

    thread = threading.Thread(target=user, daemon=True)
    try:
        with TerminalRelay(True, in_fd=slave, out_fd=slave) as relay:
            thread.start()
            result = run_in(container.pid1, EnterSpec(argv=("sh",), env=(PATH,), tty=True),
                            on_console=relay.attach, timeout=60)
        assert typed.is_set() and result.exit_code == 7
        os.set_blocking(master, False)
        rest = b""
        try:
            while chunk := os.read(master, 65536):
                rest += chunk
        except (BlockingIOError, OSError):
            pass
    finally:
        os.close(master)
        os.close(slave)
    assert b"50 132" in rest


def test_exec_counts_against_the_containers_pids_limit(container):
    """The exec joins the container's cgroups: with the container's pids cgroup full, it cannot fork."""
    with open("/proc/self/cgroup") as fh:
        ours = next(line.split(":", 2)[2] for line in fh.read().splitlines() if line.split(":")[1] == "pids")
    parent = "/sys/fs/cgroup/pids" + ours.rstrip("/")
    group = os.path.join(parent, f"pybuild-test-{random.randint(10 ** 6, 10 ** 7)}")
    os.mkdir(group)
    try:
        for pid in (container.pid1, container.pid):
            with open(os.path.join(group, "cgroup.procs"), "w") as fh:
                fh.write(str(pid))
        with open(os.path.join(group, "pids.max"), "w") as fh:
            fh.write("2")
        with pytest.raises(ExecError) as caught:
            ex(container, "true")
        assert caught.value.message == ("OCI runtime exec failed: exec failed: unable to start container process: "
                                        "fork: resource temporarily unavailable: unknown")
        with open(os.path.join(group, "pids.max"), "w") as fh:
            fh.write("max")
        assert out(ex(container, "cat /proc/self/cgroup | grep pids:")).strip().endswith(os.path.basename(group))
    finally:
        for pid in (container.pid1, container.pid):
            try:
                with open(os.path.join(parent, "cgroup.procs"), "w") as fh:
                    fh.write(str(pid))
            except OSError:
                pass
        os.rmdir(group)
