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
from cgroup_fake import FakeCgroupFS
from test_sandbox_run import busybox_rootfs  # noqa: F401  (fixture: busybox unpacked once per session)

from builder.sandbox.cgroups import (
    Cgroup,
    CgroupError,
    HostFS,
    LimitError,
    Limits,
    cpu_weight,
    hierarchies,
    limits_from_flags,
    names,
    parse_cpus,
    parse_memory,
    parse_memory_swap,
    resolve_limits,
    sweep,
)

MiB = 1 << 20


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
    for text in (" 1", "1_0", "1/0", ""):
        with pytest.raises(LimitError, match="as a rational number$"):
            parse_cpus(text)


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


def test_v2_own_cgroup_with_processes_nests_under_the_nearest_ancestor_that_can_delegate():
    """The no-internal-process rule: a cgroup holding processes (ours: a service's leaf) cannot hand
    controllers down, so the container cgroup goes under the nearest ancestor without processes."""
    fs = unified(own="/system.slice/ci.service")
    fs.add_process(4242, "/sys/fs/cgroup/system.slice/ci.service")
    cg = Cgroup.create("c1", Limits(pids=50), fs=fs)
    assert cg.procs_files == ("/sys/fs/cgroup/system.slice/pybuild/c1/cgroup.procs",)
    assert fs.written("pids.max") == [("/sys/fs/cgroup/system.slice/pybuild/c1/pids.max", "50")]
    assert cg.warnings == ()
    assert Cgroup.open("c1", fs=fs).dirs == cg.dirs


def test_v2_controllers_a_slice_does_not_hand_down_yet_are_enabled_on_the_way_down():
    fs = FakeCgroupFS([("/sys/fs/cgroup", 2, ("cpu", "memory", "pids"))], {"/sys/fs/cgroup": "/user.slice/s.scope"})
    fs.add_process(4242, "/sys/fs/cgroup/user.slice/s.scope")
    fs.set("/sys/fs/cgroup/user.slice/cgroup.subtree_control", "memory pids\n")     # systemd: no cpu here
    fs.write("/sys/fs/cgroup/cgroup.subtree_control", "-cpu")
    fs.writes.clear()
    cg = Cgroup.create("c1", FULL, fs=fs)
    assert fs.written("cgroup.subtree_control") == [
        ("/sys/fs/cgroup/cgroup.subtree_control", "+cpu"),
        ("/sys/fs/cgroup/user.slice/cgroup.subtree_control", "+cpu"),
        ("/sys/fs/cgroup/user.slice/pybuild/cgroup.subtree_control", "+memory"),
        ("/sys/fs/cgroup/user.slice/pybuild/cgroup.subtree_control", "+cpu"),
        ("/sys/fs/cgroup/user.slice/pybuild/cgroup.subtree_control", "+pids")]
    assert fs.written("cpu.max") == [("/sys/fs/cgroup/user.slice/pybuild/c1/cpu.max", "150000 100000")]
    assert cg.warnings == ()


def test_v2_controllers_that_cannot_be_handed_down_are_reported():
    """A namespace root that holds processes (a container's own cgroup seen through its cgroup namespace)
    cannot delegate: the cgroup is still made, without the limit, with docker's warning."""
    class Busy(FakeCgroupFS):
        def write(self, path, text):
            if path.endswith("cgroup.subtree_control"):
                raise OSError(errno.EBUSY, "Device or resource busy", path)
            super().write(path, text)

    fs = Busy([("/sys/fs/cgroup", 2, ("memory", "pids"))])
    cg = Cgroup.create("c1", Limits(pids=50), fs=fs)
    assert cg.exists and not fs.written("pids.max")
    assert cg.warnings == (("Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. "
                           "PIDs limit discarded."),)


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


def test_create_replaces_an_empty_leftover_and_refuses_one_in_use():
    fs = unified()
    Cgroup.create("c1", FULL, fs=fs)
    again = Cgroup.create("c1", Limits(memory=64 * MiB, memory_swap=-1), fs=fs)
    assert fs.read("/sys/fs/cgroup/pybuild/c1/pids.max") == "max\n"           # the old limit is gone
    fs.add_process(9, "/sys/fs/cgroup/pybuild/c1")
    with pytest.raises(CgroupError, match="^cgroup c1 is in use$"):
        Cgroup.create("c1", Limits(), fs=fs)
    assert again.pids() == {9} and fs.killed == []


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
    with pytest.raises(CgroupError):
        sweep(set(), prefix="", fs=fs)              # never everything: other stores' cgroups live there too
    with pytest.raises(TypeError):
        sweep(set(), fs=fs)


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


def test_v1_co_mounted_controllers_and_a_second_mount_of_a_hierarchy():
    """Debian's v1 layout mounts cpu and cpuacct together; a hierarchy bound elsewhere again (a container's
    view of a subtree) does not confuse where ours go."""
    fs = FakeCgroupFS([("/sys/fs/cgroup/cpu,cpuacct", 1, ["cpu", "cpuacct"]), ("/sys/fs/cgroup/memory", 1, ["memory"])])
    fs.files["/proc/self/mountinfo"] = (
        "90 80 0:50 /other /var/lib/x/rootfs/sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        + fs.files["/proc/self/mountinfo"])
    cg = Cgroup.create("c1", FULL, fs=fs)
    assert [path for _, path in cg.dirs] == ["/sys/fs/cgroup/cpu,cpuacct/pybuild/c1", "/sys/fs/cgroup/memory/pybuild/c1"]
    assert [p.rsplit("/", 1)[1] for p, _ in fs.writes] == [
        "cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us", "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    fs.set("/sys/fs/cgroup/cpu,cpuacct/pybuild/c1/cpuacct.usage", "123456\n")
    assert cg.stats().cpu_usage_ns == 123456
    assert cg.warnings == (("Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. "
                           "PIDs limit discarded."),)


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


def test_v1_a_cgroup_made_from_another_session_is_found_and_removed():
    """On a v1 host each login session has its own memory cgroup: a container started from one session and
    removed from another (or after its monitor was killed) is still found by name."""
    fs = hybrid()
    made = Cgroup.create("c1", FULL, fs=fs)
    fs.mkdir("/sys/fs/cgroup/memory/process_api/other")
    fs.set("/proc/self/cgroup", fs.read("/proc/self/cgroup").replace("/process_api/abc", "/process_api/other"))
    found = Cgroup.open("c1", fs=fs)
    assert [path for _, path in found.dirs] == [path for _, path in made.dirs]
    found.remove()
    assert not made.exists
    assert Cgroup.open("c1", fs=fs).dirs[2][1] == "/sys/fs/cgroup/memory/process_api/other/pybuild/c1"


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
    # bounded: were the limit missing, it would stop at 512 MiB and exit 3 instead of eating the host
    hog, gate = held("chunks = []\nfor _ in range(512):\n    chunks.append(b'x' * (1 << 20))\nsys.exit(3)\n")
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
children = 0
for _ in range(100):                # bounded (at most 201 processes) even if the limit were missing
    try:
        pid = os.fork()
    except BlockingIOError:         # EAGAIN: the pids controller said no
        os.write(1, b"EAGAIN after %d children\\n" % children)
        break
    if pid == 0:                    # a child: only the first process reports (its exit closes the pipe)
        os.close(1)
        try:
            os.fork()               # and every child forks again
        except BlockingIOError:
            pass
        while True:
            time.sleep(1)
    children += 1
os.write(1, b"root done\\n")
while True:
    time.sleep(1)
"""


def test_fork_bomb_stops_at_the_pids_limit_and_remove_kills_it(cgroup_name):
    cg = Cgroup.create(cgroup_name(), limits_from_flags(pids_limit=50))
    _, pids_dir = controller_dir(cg, "pids")
    bomb, gate = held(BOMB)
    try:
        join(cg, bomb.pid)
        os.write(gate, b"x")
        refused, done = bomb.stdout.readline(), bomb.stdout.readline()
        assert refused.startswith(b"EAGAIN after ") and done == b"root done\n", (refused, done)
        assert int(Path(pids_dir, "pids.current").read_text()) <= 50
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


def controller_dir(cg: Cgroup, controller: str) -> tuple[int, str]:
    """(cgroup version, directory) of ``cg`` in the hierarchy holding ``controller``."""
    return next((h.version, path) for h, path in cg.dirs if controller in h.controllers)


def test_cpu_quota_and_shares_are_written(cgroup_name):
    cg = Cgroup.create(cgroup_name(), limits_from_flags(cpus="1.5", cpu_shares=512))
    try:
        version, cpu_dir = controller_dir(cg, "cpu")
        if version == 1:
            assert Path(cpu_dir, "cpu.cfs_quota_us").read_text() == "150000\n"
            assert Path(cpu_dir, "cpu.cfs_period_us").read_text() == "100000\n"
            assert Path(cpu_dir, "cpu.shares").read_text() == "512\n"
        else:
            assert Path(cpu_dir, "cpu.max").read_text() == "150000 100000\n"
            assert Path(cpu_dir, "cpu.weight").read_text() == "20\n"
    finally:
        cg.remove()


@pytest.mark.parametrize("shares, message", [(1, "the minimum allowed cpu-shares is 2"),
                                             (300000, "the maximum allowed cpu-shares is 262144")])
def test_cpu_shares_the_kernel_would_clamp_are_refused_as_runc_does(cgroup_name, shares, message):
    name = cgroup_name()
    with pytest.raises(CgroupError) as err:
        Cgroup.create(name, Limits(cpu_shares=shares))
    assert str(err.value) == message
    assert not Cgroup.open(name).exists


def test_store_prefix_is_stable_and_differs_per_store(tmp_path):
    from builder.sandbox.cgroups import store_prefix

    assert store_prefix(tmp_path / "a") == store_prefix(str(tmp_path / "a")) != store_prefix(tmp_path / "b")
    assert len(store_prefix(tmp_path) + "f" * 64) <= 128


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


# --- the real sandbox joining the cgroup (RunSpec.cgroup_procs) --------------------------------------------------


def sandboxed(tmp_path: Path, rootfs: Path, command: str, cg: Cgroup, **kw):
    from builder.sandbox import RunSpec, run, shell_argv

    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    return run(RunSpec(argv=shell_argv(command), lower_dirs=(str(rootfs),), upper_dir=str(upper),
                       work_dir=str(work), env=("PATH=/bin:/usr/bin",), cgroup_procs=cg.procs_files, **kw))


def test_sandbox_memory_hog_at_64m_exits_137_and_is_seen_as_oom_killed(cgroup_name, tmp_path, busybox_rootfs):
    cg = Cgroup.create(cgroup_name(), limits_from_flags(memory="64m"))
    try:
        # dd's 128 MiB buffer is filled from /dev/zero: the kernel has to charge all of it
        result = sandboxed(tmp_path, busybox_rootfs, "dd if=/dev/zero of=/dev/null bs=128M count=1", cg,
                           pid1_command=True)
        assert result.exit_code == 137 and result.signal == signal.SIGKILL
        assert cg.oom_killed()
    finally:
        cg.remove()


def test_sandbox_sees_its_own_cgroup_as_the_root_and_its_limits(cgroup_name, tmp_path, busybox_rootfs):
    cg = Cgroup.create(cgroup_name(), limits_from_flags(memory="64m", pids_limit=50, cpus="0.5"))
    try:
        if controller_dir(cg, "memory")[0] == 1:
            files, expected = "memory/memory.limit_in_bytes pids/pids.max cpu/cpu.cfs_quota_us", "50000"
        else:
            files, expected = "memory.max pids.max cpu.max", "50000 100000"
        script = (f"cat /proc/self/cgroup; cd /sys/fs/cgroup; cat {files}; "
                  "dd if=/dev/zero of=/dev/null bs=8M count=1 2>/dev/null && echo fits")
        result = sandboxed(tmp_path, busybox_rootfs, script, cg)
        assert result.exit_code == 0, result.stderr
        lines = result.stdout.decode().splitlines()
        memberships = {line.split(":", 1)[1] for line in lines if line[:1].isdigit() and ":/" in line}
        assert {"memory:/", "pids:/", "cpu:/"} <= memberships or memberships == {":/"}     # v1 | v2: the root
        assert lines[-4:] == [str(64 * MiB), "50", expected, "fits"]
        assert not cg.oom_killed()
    finally:
        cg.remove()


def test_sandbox_fork_bomb_stops_at_pids_limit_50(cgroup_name, tmp_path, busybox_rootfs):
    cg = Cgroup.create(cgroup_name(), limits_from_flags(pids_limit=50))
    try:
        # a subshell starts sleepers until a fork fails (busybox sh gives up then); afterwards only builtins,
        # as the 50 processes are all there: the count and the refusal are read without forking
        script = ("cd /sys/fs/cgroup; [ -d pids ] && cd pids; "
                  "(i=0; while [ $i -lt 80 ]; do sleep 100 & i=$((i+1)); echo $i > /tmp/n; done) 2>/tmp/err; "
                  "echo $?; read n < pids.current; echo $n; read n < /tmp/n; echo $n; read e < /tmp/err; echo $e")
        result = sandboxed(tmp_path, busybox_rootfs, script, cg)
        status, current, sleepers, error = result.stdout.decode().splitlines()
        assert (status, error) == ("2", "/bin/sh: can't fork: Resource temporarily unavailable")
        assert int(current) == 49       # 50 until the subshell that gave up exited
        assert int(sleepers) < 50
        assert result.exit_code == 0
    finally:
        cg.remove()
    assert not cg.exists
