"""A file tree as comparable data: what a layer must carry through any round trip.

``tree_manifest(root)`` maps each path (relative, ``"."`` for the root itself) to an ``Entry``: type,
permission bits (setuid/setgid/sticky included), numeric owner, size and sha256 of regular files,
symlink target, device numbers, xattrs, and -- for hardlinks -- the first path (in sort order) of
the group of paths that share the inode *inside the tree*. Times are left out: they are not what
the comparisons here are about (reproducibility tests compare image digests instead).

``diff_trees(a, b)`` lists the differences as readable lines (empty when the trees are the same),
so ``assert not diff_trees(...)`` fails with a message a person can act on.

``make_special_rootfs(root)`` builds the fixture tree with every kind of entry that is easy to lose:
a hardlink pair, a symlink (and a dangling one), a setuid and a setgid file, a sticky directory, a file
with ``user.*`` and ``security.capability`` xattrs, an empty directory, a fifo, a file owned by a
non-root user, a long name, a non-ASCII name and an empty file.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

# Labels the host puts on files, not part of any image.
IGNORED_XATTRS = ("security.selinux",)
# (path, name) of the empty-valued xattr of the special rootfs
EMPTY_XATTR = ("bin/ping", "user.empty")

# security.capability v2 for cap_net_raw (bit 13) in the permitted and effective sets
# (what `setcap cap_net_raw+ep FILE` writes).
CAP_NET_RAW_EP = bytes.fromhex("01000002" "00200000" "00000000" "00000000" "00000000")


@dataclass(frozen=True)
class Entry:
    kind: str                      # "dir", "file", "symlink", "fifo", "char", "block", "socket"
    mode: int                      # permission bits incl. setuid/setgid/sticky
    uid: int
    gid: int
    size: int = 0                  # regular files only
    sha256: str = ""               # regular files only
    target: str = ""               # symlinks only
    rdev: tuple = ()               # devices only (major, minor)
    xattrs: tuple = ()             # ((name, value bytes), ...) sorted
    hardlink_group: str = ""       # first path of the inode's group within the tree, if it has more than one

    def describe(self) -> str:
        parts = [self.kind, f"mode={self.mode:04o}", f"owner={self.uid}:{self.gid}"]
        if self.kind == "file":
            parts += [f"size={self.size}", f"sha256={self.sha256[:12]}"]
        if self.target:
            parts.append(f"target={self.target!r}")
        if self.rdev:
            parts.append(f"rdev={self.rdev}")
        if self.xattrs:
            parts.append("xattrs={" + ", ".join(f"{k}={v!r}" for k, v in self.xattrs) + "}")
        if self.hardlink_group:
            parts.append(f"hardlink-of={self.hardlink_group!r}")
        return " ".join(parts)


_KINDS = ((stat.S_ISDIR, "dir"), (stat.S_ISREG, "file"), (stat.S_ISLNK, "symlink"), (stat.S_ISFIFO, "fifo"),
          (stat.S_ISCHR, "char"), (stat.S_ISBLK, "block"), (stat.S_ISSOCK, "socket"))


def _kind(st_mode: int) -> str:
    for test, name in _KINDS:
        if test(st_mode):
            return name
    return "unknown"


def _xattrs(path: str) -> tuple:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    out = []
    for name in sorted(names):
        if name in IGNORED_XATTRS:
            continue
        out.append((name, os.getxattr(path, name, follow_symlinks=False)))
    return tuple(out)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_manifest(root: str | Path, *, include_root: bool = True) -> dict[str, Entry]:
    root = os.fspath(root)
    stats: dict[str, os.stat_result] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in dirnames + sorted(filenames):
            path = os.path.join(dirpath, name)
            stats[os.path.relpath(path, root)] = os.lstat(path)
    if include_root:
        stats["."] = os.lstat(root)
    groups: dict[tuple, list[str]] = {}
    for rel in sorted(stats):
        st = stats[rel]
        if not stat.S_ISDIR(st.st_mode):
            groups.setdefault((st.st_dev, st.st_ino), []).append(rel)
    out: dict[str, Entry] = {}
    for rel, st in stats.items():
        path = os.path.join(root, rel)
        kind = _kind(st.st_mode)
        group = groups.get((st.st_dev, st.st_ino), [])
        out[rel] = Entry(
            kind=kind, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
            size=st.st_size if kind == "file" else 0,
            sha256=_sha256(path) if kind == "file" else "",
            target=os.readlink(path) if kind == "symlink" else "",
            rdev=(os.major(st.st_rdev), os.minor(st.st_rdev)) if kind in ("char", "block") else (),
            xattrs=_xattrs(path),
            hardlink_group=group[0] if len(group) > 1 else "",
        )
    return dict(sorted(out.items()))


def diff_trees(expected: dict[str, Entry], actual: dict[str, Entry]) -> list[str]:
    lines = []
    for rel in sorted(set(expected) | set(actual)):
        a, b = expected.get(rel), actual.get(rel)
        if a == b:
            continue
        if b is None:
            lines.append(f"missing {rel}: {a.describe()}")
        elif a is None:
            lines.append(f"unexpected {rel}: {b.describe()}")
        else:
            lines.append(f"differs {rel}:\n    expected {a.describe()}\n    actual   {b.describe()}")
    return lines


def make_special_rootfs(root: str | Path, *, empty_xattr: bool = True) -> Path:
    """The fixture tree (see the module docstring); ``root`` must not exist yet. Needs root (chown, xattrs).

    ``empty_xattr`` adds ``user.empty`` with an empty value to ``bin/ping``: valid, kept by pybuild and
    docker, but dropped by tools built on Go's archive/tar (umoci), which ignores empty PAX records.
    """
    root = Path(root)
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    (root / "bin").mkdir()
    (root / "etc").mkdir()
    (root / "data").mkdir()
    (root / "data" / "empty").mkdir()
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    (root / "etc" / "hello.txt").write_bytes(b"hello, world\n")
    (root / "etc" / "empty-file").write_bytes(b"")
    (root / "data" / "random.bin").write_bytes(os.urandom(3 * 4096 + 17))
    # hardlinks: three names, one inode
    (root / "data" / "original").write_bytes(b"one inode, three names\n" * 100)
    os.link(root / "data" / "original", root / "data" / "hardlink")
    os.link(root / "data" / "original", root / "etc" / "hardlink-elsewhere")
    # symlinks
    os.symlink("../etc/hello.txt", root / "bin" / "relative-link")
    os.symlink("/etc/hello.txt", root / "bin" / "absolute-link")
    os.symlink("does/not/exist", root / "bin" / "dangling-link")
    # setuid, setgid
    (root / "bin" / "suid").write_bytes(b"#!/bin/sh\necho suid\n")
    os.chmod(root / "bin" / "suid", 0o4755)
    (root / "bin" / "sgid").write_bytes(b"#!/bin/sh\necho sgid\n")
    os.chmod(root / "bin" / "sgid", 0o2755)
    # xattrs: a user.* one and a file capability
    caps = root / "bin" / "ping"
    caps.write_bytes(b"\x7fELF pretend ping\n")
    os.chmod(caps, 0o755)
    os.setxattr(caps, "user.comment", b"has a capability")
    if empty_xattr:
        os.setxattr(caps, EMPTY_XATTR[1], b"")
    os.setxattr(caps, "security.capability", CAP_NET_RAW_EP)
    os.setxattr(root / "data", "user.dir-attr", b"on a directory")
    # a fifo
    os.mkfifo(root / "data" / "fifo", 0o640)
    os.chmod(root / "data" / "fifo", 0o640)
    # owners
    owned = root / "data" / "owned-by-1000"
    owned.write_bytes(b"not root's\n")
    os.chown(owned, 1000, 1001)
    os.chmod(owned, 0o600)
    os.chown(root / "data" / "empty", 65534, 65534)
    os.lchown(root / "bin" / "relative-link", 7, 8)
    # names
    (root / "data" / ("long-" + "n" * 150)).write_bytes(b"a long name\n")
    (root / "data" / "ünïcödé €.txt").write_bytes(b"non-ascii name\n")
    # a deep path (> 100 bytes: ustar cannot hold it in one field)
    deep = root / "data" / "a" / ("b" * 60) / ("c" * 60)
    deep.mkdir(parents=True)
    (deep / "file").write_bytes(b"deep\n")
    return root
