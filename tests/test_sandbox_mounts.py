"""RUN --mount in the sandbox for real: merged views (stage layers, a context with ignored paths
whited out, read-only or with writes thrown away), secrets that never touch a disk, insecure mode,
/dev/shm size, ulimits and extra hosts -- and nothing of them left behind."""

from __future__ import annotations

import os
import resource

import pytest

from builder.sandbox import SandboxError, run
from builder.sandbox.spec import BindMount, HostEntry, OverlayMount, SecretMount, TmpfsMount, Ulimit
from test_sandbox_run import box, busybox_rootfs, mounts_mentioning, out, upper_files  # noqa: F401  (fixtures)


def _layer(path, files: dict) -> str:
    for rel, data in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            os.mknod(target, 0o020000, os.makedev(0, 0))       # a whiteout
        else:
            target.write_text(data)
    return str(path)


def test_overlay_view_of_layers_with_subpath_read_only(box, tmp_path):
    top = _layer(tmp_path / "top", {"app/a": "top-a\n", "app/gone": None})
    bottom = _layer(tmp_path / "bottom", {"app/a": "bottom-a\n", "app/b": "bottom-b\n", "app/gone": "x\n",
                                          "other/c": "c\n"})
    text = out(box("cat /src/a /src/b; ls /src; touch /src/new 2>/dev/null || echo ro; cat /one/c",
                   overlays=[OverlayMount((top, bottom), "/src", subpath="app"),
                             OverlayMount((bottom,), "/one", subpath="/other")]))
    assert text.split() == ["top-a", "bottom-b", "a", "b", "ro", "c"]
    assert upper_files(box.upper) == []


def test_context_view_hides_ignored_paths_and_rw_writes_are_discarded(box, tmp_path):
    ctx = _layer(tmp_path / "ctx", {"keep.txt": "keep\n", ".env": "SECRET=1\n", "sub/x": "x\n", "sub/y": "y\n"})
    text = out(box("ls -a /ctx | sort | tr '\\n' ' '; echo; ls /ctx/sub; echo changed > /ctx/keep.txt; "
                   "echo new > /ctx/new; cat /ctx/keep.txt",
                   overlays=[OverlayMount((ctx,), "/ctx", readonly=False, hidden=(".env", "sub/y"))]))
    assert text.splitlines() == [". .. keep.txt sub ", "x", "changed"]
    assert (tmp_path / "ctx" / "keep.txt").read_text() == "keep\n" and not (tmp_path / "ctx" / "new").exists()
    assert upper_files(box.upper) == []


def test_secret_file_and_env_never_touch_a_disk(box, tmp_path):
    value = b"s3cr3t-value-\x01-end"
    spec = box.spec("stat -c '%a %u %g' /run/secrets/tok; cat /run/secrets/tok | md5sum; echo \"$TOKEN\" | md5sum; "
                    "grep ' /run/secrets/tok ' /proc/mounts | cut -d' ' -f3,4; "
                    "cat /run/secrets/tok > /run/secrets/tok 2>/dev/null || echo read-only",
                    secrets=[SecretMount("tok", "/run/secrets/tok"), SecretMount("tok", env="TOKEN"),
                             SecretMount("other", "/etc/other", uid=1000, gid=1000, mode=0o440)])
    result = run(spec, secrets={"tok": value, "other": b"o"})
    lines = out(result).splitlines()
    import hashlib

    digest = hashlib.md5(value).hexdigest()
    assert lines[0] == "400 0 0"
    assert lines[1].startswith(digest) and lines[2].startswith(hashlib.md5(value + b"\n").hexdigest())
    assert lines[3].startswith("tmpfs ro,nosuid,nodev,noexec")
    assert lines[4] == "read-only"
    assert upper_files(box.upper) == []
    with pytest.raises(SandboxError, match="no value given for secret 'tok'"):
        run(spec, secrets={"other": b"o"})


def test_insecure_mode_has_every_capability_and_no_filter(box):
    text = out(box("grep -E 'CapEff|Seccomp:' /proc/self/status; mount | grep -c ' /proc/keys ' ; "
                   "grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1", security="insecure"))
    lines = text.split("\n")
    cap_eff = int(lines[0].split()[1], 16)
    assert cap_eff & (1 << 21)                          # CAP_SYS_ADMIN
    assert lines[1].split()[1] == "0"                   # no seccomp
    assert lines[2] == "0" and lines[3] == "rw"         # nothing masked, /sys writable
    # a non-root user keeps them too (ambient)
    text = out(box("grep CapEff /proc/self/status; id -u", security="insecure", user="1000"))
    assert int(text.split()[1], 16) == cap_eff and text.split()[2] == "1000"
    # and the default profile is back in the next RUN
    assert out(box("grep CapEff /proc/self/status")).split()[1] == "00000000a80425fb"


def test_shm_size_ulimits_and_extra_hosts(box):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    text = out(box("df -k /dev/shm | tail -1 | tr -s ' ' | cut -d' ' -f2; ulimit -n; ulimit -Hn; grep myhost /etc/hosts",
                   shm_size=128 << 20, ulimits=[Ulimit("nofile", 1000, min(hard, 2000))],
                   extra_hosts=[HostEntry("myhost", "10.1.2.3")]))
    assert text.split() == ["131072", "1000", str(min(hard, 2000)), "10.1.2.3", "myhost"]
    if hard != resource.RLIM_INFINITY:
        with pytest.raises(SandboxError, match="failed to set ulimit nofile"):
            box("true", ulimits=[Ulimit("nofile", 10, hard + 1)])


def test_mounts_in_target_order_and_nothing_left(box, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    lower = _layer(tmp_path / "l", {"f": "f\n"})
    text = out(box("echo c > /a/b/c/file; cat /a/f; ls /a/b",
                   binds=[BindMount(str(cache), "/a/b/c", readonly=False)], tmpfs=[TmpfsMount("/a/b")],
                   overlays=[OverlayMount((lower,), "/a", readonly=False)]))
    assert text.split() == ["f", "c"]
    assert (cache / "file").read_text() == "c\n"
    assert upper_files(box.upper) == []
    assert mounts_mentioning(str(tmp_path)) == []
