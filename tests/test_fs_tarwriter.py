"""The deterministic layer writer (builder.fs.tarwriter) and the compression streams it feeds.

Real trees, real tars, checked with ``tarfile``, GNU tar and the gzip/zstd CLIs. Runs as root (device
nodes, ``security.capability``, ``trusted.overlay.*``, overlay mounts).
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
import zlib
from pathlib import Path

import pytest
import zstandard

from builder.errors import LayerError, UnsafeLayerError
from builder.fs import compress
from builder.fs.compress import GzipWriter, compressor, detect, open_decompressed
from builder.fs.digests import HashingWriter
from builder.fs.tarwriter import tar_header, write_layer, write_tar
from builder.fs.unpack import unpack_layer

EPOCH = 1_600_000_000
# cap_net_bind_service=ep, VFS_CAP_REVISION_2
CAPABILITY = bytes.fromhex("0100000200040000000000000000000000000000")
LONG_NAME = "d/" + "long-directory-name-" * 4 + "/" + "very-long-file-name-" * 4 + ".txt"   # > 100 bytes
LONG_TARGET = "/opt/" + "x" * 120 + "/target"
UNICODE = "ünïcødé-日本語.txt"


def _mkfile(root: Path, rel: str, data: bytes = b"", mode: int = 0o644) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    os.chmod(p, mode)
    return p


def build_tree(root: Path, *, reverse: bool = False, mtime: int = EPOCH + 1000, inode_shift: int = 0) -> Path:
    """A tree with one of everything. ``reverse`` creates it in the opposite order (links still after
    their targets), ``inode_shift`` burns inode numbers first, every inode gets ``mtime``."""
    root.mkdir(parents=True)
    for i in range(inode_shift):                       # shift the inode numbers of what follows
        (root / f"tmp{i}").write_bytes(b"")
    for i in range(inode_shift):
        (root / f"tmp{i}").unlink()

    def tool():
        _mkfile(root, "bin/tool", b"\x7fELF" + bytes(range(256)) * 40, 0o4755)       # setuid + capability
        os.setxattr(root / "bin/tool", "security.capability", CAPABILITY)

    def config():
        _mkfile(root, "etc/config", b"key=value\n")
        os.setxattr(root / "etc/config", "user.origin", b"pybuild")
        os.setxattr(root / "etc/config", "user.binary", b"\x00\xff\xfe")
        os.chown(root / "etc/config", 1234, 5678)                                    # ids unknown on the host

    def devices():
        (root / "dev").mkdir(exist_ok=True)
        os.mknod(root / "dev/null", stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(root / "dev/loop0", stat.S_IFBLK, os.makedev(7, 0))
        os.mkfifo(root / "dev/fifo")
        for name, mode in (("null", 0o666), ("loop0", 0o660), ("fifo", 0o600)):
            os.chmod(root / "dev" / name, mode)                                      # not the umask's

    def dirs():
        (root / "empty").mkdir()
        (root / "tmp").mkdir()
        os.chmod(root / "tmp", 0o1777)                                               # sticky

    files = [
        tool, config, devices, dirs,
        lambda: _mkfile(root, "bin/group-tool", b"g", 0o2711),                        # setgid
        lambda: _mkfile(root, LONG_NAME, b"long\n"),
        lambda: _mkfile(root, UNICODE, "ünïcødé\n".encode()),
        lambda: _mkfile(root, "big.bin", bytes(range(256)) * 12000),                  # > 1 MiB
    ]
    links = [
        lambda: (root / "lib").mkdir(exist_ok=True),
        lambda: os.link(root / "etc/config", root / "lib/config.hard"),
        lambda: os.link(root / "etc/config", root / "a-hardlink"),
        lambda: os.symlink("../etc/config", root / "lib/config.rel"),
        lambda: os.symlink("/etc/passwd", root / "lib/abs"),
        lambda: os.symlink(LONG_TARGET, root / "lib/long"),
    ]
    if reverse:
        files.reverse()
        links = links[:1] + links[:0:-1]
    for step in files + links:
        step()
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
    os.utime(root, (mtime, mtime))
    return root


def layer_bytes(root: Path, **kw) -> bytes:
    out = io.BytesIO()
    write_layer(root, out, **kw)
    return out.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:", encoding="utf-8", errors="surrogateescape") as tf:
        return tf.getmembers()


# ------------------------------------------------------------------------------------------------
# Determinism
# ------------------------------------------------------------------------------------------------

def test_same_tree_made_differently_gives_identical_bytes(tmp_path):
    a = build_tree(tmp_path / "a")
    b = build_tree(tmp_path / "b", reverse=True, mtime=EPOCH + 99_999, inode_shift=37)
    assert os.stat(a / "etc/config").st_ino != os.stat(b / "etc/config").st_ino
    for compression in ("none", "gzip", "zstd"):
        assert layer_bytes(a, compression=compression, source_date_epoch=EPOCH) == \
            layer_bytes(b, compression=compression, source_date_epoch=EPOCH), compression
    # without an epoch the different mtimes show
    assert layer_bytes(a) != layer_bytes(b)


def test_entries_sorted_named_and_clamped(tmp_path):
    root = build_tree(tmp_path / "t")
    old = EPOCH - 5000
    os.utime(root / "etc/config", (old, old))               # older than the epoch: kept as is
    data = layer_bytes(root, source_date_epoch=EPOCH)
    infos = members(data)
    names = [ti.name for ti in infos]
    raw = [os.fsencode(n) for n in names]
    assert raw == sorted(raw)
    assert not any(n.startswith(("./", "/")) for n in names)
    for ti in infos:
        assert ti.uname == "" and ti.gname == ""
        assert "atime" not in ti.pax_headers and "ctime" not in ti.pax_headers
        same_inode = ti.name in ("etc/config", "a-hardlink", "lib/config.hard")
        assert ti.mtime == (old if same_inode else EPOCH)
    # directories carry a trailing slash in the raw headers, as docker/BuildKit write them
    assert b"bin/\x00" in data and b"dev/\x00" in data and b"./bin" not in data
    byname = {ti.name: ti for ti in infos}
    assert byname["etc/config"].uid == 1234 and byname["etc/config"].gid == 5678
    # hardlinks: the first name in sort order holds the data
    assert byname["a-hardlink"].isreg() and byname["a-hardlink"].size == len(b"key=value\n")
    assert byname["etc/config"].islnk() and byname["etc/config"].linkname == "a-hardlink"
    assert byname["lib/config.hard"].islnk() and byname["lib/config.hard"].linkname == "a-hardlink"
    assert byname[LONG_NAME].isreg() and byname["lib/long"].linkname == LONG_TARGET
    assert byname[UNICODE].isreg()
    assert byname["lib/abs"].linkname == "/etc/passwd"
    assert byname["dev/null"].ischr() and (byname["dev/null"].devmajor, byname["dev/null"].devminor) == (1, 3)
    assert byname["dev/loop0"].isblk() and byname["dev/loop0"].devminor == 0
    assert byname["dev/fifo"].isfifo()
    assert byname["bin/tool"].mode == 0o4755 and byname["bin/group-tool"].mode == 0o2711
    assert byname["tmp"].mode == 0o1777 and byname["empty"].isdir()
    assert byname["bin/tool"].pax_headers["SCHILY.xattr.security.capability"].encode(
        "utf-8", "surrogateescape") == CAPABILITY
    assert byname["a-hardlink"].pax_headers["SCHILY.xattr.user.binary"].encode(
        "utf-8", "surrogateescape") == b"\x00\xff\xfe"
    # the end: two zero blocks, no padding to a 10 KiB record
    assert data.endswith(bytes(1024)) and len(data) % 512 == 0


def test_sockets_are_skipped(tmp_path):
    import socket

    root = tmp_path / "t"
    root.mkdir()
    (root / "file").write_text("x")
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(root / "sock"))
        assert [ti.name for ti in members(layer_bytes(root))] == ["file"]
    finally:
        s.close()


def test_round_trip_write_unpack_write_is_identical(tmp_path):
    src = build_tree(tmp_path / "src")
    for epoch in (EPOCH, None):
        first = layer_bytes(src, source_date_epoch=epoch)
        dest = tmp_path / f"dest-{epoch}"
        result = unpack_layer(io.BytesIO(first), dest, mode="apply")
        assert result.skipped == ()
        assert result.diff_id == "sha256:" + hashlib.sha256(first).hexdigest()
        assert layer_bytes(dest, source_date_epoch=epoch) == first


def test_special_entries_survive_a_round_trip(tmp_path):
    src = build_tree(tmp_path / "src")
    dest = tmp_path / "dest"
    unpack_layer(io.BytesIO(layer_bytes(src, compression="gzip")), dest, mode="apply")
    for rel in ("etc", "etc/config", "lib/abs", "empty", "dev/null"):     # before anything reads them
        s = os.lstat(dest / rel)
        assert s.st_mtime_ns == s.st_atime_ns == os.lstat(src / rel).st_mtime_ns // 10**9 * 10**9
    st = os.lstat(dest / "etc/config")
    assert st.st_ino == os.lstat(dest / "lib/config.hard").st_ino == os.lstat(dest / "a-hardlink").st_ino
    assert st.st_nlink == 3 and (st.st_uid, st.st_gid) == (1234, 5678)
    assert os.getxattr(dest / "etc/config", "user.origin") == b"pybuild"
    assert os.getxattr(dest / "bin/tool", "security.capability") == CAPABILITY
    assert stat.S_IMODE(os.lstat(dest / "bin/tool").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(dest / "bin/group-tool").st_mode) == 0o2711
    assert stat.S_IMODE(os.lstat(dest / "tmp").st_mode) == 0o1777
    assert os.readlink(dest / "lib/long") == LONG_TARGET and os.readlink(dest / "lib/abs") == "/etc/passwd"
    assert (dest / LONG_NAME).read_bytes() == b"long\n"
    assert (dest / UNICODE).read_text() == "ünïcødé\n"
    assert os.lstat(dest / "dev/null").st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(os.lstat(dest / "dev/loop0").st_mode)
    assert stat.S_ISFIFO(os.lstat(dest / "dev/fifo").st_mode)
    assert list((dest / "empty").iterdir()) == []
    assert (dest / "big.bin").read_bytes() == (src / "big.bin").read_bytes()


def test_gnu_tar_lists_what_we_wrote(tmp_path):
    src = build_tree(tmp_path / "src")
    layer = tmp_path / "layer.tar"
    with open(layer, "wb") as f:
        write_layer(src, f, source_date_epoch=EPOCH)
    listing = subprocess.run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-tvf", str(layer)],
                             capture_output=True, check=True, text=True)
    assert listing.stderr == ""
    names = subprocess.run(["tar", "-tf", str(layer)], capture_output=True, check=True, text=True).stdout.split("\n")
    assert names[:-1] == [ti.name + ("/" if ti.isdir() else "") for ti in members(layer.read_bytes())]
    assert LONG_NAME in names and UNICODE in names and "dev/" in names
    out = listing.stdout
    assert "-rwsr-xr-x* 0/0" in out                                    # setuid, xattrs marked with *
    assert "1234/5678" in out
    assert any(line.startswith("hrw-r--r--  1234/5678") and line.endswith("etc/config link to a-hardlink")
               for line in out.splitlines())
    assert f"lib/long -> {LONG_TARGET}" in out
    assert any(line.startswith("crw-rw-rw-") and line.endswith("dev/null") and "1,3" in line
               for line in out.splitlines())
    assert any(line.startswith("brw-rw----") and "7,0" in line for line in out.splitlines())
    assert any(line.startswith("prw-------") for line in out.splitlines())
    assert any(line.startswith("drwxrwxrwt") and line.endswith("tmp/") for line in out.splitlines())
    # GNU tar extracts it, capability included
    ex = tmp_path / "gnu"
    ex.mkdir()
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", str(layer), "-C", str(ex)],
                   check=True, capture_output=True)
    assert os.getxattr(ex / "bin/tool", "security.capability") == CAPABILITY
    assert os.lstat(ex / "etc/config").st_ino == os.lstat(ex / "a-hardlink").st_ino


# ------------------------------------------------------------------------------------------------
# Compression and digests
# ------------------------------------------------------------------------------------------------

def _sha256sum(path: Path) -> str:
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, check=True, text=True).stdout
    return "sha256:" + out.split()[0]


@pytest.mark.parametrize("compression,cli", [("gzip", "gzip"), ("zstd", "zstd")])
def test_compressed_layers_decompress_to_the_same_tar(tmp_path, compression, cli):
    src = build_tree(tmp_path / "src")
    plain = tmp_path / "layer.tar"
    with open(plain, "wb") as f:
        ref = write_layer(src, f, source_date_epoch=EPOCH)
    assert ref.digest == ref.diff_id == _sha256sum(plain) and ref.compressed_size == ref.size == plain.stat().st_size
    blob = tmp_path / f"layer.{compression}"
    with open(blob, "wb") as f:
        d = write_layer(src, f, compression=compression, source_date_epoch=EPOCH)
    assert d.compression == compression
    assert d.diff_id == ref.diff_id and d.size == ref.size
    assert d.digest == _sha256sum(blob) and d.compressed_size == blob.stat().st_size < d.size
    decompressed = subprocess.run([cli, "-dc", str(blob)], capture_output=True, check=True).stdout
    assert decompressed == plain.read_bytes()
    res = unpack_layer(open(blob, "rb"), tmp_path / "out")
    assert (res.diff_id, res.size, res.compression) == (d.diff_id, d.size, compression)


def test_gzip_is_one_deterministic_member_whatever_the_thread_count(tmp_path):
    data = (b"".join(b"line %d of some text\n" % i for i in range(150_000)) + os.urandom(300_000)) * 2  # ~7 MiB
    outs = []
    for threads in (1, 2, 4):
        buf = io.BytesIO()
        w = GzipWriter(buf, threads=threads)
        for i in range(0, len(data), 100_000):
            w.write(memoryview(data)[i:i + 100_000])
        w.close()
        outs.append(buf.getvalue())
    assert outs[0] == outs[1] == outs[2]
    blob = outs[0]
    assert blob[:4] == b"\x1f\x8b\x08\x00" and blob[4:8] == b"\x00\x00\x00\x00"   # no FNAME, mtime 0
    assert gzip.decompress(blob) == data
    d = zlib.decompressobj(31)
    assert d.decompress(blob) == data and d.eof and d.unused_data == b""          # a single member
    single = zlib.compress(data, 6)
    assert len(blob) < len(single) * 1.01                                         # ratio kept (dictionaries)
    (tmp_path / "x.gz").write_bytes(blob)
    assert subprocess.run(["gzip", "-t", str(tmp_path / "x.gz")]).returncode == 0


def test_gzip_level_and_empty_stream(tmp_path):
    for level in (1, 9):
        buf = io.BytesIO()
        w = compressor("gzip", buf, level=level)
        w.write(b"abc" * 1000)
        w.close()
        assert gzip.decompress(buf.getvalue()) == b"abc" * 1000
    buf = io.BytesIO()
    w = compressor("gzip", buf)
    w.close()
    assert gzip.decompress(buf.getvalue()) == b""
    with pytest.raises(LayerError):
        compressor("lz4", io.BytesIO())


def test_detect_and_decompress_every_format():
    payload = b"tar bytes " * 5000
    zstd = zstandard.ZstdCompressor().compress(payload)
    cases = {"gzip": gzip.compress(payload), "zstd": zstd, "bzip2": bz2.compress(payload),
             "xz": lzma.compress(payload), "none": payload}
    for kind, blob in cases.items():
        assert detect(blob[:compress.MAGIC_LENGTH]) == kind
        reader, found = open_decompressed(io.BytesIO(blob))
        assert found == kind
        out = b""
        while chunk := reader.read(7000):
            out += chunk
        assert out == payload, kind
    # a plain tar whose first entry is named "BZh..." is not bzip2
    assert detect(b"BZh9-not-a-bzip2-stream") == "none"


def test_gzip_reader_members_padding_and_corruption():
    blob = gzip.compress(b"one ") + gzip.compress(b"two") + bytes(600)
    reader, _ = open_decompressed(io.BytesIO(blob))
    assert reader.read() == b"one two"
    truncated = gzip.compress(os.urandom(50_000))[:-100]
    with pytest.raises(LayerError, match="ends early"):
        open_decompressed(io.BytesIO(truncated))[0].read()
    corrupt = bytearray(gzip.compress(b"x" * 10000))
    corrupt[20] ^= 0xFF
    with pytest.raises(LayerError, match="corrupt gzip"):
        open_decompressed(io.BytesIO(bytes(corrupt)))[0].read()


def test_hashing_writer_counts_and_hashes():
    out = io.BytesIO()
    w = HashingWriter(out)
    w.write(b"abc")
    w.write(memoryview(b"def"))
    assert w.size == 6 and out.getvalue() == b"abcdef"
    assert w.digest == "sha256:" + hashlib.sha256(b"abcdef").hexdigest()


def test_headers_for_values_ustar_cannot_hold():
    name = "é".encode() * 60
    hdr = tar_header(name, b"0", 0o644, 3_000_000, 5, -10, size=0)
    ti = tarfile.open(fileobj=io.BytesIO(hdr + bytes(1024))).next()
    assert (ti.name, ti.uid, ti.gid, ti.mtime) == (name.decode(), 3_000_000, 5, -10)
    raw = b"caf\xe9-latin1"                                  # not UTF-8: kept byte for byte
    hdr = tar_header(raw, b"0", 0o644, 0, 0, 0)
    tf = tarfile.open(fileobj=io.BytesIO(hdr + bytes(1024)), encoding="utf-8", errors="surrogateescape")
    assert os.fsencode(tf.next().name) == raw


# ------------------------------------------------------------------------------------------------
# Overlay upper dirs
# ------------------------------------------------------------------------------------------------

def test_overlay_whiteouts_become_oci_entries(tmp_path):
    upper = tmp_path / "upper"
    upper.mkdir()
    os.mknod(upper / "gone", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "opq").mkdir()
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "opq", "trusted.overlay.origin", b"\x00\x01")
    (upper / "opq/child").write_text("c")
    os.mknod(upper / "opq/sub-gone", stat.S_IFCHR, os.makedev(0, 0))
    for p in (upper / "gone", upper / "opq", upper / "opq/child", upper / "opq/sub-gone"):
        os.utime(p, (EPOCH + 10, EPOCH + 10), follow_symlinks=False)

    oci = members(layer_bytes(upper, overlay_whiteouts=True, source_date_epoch=EPOCH))
    assert [ti.name for ti in oci] == [".wh.gone", "opq", "opq/.wh..wh..opq", "opq/.wh.sub-gone", "opq/child"]
    byname = {ti.name: ti for ti in oci}
    assert byname[".wh.gone"].isreg() and byname[".wh.gone"].size == 0 and byname[".wh.gone"].mode == 0o600
    assert byname["opq/.wh..wh..opq"].isreg() and byname["opq/.wh..wh..opq"].mtime == EPOCH
    assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for ti in oci for k in ti.pax_headers)

    raw = members(layer_bytes(upper, source_date_epoch=EPOCH))              # not asked: kept as they are
    assert [ti.name for ti in raw] == ["gone", "opq", "opq/child", "opq/sub-gone"]
    assert raw[0].ischr() and not any(k.startswith("SCHILY.xattr.trusted.overlay") for ti in raw
                                      for k in ti.pax_headers)


def test_real_overlay_upper_dir(tmp_path):
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for d in (lower, upper, work, merged):
        d.mkdir()
    (lower / "keep").write_text("k")
    (lower / "remove-me").write_text("r")
    (lower / "dir").mkdir()
    (lower / "dir/old").write_text("o")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={upper},workdir={work},redirect_dir=off,metacopy=off",
                    str(merged)], check=True)
    try:
        (merged / "remove-me").unlink()
        import shutil
        shutil.rmtree(merged / "dir")
        (merged / "dir").mkdir()
        (merged / "dir/new").write_text("n")
        (merged / "added").write_text("a")
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    names = [ti.name for ti in members(layer_bytes(upper, overlay_whiteouts=True, source_date_epoch=EPOCH))]
    assert names == [".wh.remove-me", "added", "dir", "dir/.wh..wh..opq", "dir/new"]


def test_incomplete_overlay_upper_dirs_are_refused(tmp_path):
    upper = tmp_path / "upper"
    (upper / "moved").mkdir(parents=True)
    os.setxattr(upper / "moved", "trusted.overlay.redirect", b"/elsewhere")
    with pytest.raises(LayerError, match="redirect"):
        layer_bytes(upper, overlay_whiteouts=True)


# ------------------------------------------------------------------------------------------------
# Selected paths
# ------------------------------------------------------------------------------------------------

def test_paths_limits_the_layer_to_those_entries(tmp_path):
    root = build_tree(tmp_path / "t")
    names = [ti.name for ti in members(layer_bytes(root, paths=["/etc/config", "bin", "lib/abs", "etc/"]))]
    assert names == ["bin", "etc", "etc/config", "lib/abs"]
    with pytest.raises(UnsafeLayerError):                      # through a symlink: would read outside
        layer_bytes(root, paths=["lib/abs/x"])
    with pytest.raises(UnsafeLayerError):
        layer_bytes(root, paths=["../t/etc/config"])
    with pytest.raises(LayerError, match="No such file"):
        layer_bytes(root, paths=["missing"])


def test_write_tar_to_any_sink_and_empty_tree(tmp_path):
    (tmp_path / "empty").mkdir()
    sink = HashingWriter(None)
    write_tar(tmp_path / "empty", sink)
    assert sink.size == 1024 and sink.digest == "sha256:" + hashlib.sha256(bytes(1024)).hexdigest()


def test_errors_stop_the_pipeline(tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    (root / "big").write_bytes(os.urandom(3 << 20))

    class Full:
        def __init__(self):
            self.n = 0

        def write(self, data):
            self.n += len(data)
            if self.n > 1 << 20:
                raise OSError(28, "No space left on device")
            return len(data)

    for compression in ("none", "gzip", "zstd"):
        with pytest.raises(OSError, match="No space left"):
            write_layer(root, Full(), compression=compression, level=1)
    with pytest.raises(LayerError, match="missing-root"):
        write_layer(tmp_path / "missing-root", io.BytesIO())
