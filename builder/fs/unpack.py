"""Unpacking a layer tar safely, hashing it on the way: the diff_id comes out of the same single pass.

Safety rule: every write goes to a path from ``safepath`` (symlinks resolved *inside* the target,
as a chroot would), and every file is created fresh (``O_EXCL | O_NOFOLLOW``, existing entries are
removed first), so nothing is ever written through a symlink or into a hardlinked inode. Choices:

* ``..`` in an entry name or a hardlink target: **rejected** (``UnsafeLayerError``). No layer writer
  produces one; GNU tar refuses such members and Docker reports a breakout.
* absolute names (``/etc/passwd``) and absolute hardlink targets: **contained**, read relative to the
  target, as GNU tar, Docker and containerd do; old tools write them, and the meaning is clear.
* a symlink to ``/outside`` or ``../../x`` and then ``link/file``: **contained**: the file lands
  where the container will see it (``<target>/outside/file``); the symlink itself is kept verbatim.
* a hardlink to an entry that does not exist (yet) in the target, or to a directory: rejected
  (``LayerError``); symlink loops while resolving: rejected.

Docker's replacement rule: an entry replaces whatever is at its path, except that a directory over
a directory merges (the existing one keeps its contents, takes the new metadata).

``mode="snapshot"`` unpacks one layer into its own empty directory, to serve as an overlay lowerdir:
OCI whiteouts become overlay ones (see ``whiteout``). ``mode="apply"`` flattens a layer onto a rootfs
holding the layers below it (export, ``docker export``-like squashing): ``.wh.name`` deletes the path
and ``.wh..wh..opq`` empties the directory of what lower layers put there. Either way an entry of
this layer is never hidden by a whiteout in the same layer (image-spec: whiteouts apply to lower
layers only).

Metadata: mode (setuid/setgid/sticky included, set after chown, which clears them), numeric
uid/gid, mtime (atime = mtime), xattrs after the data (writing clears ``security.capability``);
directories get their mode and times last, after their children are written. What the kernel
refuses (an xattr, a device node when not root) is skipped and listed in ``UnpackResult.skipped``
rather than printed: the core never prints, callers turn the list into progress events.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from builder.errors import LayerError, UnsafeLayerError
from builder.fs import whiteout
from builder.fs.compress import open_decompressed
from builder.fs.digests import HashingReader
from builder.fs.safepath import resolve, split_name

Mode = Literal["snapshot", "apply"]
CHUNK = 1 << 20
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_XATTR_PREFIX = "SCHILY.xattr."


@dataclass(frozen=True, slots=True)
class UnpackResult:
    diff_id: str                # "sha256:<hex>" of the uncompressed tar, padding included
    size: int                   # bytes of the uncompressed tar
    compression: str            # as detected (or as given)
    entries: int                # tar entries processed
    skipped: tuple[str, ...]    # what the kernel refused, one human-readable line each


_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s")
# header types whose 512 bytes the fast path may parse; anything else (GNU sparse, unknown) goes to tarfile
_FAST_TYPES = frozenset((tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE,
                         tarfile.BLKTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE, tarfile.XHDTYPE,
                         tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK))


def _octal(field: bytes) -> int:
    return int(field.split(b"\x00", 1)[0].strip() or b"0", 8)


class _TarInfo(tarfile.TarInfo):
    """``tarfile``'s header, read faster, and with a memory of why the archive ended.

    ``frombuf`` parses a plain header in one ``struct`` call and checks the checksum with two
    adler32 calls (tarfile's own takes ~40 us: per-field helpers and two 504-value unpacks for its
    signed and unsigned sums); anything unusual (base-256 numbers, a checksum that only the signed
    sum matches, a corrupt or end-of-archive block, GNU sparse) is left to tarfile, so the results
    are tarfile's. ``fromtarfile`` records the header error that stopped the archive: tarfile
    treats a corrupt or truncated header after the first as the end, which would make a cut-off
    layer look complete.
    """

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        if len(buf) != tarfile.BLOCKSIZE or not buf[0] or buf[156:157] not in _FAST_TYPES:
            return super().frombuf(buf, encoding, errors)
        (name, mode, uid, gid, size, mtime, chksum, type_, linkname, _magic, _version, uname, gname,
         devmajor, devminor, prefix) = _USTAR.unpack_from(buf)
        try:
            chksum = _octal(chksum)
            numbers = (_octal(mode), _octal(uid), _octal(gid), _octal(size), _octal(mtime),
                       _octal(devmajor), _octal(devminor))
        except ValueError:
            return super().frombuf(buf, encoding, errors)
        # the sum of the header with the checksum field read as 8 spaces (256); adler32's low half is
        # 1 + sum mod 65521, exact for pieces of at most 256 bytes
        if chksum != 256 + (zlib.adler32(buf[:148]) & 0xFFFF) + (zlib.adler32(buf[156:412]) & 0xFFFF) \
                + (zlib.adler32(buf[412:]) & 0xFFFF) - 3:
            return super().frombuf(buf, encoding, errors)
        obj = cls()
        obj.mode, obj.uid, obj.gid, obj.size, obj.mtime, obj.devmajor, obj.devminor = numbers
        obj.chksum = chksum
        obj.type = type_
        obj.name = name.split(b"\x00", 1)[0].decode(encoding, errors)
        obj.linkname = linkname.split(b"\x00", 1)[0].decode(encoding, errors)
        obj.uname = uname.split(b"\x00", 1)[0].decode(encoding, errors)
        obj.gname = gname.split(b"\x00", 1)[0].decode(encoding, errors)
        if type_ == tarfile.AREGTYPE and obj.name.endswith("/"):
            obj.type = tarfile.DIRTYPE                  # old V7 tars: a directory is a file named "x/"
        if obj.type == tarfile.DIRTYPE:
            obj.name = obj.name.rstrip("/")
        prefix = prefix.split(b"\x00", 1)[0]
        if prefix and type_ not in tarfile.GNU_TYPES:
            obj.name = prefix.decode(encoding, errors) + "/" + obj.name
        return obj

    @classmethod
    def fromtarfile(cls, tf):
        try:
            return super().fromtarfile(tf)
        except tarfile.HeaderError as e:
            tf.stopped_by = e
            raise


class _Unpacker:
    def __init__(self, root: str, mode: Mode, reader: HashingReader):
        self.root = root
        self.mode = mode
        self.reader = reader
        self.is_root = os.geteuid() == 0
        self.skipped: list[str] = []
        self.ours: set[str] = set()              # paths (relative to root) this layer wrote, and their parents
        self.dirs: dict[str, tuple[int, int]] = {}   # dir path -> (mode, mtime ns), applied at the end
        self.parents: dict[tuple[str, ...], str] = {}  # resolved parent dirs; cleared when a dir is removed
        self.chown_ok = True
        self.buf = bytearray(CHUNK)
        self.tarfile: tarfile.TarFile | None = None

    # -- paths ------------------------------------------------------------------------------------

    def parent_dir(self, parts: list[str], entry: str, *, create: bool = True) -> str | None:
        """The real directory that entry ``parts`` goes into, created (0755) if missing (or ``None``
        if missing and not ``create``)."""
        key = tuple(parts[:-1])
        cached = self.parents.get(key)
        if cached is not None:
            return cached
        parent = resolve(self.root, list(key), follow_final=True, entry=entry)
        try:
            st = os.lstat(parent)
        except FileNotFoundError:
            if not create:
                return None
            try:
                os.makedirs(parent, 0o755)
            except (FileExistsError, NotADirectoryError):
                raise LayerError(f"cannot unpack {entry!r}: a parent of it is not a directory", path=entry) from None
            self.mark_ours(parent)
        except NotADirectoryError:
            raise LayerError(f"cannot unpack {entry!r}: a parent of it is not a directory", path=entry) from None
        else:
            if not stat.S_ISDIR(st.st_mode):
                raise LayerError(f"cannot unpack {entry!r}: its parent is not a directory", path=entry)
        self.parents[key] = parent
        return parent

    def rel(self, path: str) -> str:
        return path[len(self.root) + 1:] if path != self.root else ""

    def mark_ours(self, path: str) -> None:
        rel = self.rel(path)
        while rel and rel not in self.ours:
            self.ours.add(rel)
            rel = rel.rpartition("/")[0]

    def remove(self, path: str, st: os.stat_result) -> None:
        self.parents.clear()                        # a cached resolution may have passed through it
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)
            prefix = path + "/"
            for key in [k for k in self.dirs if k == path or k.startswith(prefix)]:
                del self.dirs[key]
        else:
            os.unlink(path)

    # -- entries ----------------------------------------------------------------------------------

    def entry(self, ti: tarfile.TarInfo) -> None:
        name = ti.name
        parts = split_name(name)
        if not parts:
            return                                  # the root itself ("./"): the target's own attributes stay
        base = parts[-1]
        snapshot = self.mode == "snapshot"
        if whiteout.is_opaque_marker(base):
            directory = self.parent_dir(parts, name, create=snapshot)
            if directory is not None:
                self.opaque(directory)
            return
        hidden = whiteout.whited_out_name(base)
        if hidden is not None:
            if hidden in (".", ".."):
                raise UnsafeLayerError(f"layer entry {name!r} whites out {hidden!r}", path=name)
            directory = self.parent_dir(parts, name, create=snapshot)   # apply: nothing to delete there
            if directory is not None:
                self.whiteout(os.path.join(directory, hidden), name)
            return
        if not (ti.isreg() or ti.isdir() or ti.issym() or ti.islnk() or ti.isfifo() or ti.isdev()):
            self.skipped.append(f"{name}: entry type {ti.type!r} not supported, skipped")
            return
        path = os.path.join(self.parent_dir(parts, name), base)
        if ti.islnk():
            self.hardlink(ti, path)
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            pass
        else:
            if not (ti.isdir() and stat.S_ISDIR(st.st_mode)):
                self.remove(path, st)
        if ti.isreg():
            self.regular(ti, path)
        elif ti.isdir():
            self.directory(ti, path)
        elif ti.issym():
            os.symlink(ti.linkname, path)
            self.metadata(ti, path, symlink=True)
        elif ti.isfifo():
            os.mkfifo(path, 0o600)
            self.metadata(ti, path)
        elif not self.device(ti, path):
            return
        self.mark_ours(path)

    def regular(self, ti: tarfile.TarInfo, path: str) -> None:
        fd = os.open(path, _CREATE, 0o600)
        try:
            if ti.sparse is not None:
                self.copy_sparse(ti, fd)
            else:
                self.copy(ti, fd)
            self.metadata(ti, path, fd=fd)
        finally:
            os.close(fd)

    def copy(self, ti: tarfile.TarInfo, fd: int) -> None:
        reader = self.reader
        if reader.tell() != ti.offset_data:
            reader.seek(ti.offset_data)
        remaining = ti.size
        view = memoryview(self.buf)
        while remaining:
            n = reader.readinto(view[:min(remaining, CHUNK)])
            if n == 0:
                raise LayerError(f"layer ends in the middle of {ti.name!r} (truncated?)", path=ti.name)
            written = 0
            while written < n:
                written += os.write(fd, view[written:n])
            remaining -= n

    def copy_sparse(self, ti: tarfile.TarInfo, fd: int) -> None:
        """GNU sparse files (rare in layers): let ``tarfile`` map the holes, then restore the size."""
        src = self.tarfile.extractfile(ti)
        while True:
            data = src.read(CHUNK)
            if not data:
                break
            os.write(fd, data)
        os.ftruncate(fd, ti.size)

    def directory(self, ti: tarfile.TarInfo, path: str) -> None:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass                                    # an existing directory: merge
        self.owner(ti, path)
        self.xattrs(ti, path)
        self.dirs[path] = (ti.mode & 0o7777, _mtime_ns(ti))

    def device(self, ti: tarfile.TarInfo, path: str) -> bool:
        kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK
        try:
            os.mknod(path, kind | 0o600, os.makedev(ti.devmajor, ti.devminor))
        except PermissionError:
            self.skipped.append(f"{ti.name}: device node {ti.devmajor}:{ti.devminor} not created "
                                f"(needs CAP_MKNOD)")
            return False
        self.metadata(ti, path)
        return True

    def hardlink(self, ti: tarfile.TarInfo, path: str) -> None:
        try:
            target_parts = split_name(ti.linkname)
        except UnsafeLayerError as e:
            raise UnsafeLayerError(f"hardlink {ti.name!r} -> {ti.linkname!r}: {e.message}", path=ti.name) from None
        if not target_parts:
            raise LayerError(f"hardlink {ti.name!r} points at the root directory", path=ti.name)
        target_dir = resolve(self.root, target_parts[:-1], follow_final=True, entry=ti.name)
        target = os.path.join(target_dir, target_parts[-1])
        if target == path:
            return
        try:
            tst = os.lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            raise LayerError(f"hardlink {ti.name!r} points at {ti.linkname!r}, which does not exist in the target",
                             path=ti.name) from None
        if stat.S_ISDIR(tst.st_mode):
            raise LayerError(f"hardlink {ti.name!r} points at directory {ti.linkname!r}", path=ti.name)
        try:
            self.remove(path, os.lstat(path))
        except FileNotFoundError:
            pass
        os.link(target, path, follow_symlinks=False)
        self.mark_ours(path)

    # -- whiteouts --------------------------------------------------------------------------------

    def whiteout(self, path: str, entry: str) -> None:
        if self.rel(path) in self.ours:
            return                                  # hides lower layers only, never this one's entries
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if self.mode == "apply":
            if st is not None:
                self.remove(path, st)
            return
        if st is not None:
            self.remove(path, st)
        try:
            whiteout.make_overlay_whiteout(path)
        except PermissionError:
            raise LayerError(f"cannot create the overlay whiteout for {entry!r}: needs CAP_MKNOD "
                             f"(snapshot mode runs as root)", path=entry) from None

    def opaque(self, directory: str) -> None:
        if self.mode == "snapshot":
            try:
                whiteout.mark_overlay_opaque(directory)
            except PermissionError:
                raise LayerError(f"cannot mark {self.rel(directory) or '/'!r} opaque: trusted.* xattrs need "
                                 f"CAP_SYS_ADMIN (snapshot mode runs as root)", path=self.rel(directory)) from None
            return
        self.clear_lower(directory)

    def clear_lower(self, directory: str) -> None:
        """Remove everything below ``directory`` that this layer did not write."""
        with os.scandir(directory) as it:
            children = list(it)
        for de in children:
            path = de.path
            st = de.stat(follow_symlinks=False)
            if self.rel(path) in self.ours:
                if stat.S_ISDIR(st.st_mode):
                    self.clear_lower(path)
            else:
                self.remove(path, st)

    # -- metadata ---------------------------------------------------------------------------------

    def owner(self, ti: tarfile.TarInfo, path: str, fd: int | None = None) -> None:
        if not self.chown_ok:
            return
        try:
            if fd is not None:
                os.fchown(fd, ti.uid, ti.gid)
            else:
                os.chown(path, ti.uid, ti.gid, follow_symlinks=False)
        except PermissionError:
            if self.is_root:
                raise
            self.chown_ok = False
            self.skipped.append("ownership not restored: not running as root")

    def xattrs(self, ti: tarfile.TarInfo, path: str, fd: int | None = None) -> None:
        pax = ti.pax_headers
        if not pax:
            return
        for key in sorted(pax):
            if not key.startswith(_XATTR_PREFIX):
                continue
            name = key[len(_XATTR_PREFIX):]
            if whiteout.is_overlay_xattr(name):
                self.skipped.append(f"{ti.name}: overlay xattr {name} not restored")
                continue
            value = pax[key].encode("utf-8", "surrogateescape")
            try:
                if fd is not None:
                    os.setxattr(fd, name, value)
                else:
                    os.setxattr(path, name, value, follow_symlinks=False)
            except OSError as e:
                self.skipped.append(f"{ti.name}: xattr {name} refused: {e.strerror}")

    def metadata(self, ti: tarfile.TarInfo, path: str, *, fd: int | None = None, symlink: bool = False) -> None:
        self.owner(ti, path, fd)
        if not symlink:
            if fd is not None:
                os.fchmod(fd, ti.mode & 0o7777)
            else:
                os.chmod(path, ti.mode & 0o7777)
        self.xattrs(ti, path, fd)
        ns = _mtime_ns(ti)
        if fd is not None:
            os.utime(fd, ns=(ns, ns))
        else:
            os.utime(path, ns=(ns, ns), follow_symlinks=False)

    def finish_dirs(self) -> None:
        """Directory modes and times, last: writing children changed the times, and a read-only
        directory must stay writable until its children are in (for a non-root unpack)."""
        for path in sorted(self.dirs, reverse=True):
            mode, ns = self.dirs[path]
            try:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    continue
                os.chmod(path, mode)
                os.utime(path, ns=(ns, ns), follow_symlinks=False)
            except FileNotFoundError:
                continue
            except OSError as e:
                raise LayerError(f"cannot set the mode or times of {self.rel(path)!r}: {e.strerror}",
                                 path=self.rel(path)) from None


def _mtime_ns(ti: tarfile.TarInfo) -> int:
    mtime = ti.mtime
    return mtime * 1_000_000_000 if isinstance(mtime, int) else round(mtime * 1e9)


def unpack_layer(stream: BinaryIO, target: Path | str, *, mode: Mode = "snapshot",
                 compression: str | None = None) -> UnpackResult:
    """Unpack the layer read from ``stream`` into ``target`` (created if missing), never writing outside it.

    ``compression=None`` detects it from the magic bytes (gzip, zstd, bzip2, xz or none). Returns the
    diff_id and size of the uncompressed tar, computed while unpacking.
    """
    if mode not in ("snapshot", "apply"):
        raise ValueError(f"unpack mode must be 'snapshot' or 'apply', not {mode!r}")
    os.makedirs(target, exist_ok=True)
    root = os.path.realpath(target)
    plain, kind = open_decompressed(stream, compression)
    reader = HashingReader(plain, CHUNK, prefetch=True)     # decompress + hash while we write files
    unpacker = _Unpacker(root, mode, reader)
    count = 0
    ti = None
    try:
        tf = tarfile.TarFile(fileobj=reader, mode="r", tarinfo=_TarInfo, encoding="utf-8", errors="surrogateescape")
        unpacker.tarfile = tf
        while (ti := tf.next()) is not None:
            tf.members.clear()                      # tarfile keeps every member; we need none
            count += 1
            try:
                unpacker.entry(ti)
            except OSError as e:
                raise LayerError(f"cannot unpack {ti.name!r}: {e.strerror or e}", path=ti.name) from None
        stopped_by = getattr(tf, "stopped_by", None)
        if not isinstance(stopped_by, (tarfile.EOFHeaderError, tarfile.EmptyHeaderError)):
            raise LayerError(f"corrupt or truncated layer tar after {count} entries: {stopped_by}")
        reader.drain()
        unpacker.finish_dirs()
    except tarfile.TarError as e:
        where = f" after {ti.name!r}" if ti is not None else ""
        raise LayerError(f"corrupt layer tar{where}: {e}") from None
    finally:
        reader.close()
    return UnpackResult(reader.digest, reader.size, kind, count, tuple(unpacker.skipped))
