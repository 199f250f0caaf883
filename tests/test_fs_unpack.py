"""The safe unpacker (builder.fs.unpack) and the safe path join under it (builder.fs.safepath).

Hostile layers are built here, entry by entry, with ``tarfile`` writing raw ``TarInfo`` headers. For
each one a canary directory next to the target is hashed before and after (names, types, modes, link
targets, contents), and the outcome is asserted: rejected with ``UnsafeLayerError`` naming the entry,
or contained inside the target. Runs as root (device nodes, trusted.* xattrs, overlay mounts).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from builder.errors import LayerError, UnsafeLayerError
from builder.fs import unpack as unpack_module
from builder.fs.safepath import clean_name, resolve, safe_join
from builder.fs.unpack import unpack_layer

MTIME = 1_650_000_000
CAPABILITY = bytes.fromhex("0100000200040000000000000000000000000000")


# ------------------------------------------------------------------------------------------------
# Building hostile tars
# ------------------------------------------------------------------------------------------------

def F(name: str, data: bytes = b"x", mode: int = 0o644, **kw) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), mode, MTIME
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti, data


def D(name: str, mode: int = 0o755, **kw):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, MTIME
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti, b""


def L(name: str, target: str):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.SYMTYPE, target, 0o777, MTIME
    return ti, b""


def H(name: str, target: str):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.LNKTYPE, target, 0o644, MTIME
    return ti, b""


def make_tar(*entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data else None)
    raw = buf.getvalue()
    for ti, _ in entries:                                   # tarfile must not have "fixed" the hostile names
        assert ti.name.rstrip("/").encode() in raw
    return raw


def tree_hash(root: Path) -> str:
    """Names, types, modes, owners, link targets and contents of everything below ``root``."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h.update(f"{os.path.relpath(p, root)}|{st.st_mode:o}|{st.st_uid}|{st.st_nlink}\n".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p).encode())
            elif stat.S_ISREG(st.st_mode):
                h.update(Path(p).read_bytes())
    return h.hexdigest()


@pytest.fixture
def site(tmp_path):
    """``target`` (empty) next to ``canary`` (a directory that must never change)."""
    canary = tmp_path / "canary"
    (canary / "sub").mkdir(parents=True)
    (canary / "passwd").write_text("root:x:0:0\n")
    (canary / "secret").write_text("do not touch")
    (canary / "sub/file").write_text("deep")
    target = tmp_path / "target"
    target.mkdir()
    before = tree_hash(canary)
    siblings = sorted(os.listdir(tmp_path))
    yield tmp_path, target, canary
    assert tree_hash(canary) == before, "the canary directory changed"
    assert sorted(os.listdir(tmp_path)) == siblings, "something was written next to the target"


def unpack(data: bytes, target: Path, mode: str = "snapshot"):
    return unpack_layer(io.BytesIO(data), target, mode=mode)


# ------------------------------------------------------------------------------------------------
# Hostile layers
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "ok/../../../canary/pwned", "./../escape"])
def test_dotdot_is_rejected(site, name):
    _, target, _ = site
    with pytest.raises(UnsafeLayerError) as err:
        unpack(make_tar(F("fine"), F(name)), target)
    assert err.value.path == name and repr(name) in str(err.value)


def test_absolute_names_are_contained(site):
    _, target, canary = site
    name = str(canary / "passwd")                      # "/tmp/.../canary/passwd", like /etc/passwd
    unpack(make_tar(F(name, b"hacked")), target)
    assert (target / name.lstrip("/")).read_bytes() == b"hacked"


@pytest.mark.parametrize("link", ["abs", "rel"])
def test_write_through_a_symlink_pointing_outside_is_contained(site, link):
    tmp, target, canary = site
    # absolute: chroot reads "/tmp/.../canary" inside the target; relative: '..' stops at the root
    to = str(canary) if link == "abs" else "../../../../canary"
    res = unpack(make_tar(L("link", to), F("link/pwned", b"pwned"), F("link/secret", b"overwritten")), target)
    inside = target / (str(canary).lstrip("/") if link == "abs" else "canary")
    assert (inside / "pwned").read_bytes() == b"pwned" and (inside / "secret").read_bytes() == b"overwritten"
    assert os.readlink(target / "link") == to                       # the symlink itself is kept verbatim
    assert res.entries == 3


def test_symlink_chain_is_resolved_inside(site):
    _, target, canary = site
    unpack(make_tar(L("a", "b"), L("b", "sub/../c"), D("sub"), L("c", str(canary)), F("a/pwned", b"!")), target)
    assert (target / str(canary).lstrip("/") / "pwned").read_bytes() == b"!"


def test_symlink_loop_is_rejected(site):
    _, target, _ = site
    with pytest.raises(UnsafeLayerError, match="too many levels") as err:
        unpack(make_tar(L("x", "y"), L("y", "x"), F("x/f")), target)
    assert err.value.path == "x/f"


def test_hardlink_to_outside_is_rejected(site):
    _, target, _ = site
    with pytest.raises(UnsafeLayerError) as err:
        unpack(make_tar(F("fine"), H("hardlink", "../../etc/x")), target)
    assert err.value.path == "hardlink"


def test_hardlink_to_an_absolute_path_outside_is_contained(site):
    _, target, canary = site
    with pytest.raises(LayerError, match="does not exist in the target") as err:
        unpack(make_tar(H("h", str(canary / "secret"))), target)
    assert err.value.path == "h" and not (target / "h").exists()


def test_hardlink_through_a_symlink(site):
    _, target, canary = site
    with pytest.raises(LayerError, match="does not exist"):            # the symlink leads to target/<canary>
        unpack(make_tar(L("sl", str(canary)), H("h", "sl/secret")), target)
    # through a symlink that stays inside: linked, contained
    res = unpack(make_tar(D("real"), F("real/file", b"data"), L("sl2", "/real"), H("h2", "sl2/file")), target)
    assert os.lstat(target / "h2").st_ino == os.lstat(target / "real/file").st_ino
    assert res.skipped == ()


def test_hardlink_to_a_missing_entry_or_a_directory(site):
    _, target, _ = site
    with pytest.raises(LayerError, match="does not exist"):
        unpack(make_tar(H("h", "nowhere")), target)
    with pytest.raises(LayerError, match="directory"):
        unpack(make_tar(D("d"), H("h", "d")), target)


def test_a_file_replaces_a_symlink_instead_of_writing_through_it(site):
    _, target, canary = site
    os.symlink(canary / "secret", target / "f")                       # e.g. from a lower layer
    os.link(canary / "passwd", target / "victim")                     # a hardlink into the canary
    unpack(make_tar(F("f", b"new"), F("victim", b"new too")), target, mode="apply")
    assert not os.path.islink(target / "f") and (target / "f").read_bytes() == b"new"
    assert os.lstat(target / "victim").st_nlink == 1


def test_a_directory_entry_replaces_an_escaping_symlink(site):
    _, target, canary = site
    unpack(make_tar(L("d", str(canary)), D("d"), F("d/x", b"inside")), target)
    assert (target / "d").is_dir() and not (target / "d").is_symlink()
    assert (target / "d/x").read_bytes() == b"inside"


def test_whiteouts_through_symlinks_stay_inside(site):
    _, target, canary = site
    for mode in ("apply", "snapshot"):
        dest = target / mode
        unpack(make_tar(L("sl", str(canary)), F("sl/.wh.secret", b""), F("sl/.wh..wh..opq", b"")), dest, mode=mode)
    with pytest.raises(UnsafeLayerError):
        unpack(make_tar(F(".wh..", b"")), target / "dots", mode="apply")


def test_hostile_root_and_dot_entries(site):
    _, target, _ = site
    res = unpack(make_tar(D("./"), D("/"), F("./a", b"1"), F("//b/./c", b"2")), target)
    assert (target / "a").read_bytes() == b"1" and (target / "b/c").read_bytes() == b"2"
    assert res.entries == 4


# ------------------------------------------------------------------------------------------------
# Safe join
# ------------------------------------------------------------------------------------------------

def test_safe_join_reads_symlinks_as_chroot_would(tmp_path):
    root = str(tmp_path)
    (tmp_path / "usr/lib").mkdir(parents=True)
    os.symlink("/usr/lib", tmp_path / "lib")
    os.symlink("../../../../../..", tmp_path / "up")
    os.symlink("usr/missing/../lib", tmp_path / "indirect")
    assert safe_join(root, "/lib/x") == f"{root}/usr/lib/x"
    assert safe_join(root, "up/etc/passwd") == f"{root}/etc/passwd"
    assert safe_join(root, "indirect/y") == f"{root}/usr/lib/y"
    assert safe_join(root, "lib") == f"{root}/lib"                               # last component kept
    assert safe_join(root, "lib", follow_final=True) == f"{root}/usr/lib"
    assert resolve(root, []) == root
    assert clean_name("/a/./b//c/") == "a/b/c" and clean_name("./") == ""
    with pytest.raises(UnsafeLayerError):
        clean_name("a/../b")
    with pytest.raises(UnsafeLayerError):
        clean_name("a\x00b")


# ------------------------------------------------------------------------------------------------
# Metadata
# ------------------------------------------------------------------------------------------------

def test_metadata_is_restored(tmp_path):
    target = tmp_path / "t"
    tool = F("bin/tool", b"\x7fELF", 0o4755, uid=0, gid=0)
    tool[0].pax_headers = {"SCHILY.xattr.security.capability": CAPABILITY.decode("utf-8", "surrogateescape"),
                           "SCHILY.xattr.user.note": "hi"}
    owned = F("home/u/file", b"u", 0o640, uid=4321, gid=8765)
    sym = L("home/u/link", "file")
    sym[0].uid, sym[0].gid, sym[0].mtime = 4321, 8765, MTIME - 7
    sticky = D("tmp", 0o1777)
    sgid = D("srv", 0o2775, uid=10, gid=20)
    ro = D("ro", 0o555)
    fifo = tarfile.TarInfo("run/fifo")
    fifo.type, fifo.mode, fifo.mtime = tarfile.FIFOTYPE, 0o620, MTIME
    old_dir = D("old", 0o700)
    old_dir[0].mtime = 1_000_000_000
    entries = [D("bin"), tool, D("home"), D("home/u", uid=4321, gid=8765), owned, sym, sticky, sgid, ro,
               F("ro/inside", b"r"), D("run"), (fifo, b""), old_dir, F("old/child", b"c")]
    res = unpack(make_tar(*entries), target)
    assert res.skipped == ()
    st = os.lstat(target / "bin/tool")
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert os.getxattr(target / "bin/tool", "security.capability") == CAPABILITY
    assert os.getxattr(target / "bin/tool", "user.note") == b"hi"
    st = os.lstat(target / "home/u/file")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4321, 8765, 0o640)
    assert st.st_mtime_ns == st.st_atime_ns == MTIME * 10**9
    st = os.lstat(target / "home/u/link")
    assert (st.st_uid, st.st_gid, st.st_mtime) == (4321, 8765, MTIME - 7)
    assert stat.S_IMODE(os.lstat(target / "tmp").st_mode) == 0o1777
    st = os.lstat(target / "srv")
    assert stat.S_IMODE(st.st_mode) == 0o2775 and (st.st_uid, st.st_gid) == (10, 20)
    assert stat.S_IMODE(os.lstat(target / "ro").st_mode) == 0o555 and (target / "ro/inside").exists()
    assert stat.S_ISFIFO(os.lstat(target / "run/fifo").st_mode)
    assert stat.S_IMODE(os.lstat(target / "run/fifo").st_mode) == 0o620
    # directory times are set after their children are written
    assert os.lstat(target / "old").st_mtime == 1_000_000_000
    assert os.lstat(target / "home/u").st_mtime == MTIME


def test_device_nodes_are_created_as_root(tmp_path):
    entries = []
    for name, kind, major, minor in (("dev/null", tarfile.CHRTYPE, 1, 3), ("dev/loop0", tarfile.BLKTYPE, 7, 0),
                                     ("dev/big", tarfile.CHRTYPE, 4095, 1048575)):
        ti = tarfile.TarInfo(name)
        ti.type, ti.devmajor, ti.devminor, ti.mode, ti.mtime = kind, major, minor, 0o660, MTIME
        entries.append((ti, b""))
    unpack(make_tar(*entries), tmp_path / "t")
    null = os.lstat(tmp_path / "t/dev/null")
    assert stat.S_ISCHR(null.st_mode) and (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o660
    loop = os.lstat(tmp_path / "t/dev/loop0")
    assert stat.S_ISBLK(loop.st_mode) and loop.st_rdev == os.makedev(7, 0)
    big = os.lstat(tmp_path / "t/dev/big").st_rdev
    assert (os.major(big), os.minor(big)) == (4095, 1048575)


def test_what_the_kernel_refuses_is_listed_not_fatal(tmp_path, monkeypatch):
    ti, data = F("f", b"x")
    ti.pax_headers = {"SCHILY.xattr.bogusns.name": "v", "SCHILY.xattr.trusted.overlay.redirect": "/x"}
    dev = tarfile.TarInfo("null")
    dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3

    def no_mknod(*a, **kw):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(unpack_module.os, "mknod", no_mknod)
    res = unpack(make_tar((ti, data), (dev, b"")), tmp_path / "t")
    assert (tmp_path / "t/f").read_bytes() == b"x" and not (tmp_path / "t/null").exists()
    assert any("bogusns.name" in s for s in res.skipped)
    assert any("trusted.overlay.redirect" in s for s in res.skipped)           # never restored from a layer
    assert any("null" in s and "CAP_MKNOD" in s for s in res.skipped)


# ------------------------------------------------------------------------------------------------
# Whiteouts
# ------------------------------------------------------------------------------------------------

LOWER = make_tar(F("keep", b"k"), F("gone", b"g"), D("d"), F("d/old", b"o"), D("d/sub"), F("d/sub/older", b"o"),
                 D("e"), F("e/x", b"x"), F("x-file", b"f"), D("x-dir"), F("x-dir/child", b"c"))
UPPER = make_tar(F(".wh.gone", b""), D("d"), F("d/-first", b"same layer, sorted before the marker"),
                 F("d/.wh..wh..opq", b""), F("d/new", b"n"), F(".wh.e", b""),
                 F("self", b"s"), F(".wh.self", b""),                       # same layer: the entry wins
                 D("x-file"), F("x-file/inner", b"i"),                      # a file replaced by a directory
                 F("x-dir", b"now a file"))                                 # a directory replaced by a file


def test_whiteouts_in_snapshot_mode_become_overlay_whiteouts(tmp_path):
    target = tmp_path / "snap"
    unpack(UPPER, target, mode="snapshot")
    gone = os.lstat(target / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert os.getxattr(target / "d", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(target / "d")) == ["-first", "new"]
    assert stat.S_ISCHR(os.lstat(target / "e").st_mode)
    assert (target / "self").read_bytes() == b"s"
    assert not any(n.startswith(".wh.") for _, _, files in os.walk(target) for n in files)


def test_whiteouts_in_apply_mode_delete(tmp_path):
    root = tmp_path / "rootfs"
    unpack(LOWER, root, mode="apply")
    unpack(UPPER, root, mode="apply")
    assert sorted(os.listdir(root)) == ["d", "keep", "self", "x-dir", "x-file"]
    assert sorted(os.listdir(root / "d")) == ["-first", "new"]              # lower entries gone, ours kept
    assert (root / "self").read_bytes() == b"s"
    assert (root / "x-file/inner").read_bytes() == b"i"
    assert (root / "x-dir").read_bytes() == b"now a file"


def test_snapshot_lowers_mounted_as_overlay_match_apply_mode(tmp_path):
    """The two modes agree: overlay over the snapshots shows what apply mode flattened."""
    lower, upper, flat, merged = (tmp_path / n for n in ("l1", "l2", "flat", "merged"))
    unpack(LOWER, lower)
    unpack(UPPER, upper)
    unpack(LOWER, flat, mode="apply")
    unpack(UPPER, flat, mode="apply")
    merged.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={upper}:{lower}", str(merged)], check=True)
    try:
        assert _listing(merged) == _listing(flat)
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def _listing(root: Path) -> dict[str, bytes | None]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            out[str(p.relative_to(root))] = p.read_bytes() if p.is_file() else None
    return out


def test_opaque_directory_keeps_same_layer_subdirectories(tmp_path):
    root = tmp_path / "r"
    unpack(make_tar(D("d"), D("d/sub"), F("d/sub/lower", b"l"), F("d/lowerfile", b"l")), root, mode="apply")
    unpack(make_tar(D("d"), D("d/sub"), F("d/sub/mine", b"m"), F("d/zz/.wh..wh..opq", b""),
                    F("d/.wh..wh..opq", b"")), root, mode="apply")
    assert _listing(root / "d") == {"sub": None, "sub/mine": b"m"}


# ------------------------------------------------------------------------------------------------
# Streams, digests, corruption
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["none", "gzip", "zstd", "bzip2", "xz"])
def test_diff_id_is_computed_while_unpacking_any_compression(tmp_path, kind):
    # 3 MiB (several read chunks), of a kind each compressor handles quickly
    payload = {"bzip2": b"".join(b"line %d\n" % i for i in range(400_000))[:3 << 20],
               "xz": os.urandom(4096) * 768}.get(kind) or os.urandom(3 << 20)
    tar = make_tar(D("a"), F("a/b", payload), F("c", b"c"))
    blob = {"none": lambda b: b, "gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress,
            "zstd": lambda b: zstandard.ZstdCompressor().compress(b)}[kind](tar)
    res = unpack(blob, tmp_path / "t")
    assert res.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest() and res.size == len(tar)
    assert res.compression == kind and res.entries == 3
    assert (tmp_path / "t/a/b").stat().st_size == 3 << 20


def test_truncated_and_corrupt_layers_are_errors(tmp_path):
    tar = make_tar(F("a", os.urandom(5000)), F("b", b"b" * 3000))
    with pytest.raises(LayerError, match="truncated"):
        unpack(tar[:1500], tmp_path / "t1")                               # inside a's data
    with pytest.raises(LayerError, match="corrupt or truncated"):
        unpack(tar[:5632 + 300], tmp_path / "t2")                         # inside b's header
    bad = bytearray(tar)
    bad[5632 + 148] ^= 0x01                                               # b's header checksum
    with pytest.raises(LayerError, match="corrupt or truncated"):
        unpack(bytes(bad), tmp_path / "t3")
    with pytest.raises(LayerError):
        unpack(b"", tmp_path / "t4")
    with pytest.raises(LayerError, match="corrupt gzip"):
        unpack(b"\x1f\x8b\x08\x00" + b"\xff" * 100, tmp_path / "t5")
    res = unpack(bytes(1024), tmp_path / "t6")                            # an empty layer is fine
    assert res.entries == 0 and res.diff_id == "sha256:" + hashlib.sha256(bytes(1024)).hexdigest()


def test_unpack_into_a_parent_that_is_a_file_fails_cleanly(tmp_path):
    with pytest.raises(LayerError, match="not a directory") as err:
        unpack(make_tar(F("a", b"file"), F("a/b", b"under a file")), tmp_path / "t", mode="apply")
    assert err.value.path == "a/b"


def test_bad_mode_argument(tmp_path):
    with pytest.raises(ValueError):
        unpack_layer(io.BytesIO(b""), tmp_path, mode="merge")


def test_fast_header_parser_agrees_with_tarfile(tmp_path):
    """The unpacker's header fast path must read every header exactly as tarfile does."""
    src = tmp_path / "src"
    (src / ("deep/" * 30)).mkdir(parents=True)
    (src / ("deep/" * 30) / "f").write_text("x")
    (src / "ünï").write_text("u")
    (src / "d").mkdir()
    os.symlink("t" * 150, src / "d/long-link")
    os.mknod(src / "d/dev", stat.S_IFCHR | 0o600, os.makedev(300, 70000))
    os.chown(src / "ünï", 3_000_000, 12)
    archives = []
    for fmt in ("gnu", "posix", "ustar", "v7", "oldgnu"):
        archives.append(subprocess.run(["tar", "-C", str(src), f"--format={fmt}", "-cf", "-", "."],
                                       capture_output=True).stdout)
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
            tf.add(src, arcname="x")
        archives.append(buf.getvalue())
    from builder.fs.tarwriter import write_layer
    buf = io.BytesIO()
    write_layer(src, buf)
    archives.append(buf.getvalue())
    compared = 0
    for data in archives:
        if not data:
            continue                     # a format GNU tar refused for this tree (v7 and long names)
        kw = dict(encoding="utf-8", errors="surrogateescape")
        ours = tarfile.open(fileobj=io.BytesIO(data), tarinfo=unpack_module._TarInfo, **kw).getmembers()
        theirs = tarfile.open(fileobj=io.BytesIO(data), **kw).getmembers()
        assert [(m.get_info(), m.pax_headers, m.offset_data) for m in ours] == \
            [(m.get_info(), m.pax_headers, m.offset_data) for m in theirs]
        compared += len(ours)
    assert compared > 30
    # a header whose checksum only matches the signed sum (old Sun tar): the fast path defers to tarfile
    block = bytearray(tarfile.TarInfo("é-name").tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
    signed = 256 + sum(b - 256 if b > 127 else b for i, b in enumerate(block) if not 148 <= i < 156)
    block[148:156] = b"%06o\x00 " % signed
    assert unpack_module._TarInfo.frombuf(bytes(block), "utf-8", "strict").name == "é-name"
