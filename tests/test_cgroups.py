"""Container resource limits: docker's parsing and checks of --memory/--memory-swap/--cpus/--cpu-shares/
--pids-limit, the cgroup v2 writer against a recording fake (the unified hierarchy on this host holds only
hugetlb), and the v1 controllers of this host for real: a memory hog is OOM-killed, a fork bomb stops at
its pids limit, and removing a cgroup kills what is left and leaves nothing behind."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from builder.sandbox.cgroups import (Cgroup, CgroupError, HostFS, LimitError, Limits, cpu_weight, hierarchies,
                                     limits_from_flags, names, parse_cpus, parse_memory, parse_memory_swap,
                                     resolve_limits, sweep)
from cgroup_fake import FakeCgroupFS

MiB = 1 << 20
REPO = Path(__file__).resolve().parents[1]


# --- docker's flag parsing and daemon checks ------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("64m", 64 * MiB), ("64M", 64 * MiB), ("64mb", 64 * MiB), ("64MiB", 64 * MiB), ("64 m", 64 * MiB),
    ("1g", 1 << 30), ("512k", 512 << 10), ("1.5g", 3 << 29), ("100", 100), ("100b", 100), ("2t", 2 << 40),
])
def test_memory_sizes_read_as_docker_reads_them(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["64x", "", "-1", "m", "64mm", "1e3", " 64m"])
def test_bad_memory_sizes_get_dockers_message(text):
    with pytest.raises(LimitError) as err:
        parse_memory(text)
    assert str(err.value) == f"invalid size: '{text}'"


def test_flag_errors_read_like_the_docker_cli():
    with pytest.raises(LimitError) as err:
        limits_from_flags(memory="64x")
    assert str(err.value) == """invalid argument "64x" for "-m, --memory" flag: invalid size: '64x'"""
    with pytest.raises(LimitError) as err:
        limits_from_flags(memory="64m", cpus="two")
    assert str(err.value) == 'invalid argument "two" for "--cpus" flag: failed to parse two as a rational number'
    with pytest.raises(LimitError, match="strconv.ParseFloat"):
        parse_memory("1.2.3m")


def test_memory_swap_minus_one_is_unlimited():
    assert parse_memory_swap("-1") == -1
    assert parse_memory_swap("128m") == 128 * MiB


@pytest.mark.parametrize("text, expected", [("1.5", 1.5), ("2", 2.0), ("0.01", 0.01), ("3/2", 1.5),
                                            ("0.000000001", 1e-9)])
def test_cpus_are_rationals(text, expected):
    assert parse_cpus(text) == expected


def test_cpus_errors():
    with pytest.raises(LimitError, match="^failed to parse abc as a rational number$"):
        parse_cpus("abc")
    with pytest.raises(LimitError, match="^value is too precise$"):
        parse_cpus("0.0000000001")


def test_cpu_quota_and_weight_as_docker_and_runc_compute_them():
    assert Limits(cpus=1.5).cpu_quota == 150000
    assert Limits(cpus=0.5).cpu_quota == 50000
    assert Limits(cpus=0.333333333).cpu_quota == 33333
    assert Limits().cpu_quota == 0
    assert [cpu_weight(s) for s in (2, 512, 1024, 262144)] == [1, 20, 39, 10000]


def test_memory_minimum_and_swap_rules_are_dockers():
    with pytest.raises(LimitError, match="^Minimum memory limit allowed is 6MB$"):
        resolve_limits(Limits(memory=6 * MiB - 1))
    assert resolve_limits(Limits(memory=6 * MiB)).memory_swap == 12 * MiB           # twice memory by default
    assert resolve_limits(Limits(memory=64 * MiB, memory_swap=-1)).memory_swap == -1
    assert resolve_limits(Limits(memory=64 * MiB), swap_limit=False).memory_swap == -1
    with pytest.raises(LimitError, match="^Minimum memoryswap limit should be larger than memory limit, see usage$"):
        resolve_limits(Limits(memory=64 * MiB, memory_swap=32 * MiB))
    with pytest.raises(LimitError, match="^You should always set the Memory limit when using Memoryswap limit"):
        resolve_limits(Limits(memory_swap=64 * MiB))
    with pytest.raises(LimitError) as err:
        limits_from_flags(memory="4m")
    assert str(err.value) == "Minimum memory limit allowed is 6MB"


def test_cpu_range_and_pids_defaults():
    with pytest.raises(LimitError) as err:
        resolve_limits(Limits(cpus=3), ncpu=2)
    assert str(err.value) == "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"
    assert resolve_limits(Limits(cpus=2), ncpu=2).cpus == 2
    assert resolve_limits(Limits(pids=-1)).pids == 0                                # <= 0: no limit
    limits = limits_from_flags(memory="64m", cpus="0.5", cpu_shares=512, pids_limit=50, ncpu=2)
    assert limits == Limits(memory=64 * MiB, memory_swap=128 * MiB, cpus=0.5, cpu_shares=512, pids=50)


# --- the v2 writer, against the recording fake -----------------------------------------------------------------


def unified(controllers=("cpuset", "cpu", "io", "memory", "pids"), own="/"):
    return FakeCgroupFS([("/sys/fs/cgroup", 2, controllers)], {"/sys/fs/cgroup": own})


def hybrid(**kw):
    """This host's layout: v1 controllers, our memory cgroup nested, a cgroup2 mount holding only hugetlb."""
    return FakeCgroupFS([("/sys/fs/cgroup/cpu", 1, ["cpu"]), ("/sys/fs/cgroup/cpuacct", 1, ["cpuacct"]),
                         ("/sys/fs/cgroup/memory", 1, ["memory"]), ("/sys/fs/cgroup/pids", 1, ["pids"]),
                         ("/sys/fs/cgroup/devices", 1, ["devices"]), ("/sys/fs/cgroup/unified", 2, ["hugetlb"])],
                        {"/sys/fs/cgroup/memory": "/process_api/abc"}, **kw)


FULL = Limits(memory=64 * MiB, memory_swap=128 * MiB, cpus=1.5, cpu_shares=512, pids=50)


def test_v2_writer_enables_controllers_and_writes_every_limit():
    fs = unified()
    cg = Cgroup.create("c1", FULL, fs=fs)
    base = "/sys/fs/cgroup/pybuild/c1"
    assert cg.procs_files == (f"{base}/cgroup.procs",)
    assert fs.writes == [
        ("/sys/fs/cgroup/cgroup.subtree_control", "+memory"),
        ("/sys/fs/cgroup/cgroup.subtree_control", "+cpu"),
        ("/sys/fs/cgroup/cgroup.subtree_control", "+pids"),
        ("/sys/fs/cgroup/pybuild/cgroup.subtree_control", "+memory"),
        ("/sys/fs/cgroup/pybuild/cgroup.subtree_control", "+cpu"),
        ("/sys/fs/cgroup/pybuild/cgroup.subtree_control", "+pids"),
        (f"{base}/memory.max", str(64 * MiB)),
        (f"{base}/memory.swap.max", str(64 * MiB)),      # v2 counts swap on top of memory
        (f"{base}/cpu.weight", "20"),
        (f"{base}/cpu.max", "150000 100000"),
        (f"{base}/pids.max", "50"),
    ]
    assert cg.warnings == ()
    # a second container: the controllers are already handed down, only its own limits are written
    fs.writes.clear()
    Cgroup.create("c2", Limits(memory=64 * MiB, memory_swap=-1), fs=fs)
    assert fs.writes == [("/sys/fs/cgroup/pybuild/c2/memory.max", str(64 * MiB)),
                         ("/sys/fs/cgroup/pybuild/c2/memory.swap.max", "max")]


def test_v2_no_limits_writes_nothing_but_makes_the_cgroup():
    fs = unified()
    cg = Cgroup.create("plain", Limits(), fs=fs)
    assert [p for p, _ in fs.writes if "/plain/" in p] == []
    assert cg.exists and fs.exists("/sys/fs/cgroup/pybuild/plain/cgroup.procs")


def test_v2_controllers_the_host_lacks_are_reported_as_docker_warns():
    fs = unified(controllers=("memory",))
    cg = Cgroup.create("c1", FULL, fs=fs)
    assert fs.written("cgroup.subtree_control") == [("/sys/fs/cgroup/cgroup.subtree_control", "+memory"),
                                                    ("/sys/fs/cgroup/pybuild/cgroup.subtree_control", "+memory")]
    assert [p.rsplit("/", 1)[1] for p, _ in fs.writes if "/c1/" in p] == ["memory.max", "memory.swap.max"]
    assert cg.warnings == (
        "Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.",
        "Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.",
        "Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded.")


def test_v2_nested_own_cgroup_with_processes_cannot_hand_controllers_down():
    """The no-internal-process rule: our own (non-root) cgroup holds us, so enabling fails with EBUSY; the
    container still gets a cgroup, without limits, and says so."""
    fs = unified(own="/user.slice/session-1.scope")
    own = "/sys/fs/cgroup/user.slice/session-1.scope"
    fs.add_process(4242, own)
    cg = Cgroup.create("c1", Limits(pids=50), fs=fs)
    assert cg.procs_files == (f"{own}/pybuild/c1/cgroup.procs",)
    assert not fs.written("pids.max")
    assert cg.warnings == ("Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. "
                           "PIDs limit discarded.",)


def test_v2_nested_own_cgroup_without_processes_is_used():
    fs = unified(own="/delegated")
    cg = Cgroup.create("c1", Limits(pids=50), fs=fs)
    assert fs.written("pids.max") == [("/sys/fs/cgroup/delegated/pybuild/c1/pids.max", "50")]
    assert cg.warnings == ()


def test_v2_oom_kill_is_read_from_memory_events():
    fs = unified()
    cg = Cgroup.create("c1", FULL, fs=fs)
    assert cg.oom_killed() is False
    fs.set("/sys/fs/cgroup/pybuild/c1/memory.events", "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n")
    assert cg.oom_killed() is True
    assert Cgroup.open("c1", fs=fs).oom_killed() is True          # from the name alone


def test_v2_stats():
    fs = unified()
    cg = Cgroup.create("c1", FULL, fs=fs)
    base = "/sys/fs/cgroup/pybuild/c1"
    fs.set(f"{base}/memory.current", "1048576\n")
    fs.set(f"{base}/memory.peak", "2097152\n")
    fs.set(f"{base}/pids.current", "3\n")
    fs.set(f"{base}/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    stats = cg.stats()
    assert (stats.memory_usage, stats.memory_limit, stats.memory_max_usage, stats.pids, stats.cpu_usage_ns) == (
        MiB, 64 * MiB, 2 * MiB, 3, 1_500_000)
    assert Cgroup.create("c2", Limits(), fs=fs).stats().memory_limit == -1          # "max"


def test_v2_remove_uses_cgroup_kill_and_is_idempotent():
    fs = unified()
    cg = Cgroup.create("c1", FULL, fs=fs)
    fs.add_process(101, "/sys/fs/cgroup/pybuild/c1")
    fs.add_process(102, "/sys/fs/cgroup/pybuild/c1")
    fs.mkdir("/sys/fs/cgroup/pybuild/c1/inner")                   # a privileged container made one
    fs.add_process(103, "/sys/fs/cgroup/pybuild/c1/inner")
    cg.remove()
    assert ("/sys/fs/cgroup/pybuild/c1/cgroup.kill", "1") in fs.writes
    assert sorted(fs.killed) == [101, 102, 103]
    assert not fs.exists("/sys/fs/cgroup/pybuild/c1") and not cg.exists
    writes = len(fs.writes)
    cg.remove()
    Cgroup.open("c1", fs=fs).remove()
    assert len(fs.writes) == writes


def test_failed_limit_write_removes_what_was_made():
    class Refusing(FakeCgroupFS):
        def write(self, path, text):
            if path.endswith("/pids.max"):
                raise OSError(errno.EINVAL, "Invalid argument", path)
            super().write(path, text)

    fs = Refusing([("/sys/fs/cgroup", 2, ("memory", "pids"))])
    with pytest.raises(CgroupError) as err:
        Cgroup.create("c1", FULL, fs=fs)
    assert str(err.value) == 'failed to write "50" to "/sys/fs/cgroup/pybuild/c1/pids.max": Invalid argument'
    assert not fs.exists("/sys/fs/cgroup/pybuild/c1")


def test_names_are_checked():
    for bad in ("", "../x", "a/b", ".hidden", "x" * 200):
        with pytest.raises(CgroupError, match="invalid cgroup name"):
            Cgroup.open(bad, fs=unified())


def test_sweep_removes_only_dead_cgroups_with_the_prefix():
    fs = unified()
    for name in ("storeA-1", "storeA-2", "storeB-1"):
        Cgroup.create(name, Limits(pids=10), fs=fs)
    fs.add_process(77, "/sys/fs/cgroup/pybuild/storeA-2")
    assert sweep({"storeA-1"}, prefix="storeA-", fs=fs) == ["storeA-2"]
    assert names(fs=fs) == {"storeA-1", "storeB-1"}
    assert fs.killed == [77]
    assert sweep({"storeA-1"}, prefix="storeA-", fs=fs) == []


# --- v1 (this host's layout), against the fake ------------------------------------------------------------------


def test_hybrid_layout_puts_each_controller_where_it_lives():
    fs = hybrid()
    cg = Cgroup.create("c1", FULL, fs=fs)
    assert cg.procs_files == (
        "/sys/fs/cgroup/cpu/pybuild/c1/cgroup.procs",
        "/sys/fs/cgroup/cpuacct/pybuild/c1/cgroup.procs",
        "/sys/fs/cgroup/memory/process_api/abc/pybuild/c1/cgroup.procs",
        "/sys/fs/cgroup/pids/pybuild/c1/cgroup.procs",
        "/sys/fs/cgroup/unified/pybuild/c1/cgroup.procs",
    )
    assert fs.writes == [
        ("/sys/fs/cgroup/cpu/pybuild/c1/cpu.shares", "512"),
        ("/sys/fs/cgroup/cpu/pybuild/c1/cpu.cfs_period_us", "100000"),
        ("/sys/fs/cgroup/cpu/pybuild/c1/cpu.cfs_quota_us", "150000"),
        ("/sys/fs/cgroup/memory/process_api/abc/pybuild/c1/memory.limit_in_bytes", str(64 * MiB)),
        ("/sys/fs/cgroup/memory/process_api/abc/pybuild/c1/memory.memsw.limit_in_bytes", str(128 * MiB)),
        ("/sys/fs/cgroup/pids/pybuild/c1/pids.max", "50"),
    ]
    assert cg.warnings == ()


def test_v1_without_swap_accounting_leaves_memsw_alone():
    fs = hybrid(v1_without={"memory.memsw.limit_in_bytes"})
    assert limits_from_flags(memory="64m", fs=fs).memory_swap == -1       # docker: "Memory limited without swap"
    Cgroup.create("c1", Limits(memory=64 * MiB, memory_swap=128 * MiB), fs=fs)
    assert fs.written("memory.limit_in_bytes") and not fs.written("memory.memsw.limit_in_bytes")


def test_v1_oom_detection_from_oom_control_and_the_old_kernel_fallback():
    fs = hybrid()
    cg = Cgroup.create("c1", FULL, fs=fs)
    base = "/sys/fs/cgroup/memory/process_api/abc/pybuild/c1"
    assert not cg.oom_killed()
    fs.set(f"{base}/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert cg.oom_killed()
    fs.set(f"{base}/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n")          # before Linux 4.13
    fs.set(f"{base}/memory.failcnt", "0\n")
    assert not cg.oom_killed()
    fs.set(f"{base}/memory.failcnt", "31\n")
    fs.set(f"{base}/memory.limit_in_bytes", f"{64 * MiB}\n")
    fs.set(f"{base}/memory.max_usage_in_bytes", f"{64 * MiB}\n")
    assert cg.oom_killed()


def test_v1_remove_kills_by_pid_and_rmdirs_everywhere():
    fs = hybrid()
    cg = Cgroup.create("c1", FULL, fs=fs)
    for path in cg.procs_files:
        fs.write(path, "555")
    cg.remove()
    assert fs.killed == [555]
    assert not cg.exists
    assert names(fs=fs) == set()


# --- this host's cgroups, for real -----------------------------------------------------------------------------


@pytest.fixture
def cgroup_name():
    """A fresh name (``pbt<pid>-...``); afterwards, no cgroup of this test may be left in any hierarchy."""
    prefix = f"pbt{os.getpid()}-{uuid.uuid4().hex[:8]}"
    made = []

    def new(suffix="c"):
        made.append(f"{prefix}-{suffix}")
        return made[-1]

    yield new
    left = {n for n in names() if n.startswith(prefix)}
    for name in left:
        Cgroup.open(name).remove()
    assert left == set(), f"cgroups left behind: {left}"


def held(script: str, *args: str) -> tuple[subprocess.Popen, int]:
    """A python process that waits on a pipe before running ``script``: put it in a cgroup, then release it
    with ``os.write(gate, b"x")``."""
    r, w = os.pipe()
    code = f"import os, sys\nos.read({r}, 1)\n" + script
    proc = subprocess.Popen([sys.executable, "-c", code, *args], pass_fds=(r,), stdout=subprocess.PIPE)
    os.close(r)
    return proc, w


def join(cg: Cgroup, pid: int) -> None:
    for path in cg.procs_files:
        HostFS().write(path, str(pid))


def test_this_host_has_the_v1_controllers_the_runtime_needs():
    found = set().union(*(h.controllers for h in hierarchies(HostFS()) if h.version == 1))
    assert {"memory", "cpu", "pids"} <= found


def test_memory_hog_is_oom_killed_at_64m(cgroup_name):
    cg = Cgroup.create(cgroup_name(), limits_from_flags(memory="64m"))
    assert cg.warnings == ()
    hog, gate = held("chunks = []\nwhile True:\n    chunks.append(b'x' * (1 << 20))\n")
    try:
        join(cg, hog.pid)
        os.write(gate, b"x")
        assert hog.wait() == -signal.SIGKILL
        assert cg.oom_killed()
        stats = cg.stats()
        assert stats.memory_limit == 64 * MiB and stats.memory_max_usage >= 60 * MiB
    finally:
        os.close(gate)
        hog.kill()
        hog.wait()
        cg.remove()
    assert not cg.exists


def test_a_process_within_its_limit_is_not_oom_killed(cgroup_name):
    cg = Cgroup.create(cgroup_name(), limits_from_flags(memory="64m"))
    proc, gate = held("data = b'x' * (8 << 20)\nprint(len(data))\n")
    try:
        join(cg, proc.pid)
        os.write(gate, b"x")
        assert proc.communicate()[0] == b"8388608\n" and proc.returncode == 0
        assert not cg.oom_killed()
    finally:
        os.close(gate)
        cg.remove()


BOMB = """
import os, time
root, depth = os.getpid(), 0
for _ in range(40):                 # bounded (at most ~1,600 processes) even if the limit were missing
    try:
        pid = os.fork()
    except BlockingIOError:         # EAGAIN: the pids controller said no
        os.write(1, b"EAGAIN\\n")
        time.sleep(0.01)
        continue
    if pid == 0:
        depth += 1
        if depth >= 2:
            break
if os.getpid() == root:
    os.write(1, b"root done\\n")
while True:
    time.sleep(1)
"""


def test_fork_bomb_stops_at_the_pids_limit_and_remove_kills_it(cgroup_name):
    cg = Cgroup.create(cgroup_name(), limits_from_flags(pids_limit=50))
    pids_dir = next(path for h, path in cg.dirs if "pids" in h.controllers)
    bomb, gate = held(BOMB)
    try:
        join(cg, bomb.pid)
        os.write(gate, b"x")
        lines = []
        while not lines or lines[-1] != b"root done\n":
            lines.append(bomb.stdout.readline())
        assert b"EAGAIN\n" in lines                        # processes of the bomb were refused a fork
        assert int(Path(pids_dir, "pids.current").read_text()) == 50
        assert 0 < len(cg.pids()) <= 50
        assert int(Path(pids_dir, "pids.events").read_text().split()[1]) > 0      # "max N": forks refused
        cg.remove()
        assert bomb.wait() == -signal.SIGKILL
        assert not cg.exists
    finally:
        os.close(gate)
        bomb.kill()
        bomb.wait()
        bomb.stdout.close()
        cg.remove()


def test_cpu_quota_and_shares_are_written(cgroup_name):
    cg = Cgroup.create(cgroup_name(), limits_from_flags(cpus="1.5", cpu_shares=512))
    try:
        cpu_dir = next(path for h, path in cg.dirs if "cpu" in h.controllers)
        assert Path(cpu_dir, "cpu.cfs_quota_us").read_text() == "150000\n"
        assert Path(cpu_dir, "cpu.cfs_period_us").read_text() == "100000\n"
        assert Path(cpu_dir, "cpu.shares").read_text() == "512\n"
    finally:
        cg.remove()


def test_sweep_removes_a_forgotten_cgroup_with_its_process(cgroup_name):
    live, dead = cgroup_name("live"), cgroup_name("dead")
    prefix = live.rsplit("-", 1)[0] + "-"
    Cgroup.create(live, Limits(pids=10))
    orphan = Cgroup.create(dead, Limits(pids=10))
    proc, gate = held("import time\nwhile True: time.sleep(1)\n")
    try:
        join(orphan, proc.pid)
        assert sweep({live}, prefix=prefix) == [dead]
        assert proc.wait() == -signal.SIGKILL
        assert {n for n in names() if n.startswith(prefix)} == {live}
    finally:
        os.close(gate)
        Cgroup.open(live).remove()
