"""Unit tests of the RUN sandbox that need no root and run nothing: USER resolution, the seccomp
filter, capabilities, overlay options, generated /etc files, confined paths, and the mount plan as
recorded by ``RecordingSyscalls`` (order and flags)."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from builder.sandbox import caps, container, overlay, rootfs
from builder.sandbox.errors import SandboxError
from builder.sandbox.etcfiles import hosts_file, resolv_conf
from builder.sandbox.init import namespace_flags
from builder.sandbox.paths import StubRecorder, read_stub_record, resolve_in_root
from builder.sandbox.process import remove_stubs
from builder.sandbox.seccomp import build_filter
from builder.sandbox.spec import BindMount, HostEntry, RunLayout, RunSpec, TmpfsMount, shell_argv
from builder.sandbox.syscalls import (CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, MNT_DETACH,
                                      MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC,
                                      MS_REMOUNT, MS_SLAVE, MS_STRICTATIME, PR_CAP_AMBIENT, PR_CAPBSET_DROP,
                                      RecordingSyscalls)
from builder.sandbox.users import ExecUser, resolve_user

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
# a comment
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = """root:x:0:
wheel:x:10:root,app
staff:x:50:app
app:x:1000:
nogroup:x:65534:
"""
SAFE = MS_NOSUID | MS_NOEXEC | MS_NODEV


# --- users ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, expected", [
    ("", ExecUser(0, 0, (), "/root")),
    ("root", ExecUser(0, 0, (10,), "/root")),
    ("app", ExecUser(1000, 1000, (10, 50), "/home/app")),
    ("1000", ExecUser(1000, 1000, (10, 50), "/home/app")),      # numeric uid found in passwd
    ("4242", ExecUser(4242, 0, (), "/")),                       # numeric uid not in passwd: gid 0
    ("1000:1000", ExecUser(1000, 1000, (), "/home/app")),       # BuildKit's fast path: no groups
    ("root:root", ExecUser(0, 0, (), "/root")),
    ("app:staff", ExecUser(1000, 50, (), "/home/app")),         # explicit group drops supplementary
    ("app:77", ExecUser(1000, 77, (), "/home/app")),            # numeric group need not exist
    ("nobody:wheel", ExecUser(65534, 10, (), "/nonexistent")),
    ("4242:staff", ExecUser(4242, 50, (), "/")),
])
def test_resolve_user(spec, expected):
    assert resolve_user(spec, PASSWD, GROUP) == expected


def test_missing_user_and_group_errors_read_like_docker():
    with pytest.raises(SandboxError, match=r"^unable to find user ghost: no matching entries in passwd file$"):
        resolve_user("ghost", PASSWD, GROUP)
    with pytest.raises(SandboxError, match=r"^unable to find group ghosts: no matching entries in group file$"):
        resolve_user("app:ghosts", PASSWD, GROUP)
    with pytest.raises(SandboxError, match="unable to find user app: no matching entries in passwd file"):
        resolve_user("app", None, None)                          # image without /etc/passwd
    assert resolve_user("123", None, None) == ExecUser(123, 0, (), "/")
    with pytest.raises(SandboxError, match="uids and gids must be in range 0-2147483647"):
        resolve_user("99999999999", PASSWD, GROUP)


# --- seccomp and capabilities ---------------------------------------------------------------------
DENIED = ("keyctl", "add_key", "request_key", "mount", "umount2", "kexec_load", "kexec_file_load", "init_module",
          "finit_module", "delete_module", "reboot", "swapon", "swapoff", "pivot_root", "bpf", "perf_event_open",
          "userfaultfd", "open_by_handle_at", "clock_settime", "settimeofday", "acct", "quotactl", "iopl",
          "ioperm", "unshare", "setns", "sethostname")


def test_default_filter_denies_dockers_list_with_eperm():
    filt = build_filter(caps.DEFAULT_MASK, "x86_64", "6.1.0")
    assert filt.default_errno == errno.EPERM
    assert filt.arches == ("x86", "x32")
    for name in DENIED:
        assert filt.errno_for(name) == errno.EPERM, name
    for name in ("read", "execve", "chroot", "ptrace", "arch_prctl", "setresuid", "capset", "prctl"):
        assert filt.errno_for(name) is None, name
    assert filt.errno_for("clone3") == errno.ENOSYS               # libc falls back to clone
    clone = [r for r in filt.rules if r.syscall == "clone"]
    assert [(a.index, a.op, a.value) for r in clone for a in r.args] == [(0, "masked_eq", 0x7E020000)]
    socket_rule = next(r for r in filt.rules if r.syscall == "socket")
    assert socket_rule.args[0].op == "ne" and socket_rule.args[0].value == 40     # no AF_VSOCK


def test_filter_follows_capabilities_and_kernel():
    admin = build_filter(caps.DEFAULT_MASK | caps.cap_mask(["CAP_SYS_ADMIN"]), "x86_64", "6.1.0")
    assert admin.errno_for("mount") is None and admin.errno_for("unshare") is None
    assert not any(r.syscall == "clone3" and r.errno for r in admin.rules)
    no_chroot = build_filter(caps.DEFAULT_MASK & ~caps.cap_mask(["CAP_SYS_CHROOT"]), "x86_64", "6.1.0")
    assert no_chroot.errno_for("chroot") == errno.EPERM
    assert build_filter(caps.DEFAULT_MASK, "x86_64", "4.4.0").errno_for("ptrace") == errno.EPERM
    assert build_filter(caps.DEFAULT_MASK, "aarch64", "6.1").errno_for("arch_prctl") == errno.EPERM


def test_default_capability_mask_is_dockers():
    assert caps.DEFAULT_MASK == 0xA80425FB


def test_restrict_capabilities_drops_bounding_set_then_sets_exactly_the_default():
    sys = RecordingSyscalls()
    caps.restrict_capabilities(sys, caps.DEFAULT_MASK, last=40)
    drops = [c.args[1] for c in sys.of("prctl") if c.args[0] == PR_CAPBSET_DROP]
    assert drops == [n for n in range(41) if not caps.DEFAULT_MASK & (1 << n)]
    assert sys.calls[-2].args[0] == PR_CAP_AMBIENT
    assert sys.calls[-1].name == "capset" and sys.calls[-1].args == (0xA80425FB, 0xA80425FB, 0)


# --- overlay options ------------------------------------------------------------------------------
def test_short_lowerdir_lists_are_used_as_they_are(tmp_path):
    plan = overlay.plan_overlay(["/l/2", "/l/1"], "/u", "/w", str(tmp_path / "l"), ("index=off",))
    assert plan == overlay.OverlayPlan("lowerdir=/l/2:/l/1,upperdir=/u,workdir=/w,index=off")


def test_long_lowerdir_lists_use_short_link_names(tmp_path):
    lowers = [f"/var/lib/pybuild/snapshots/{'x' * 64}/{i:04d}/fs" for i in range(200)]
    plan = overlay.plan_overlay(lowers, "/up", "/work", str(tmp_path / "l"))
    assert plan.cwd == str(tmp_path / "l")
    names = plan.options.split(",")[0].removeprefix("lowerdir=").split(":")
    assert len(names) == 200 and names[:3] == ["0", "1", "2"] and names[-1] == "5j"
    assert len(plan.options) < 4096 and plan.options.endswith("upperdir=U,workdir=W")
    assert dict(plan.links)["5j"] == lowers[-1] and dict(plan.links)["U"] == "/up"
    overlay.create_links(plan)
    assert os.readlink(tmp_path / "l" / "0") == lowers[0]
    assert os.readlink(tmp_path / "l" / "u") == lowers[30] and os.readlink(tmp_path / "l" / "U") == "/up"


def test_separators_in_paths_force_links_and_layer_limit(tmp_path):
    assert overlay.plan_overlay(["/a,b"], "/u", "/w", str(tmp_path)).cwd == str(tmp_path)
    with pytest.raises(SandboxError, match="too many layers"):
        overlay.plan_overlay([f"/l{i}" for i in range(501)], "/u", "/w", str(tmp_path))


# --- generated files, spec, paths -----------------------------------------------------------------
def test_hosts_and_resolv_conf():
    assert hosts_file("buildkitsandbox", [HostEntry("db", "10.0.0.2")]) == (
        "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.2\tdb\n")
    host = "search example\nnameserver 127.0.0.1\nnameserver 10.1.1.1\n"
    assert resolv_conf("host", host) == host
    assert resolv_conf("none", host) == "search example\nnameserver 10.1.1.1\n"
    assert "nameserver 8.8.8.8" in resolv_conf("none", "nameserver 127.0.0.53\n")


def test_spec_validation_and_round_trip():
    spec = RunSpec(argv=["sh"], lower_dirs=["/l"], upper_dir="/u", work_dir="/w", env=["A=1"],
                   binds=[BindMount("/src", "/dst", readonly=False)], tmpfs=[TmpfsMount("/t", size=1 << 20)],
                   extra_hosts=[HostEntry("h", "::1")], network="none")
    assert isinstance(spec.argv, tuple) and spec.hostname == "buildkitsandbox"
    assert RunSpec.from_dict(spec.to_dict()) == spec
    assert shell_argv("echo hi") == ("/bin/sh", "-c", "echo hi")
    for bad in (dict(network="bridge"), dict(env=["NOVALUE"]), dict(cwd="rel"), dict(argv=[]),
                dict(stdout="file")):
        with pytest.raises(SandboxError):
            RunSpec(**{**dict(argv=["sh"], lower_dirs=["/l"], upper_dir="/u", work_dir="/w"), **bad})
    with pytest.raises(SandboxError, match="invalid IP"):
        HostEntry("h", "not-an-ip")


def test_namespaces_include_net_only_for_network_none():
    base = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    assert namespace_flags("host") == base
    assert namespace_flags("none") == base | CLONE_NEWNET


def test_resolve_in_root_keeps_symlinks_inside(tmp_path):
    root = tmp_path / "root"
    (root / "real" / "etc").mkdir(parents=True)
    os.symlink("/real/etc", root / "etc")
    os.symlink("../../../../../../", root / "real" / "up")
    assert resolve_in_root(str(root), "/etc/hosts") == str(root / "real/etc/hosts")
    assert resolve_in_root(str(root), "/real/up/etc/passwd") == str(root / "etc/passwd").replace(
        "etc/passwd", "real/etc/passwd")
    assert resolve_in_root(str(root), "/../../x") == str(root / "x")


def test_stub_recorder_creates_and_records_only_missing_mount_points(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    record = tmp_path / "record"
    stubs = StubRecorder(str(root), str(record))
    assert stubs.ensure("/etc", True) == str(root / "etc")
    assert stubs.ensure("/run/secrets/token", False) == str(root / "run/secrets/token")
    assert stubs.created == ["/run", "/run/secrets", "/run/secrets/token"]
    assert read_stub_record(str(record)) == stubs.created
    assert (root / "run/secrets/token").is_file()
    with pytest.raises(SandboxError, match="not a directory"):
        stubs.ensure("/run/secrets/token/x", True)


def test_remove_stubs_keeps_content_and_parent_times(tmp_path):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "hosts").touch()
    (upper / "mnt" / "a").mkdir(parents=True)
    (upper / "mnt" / "kept").write_text("user data")
    os.utime(upper / "etc", ns=(1_000_000_000, 1_000_000_000))
    remove_stubs(str(upper), ["/etc/hosts", "/mnt", "/mnt/a"])
    assert not (upper / "etc" / "hosts").exists() and not (upper / "mnt" / "a").exists()
    assert (upper / "mnt" / "kept").exists()
    assert (upper / "etc").stat().st_mtime_ns == 1_000_000_000


def test_build_env_and_path_lookup(tmp_path):
    assert container.build_env(("A=1", "A=2", "B=x=y"), "/root") == ("A=2", "B=x=y", "HOME=/root")
    assert container.build_env(("HOME=/h",), "/root") == ("HOME=/h",)
    tool = tmp_path / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert container.lookup_executable("tool", (f"PATH=/nonexistent:{tool.parent}",)) == str(tool)
    with pytest.raises(SandboxError, match=r'exec: "tool": executable file not found in \$PATH'):
        container.lookup_executable("tool", ("PATH=/nonexistent",))
    with pytest.raises(SandboxError, match=r'exec: "/no/such": stat /no/such: no such file or directory'):
        container.lookup_executable("/no/such", ())


# --- the mount plan, recorded ---------------------------------------------------------------------
def _plan(tmp_path, image_has_mount_points=True, **spec_kw):
    layout = RunLayout(str(tmp_path / "scratch"))
    os.makedirs(layout.rootfs)
    if image_has_mount_points:                  # what the stub layer provides in a real mount
        for d in ("proc", "dev", "sys/fs/cgroup", "etc"):
            os.makedirs(os.path.join(layout.rootfs, d))
        for f in ("etc/hosts", "etc/resolv.conf"):
            open(os.path.join(layout.rootfs, f), "w").close()
    spec = RunSpec(argv=["true"], lower_dirs=["/snap/2", "/snap/1"], upper_dir="/up", work_dir="/wk", **spec_kw)
    ov = overlay.plan_overlay((*spec.lower_dirs, layout.stubs), "/up", "/wk", layout.links)
    host = rootfs.HostView(devices=("null", "zero", "tty"),
                           cgroups=(rootfs.CgroupMount("cpu", "/sys/fs/cgroup/cpu/build"),
                                    rootfs.CgroupMount("unified", "/sys/fs/cgroup/unified/build")),
                           cgroup_links=(("cpuacct", "cpu"),))
    r = layout.rootfs
    sys = RecordingSyscalls(paths={r + "/proc/acpi": "dir", r + "/proc/keys": "file", r + "/proc/sys": "dir",
                                   r + "/sys/firmware": "dir",
                                   **{r + p: None for p in rootfs.MASKED_PATHS + rootfs.READONLY_PATHS
                                      if p not in ("/proc/acpi", "/proc/keys", "/proc/sys", "/sys/firmware")}},
                            flags={r + "/proc/sys": SAFE})
    return spec, layout, ov, host, sys


def _mounts(sys):
    return [(c.args[0], c.args[1], c.args[2], c.args[3], c.args[4]) for c in sys.of("mount")]


def test_mount_plan_order_and_flags(tmp_path):
    spec, layout, ov, host, sys = _plan(tmp_path)
    created = rootfs.prepare_rootfs(sys, spec, layout, ov, host)
    assert created == []                                   # every mount point came from the layers
    r = layout.rootfs
    mounts = _mounts(sys)
    targets = [m[1] for m in mounts]
    assert mounts[0] == (None, "/", None, MS_REC | MS_PRIVATE, None)
    assert mounts[1] == ("overlay", r, "overlay", 0,
                         f"lowerdir=/snap/2:/snap/1:{layout.stubs},upperdir=/up,workdir=/wk")
    by_target = {}
    for m in mounts:
        by_target.setdefault(m[1], []).append(m)
    assert by_target[r + "/proc"] == [("proc", r + "/proc", "proc", SAFE, None)]
    assert by_target[r + "/dev"] == [("tmpfs", r + "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k")]
    assert by_target[r + "/dev/null"] == [("/dev/null", r + "/dev/null", None, MS_BIND, None)]
    assert r + "/dev/random" not in by_target                          # not on this (fake) host
    assert by_target[r + "/dev/pts"] == [("devpts", r + "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                                          "newinstance,ptmxmode=0666,mode=0620,gid=5")]
    assert by_target[r + "/dev/shm"] == [("shm", r + "/dev/shm", "tmpfs", SAFE, "mode=1777,size=65536k")]
    assert by_target[r + "/dev/mqueue"] == [("mqueue", r + "/dev/mqueue", "mqueue", SAFE, None)]
    assert by_target[r + "/sys"] == [("sysfs", r + "/sys", "sysfs", SAFE | MS_RDONLY, None)]
    cg = r + "/sys/fs/cgroup"
    assert by_target[cg][0] == ("tmpfs", cg, "tmpfs", SAFE, "mode=755")
    assert by_target[cg][-1] == (None, cg, None, MS_REMOUNT | MS_RDONLY | SAFE, "mode=755")
    assert by_target[cg + "/cpu"] == [("/sys/fs/cgroup/cpu/build", cg + "/cpu", None, MS_BIND | MS_REC, None),
                                      (None, cg + "/cpu", None, MS_BIND | MS_REMOUNT | MS_RDONLY | SAFE, None)]
    assert os.readlink(cg + "/cpuacct") == "cpu"
    for name, source in (("hosts", layout.hosts), ("resolv.conf", layout.resolv)):
        assert by_target[f"{r}/etc/{name}"] == [
            (source, f"{r}/etc/{name}", None, MS_BIND | MS_REC, None),
            (None, f"{r}/etc/{name}", None, MS_BIND | MS_REMOUNT | MS_RDONLY | SAFE, None)]
    assert by_target[r + "/proc/sys"] == [
        (r + "/proc/sys", r + "/proc/sys", None, MS_BIND | MS_REC, None),
        (None, r + "/proc/sys", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | SAFE, None)]
    assert by_target[r + "/proc/acpi"] == [("tmpfs", r + "/proc/acpi", "tmpfs", MS_RDONLY, None)]
    assert by_target[r + "/sys/firmware"] == [("tmpfs", r + "/sys/firmware", "tmpfs", MS_RDONLY, None)]
    assert by_target[r + "/proc/keys"] == [("/dev/null", r + "/proc/keys", None, MS_BIND, None)]
    assert r + "/proc/kcore" not in by_target                            # absent paths are skipped
    # /proc and /sys before anything inside them; Docker's protections last.
    assert targets.index(r + "/proc") < targets.index(r + "/proc/sys") < targets.index(r + "/proc/acpi")
    assert targets.index(r + "/sys") < targets.index(cg) < targets.index(r + "/sys/firmware")
    assert max(targets.index(f"{r}/etc/hosts"), targets.index(r + "/dev/mqueue")) < targets.index(r + "/proc/sys")
    links = {name: os.readlink(os.path.join(r, "dev", name)) for name, _ in rootfs.DEV_LINKS}
    assert links == {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
                     "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}


def test_mount_plan_extra_mounts_and_missing_mount_points(tmp_path):
    src = tmp_path / "cache"
    src.mkdir()
    spec, layout, ov, host, sys = _plan(tmp_path, image_has_mount_points=False,
                                        binds=[BindMount(str(src), "/root/.cache", readonly=True),
                                               BindMount(str(src), "/rw", readonly=False)],
                                        tmpfs=[TmpfsMount("/scratch", size=1 << 20, mode=0o700)])
    sys.flags[layout.rootfs + "/root/.cache"] = MS_NOSUID
    created = rootfs.prepare_rootfs(sys, spec, layout, ov, host)
    assert created == ["/proc", "/dev", "/sys", "/etc", "/etc/hosts", "/etc/resolv.conf", "/root", "/root/.cache",
                       "/rw", "/scratch"]
    assert read_stub_record(layout.stub_record) == created
    r = layout.rootfs
    mounts = _mounts(sys)
    assert (str(src), r + "/root/.cache", None, MS_BIND | MS_REC, None) in mounts
    assert (None, r + "/root/.cache", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID, None) in mounts
    assert (str(src), r + "/rw", None, MS_BIND | MS_REC, None) in mounts
    assert not any(m[1] == r + "/rw" and m[3] & MS_REMOUNT for m in mounts)
    assert ("tmpfs", r + "/scratch", "tmpfs", MS_NOSUID, "mode=700,size=1048576") in mounts   # BuildKit: nosuid only


def test_long_overlay_is_mounted_from_the_link_directory(tmp_path):
    layout = RunLayout(str(tmp_path / "s"))
    ov = overlay.plan_overlay([f"/very/long/snapshot/path/{'y' * 40}/{i}" for i in range(130)], "/u", "/w",
                              layout.links)
    sys = RecordingSyscalls()
    overlay.mount_overlay(sys, ov, "/target")
    assert [c.name for c in sys.calls] == ["chdir", "mount", "chdir"]
    assert sys.calls[0].args == (layout.links,) and sys.calls[2].args == ("/",)
    assert sys.calls[1].args[4].startswith("lowerdir=0:1:2:")


def test_failed_mount_stops_the_plan(tmp_path):
    spec, layout, ov, host, sys = _plan(tmp_path)
    sys.fail("mount", errno.EPERM, when=lambda c: c.args[1] == layout.rootfs + "/sys")
    with pytest.raises(OSError) as info:
        rootfs.prepare_rootfs(sys, spec, layout, ov, host)
    assert info.value.errno == errno.EPERM
    assert sys.of("mount")[-1].args[1] == layout.rootfs + "/sys"


def test_pivot_root_sequence():
    sys = RecordingSyscalls()
    rootfs.pivot_root(sys, "/scratch/rootfs")
    assert [(c.name, c.args) for c in sys.calls] == [
        ("chdir", ("/scratch/rootfs",)), ("pivot_root", (".", ".")),
        ("mount", (None, ".", None, MS_SLAVE | MS_REC, None)), ("umount2", (".", MNT_DETACH)), ("chdir", ("/",))]


def test_stub_layer_holds_every_mount_point(tmp_path):
    src_file = tmp_path / "secret"
    src_file.write_text("s")
    spec = RunSpec(argv=["true"], lower_dirs=["/l"], upper_dir="/u", work_dir="/w",
                   binds=[BindMount(str(src_file), "/run/secrets/id"), BindMount(str(tmp_path), "/src")],
                   tmpfs=[TmpfsMount("/tmp/t")])
    layout = RunLayout(str(tmp_path / "scratch"))
    rootfs.make_stub_layer(spec, layout)
    kinds = {}
    for dirpath, dirnames, filenames in os.walk(layout.stubs):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            kinds["/" + os.path.relpath(path, layout.stubs)] = "d" if stat.S_ISDIR(os.lstat(path).st_mode) else "f"
    assert kinds == {"/proc": "d", "/dev": "d", "/sys": "d", "/etc": "d", "/etc/hosts": "f", "/etc/resolv.conf": "f",
                     "/run": "d", "/run/secrets": "d", "/run/secrets/id": "f", "/src": "d", "/tmp": "d", "/tmp/t": "d"}


def test_command_process_sets_credentials_in_order_and_retries_chdir_as_the_user():
    sys = RecordingSyscalls().fail("chdir", errno.EACCES)
    prepared = container.Prepared(("true",), ("HOME=/",), "/srv/app", ExecUser(1000, 100, (100, 200), "/"))
    with pytest.raises(SandboxError, match=r"chdir to cwd \('/srv/app'\) set in config.json failed: permission denied"):
        container.exec_command(prepared, sys)
    assert [(c.name, c.args) for c in sys.calls] == [
        ("chdir", ("/srv/app",)), ("setgroups", ((100, 200),)), ("setresgid", (100, 100, 100)),
        ("setresuid", (1000, 1000, 1000)), ("chdir", ("/srv/app",))]
