"""docker's volume copy-up: a new, empty volume mounted over a path the image has content at gets a
copy of that content first (``tar c | tar x``: types, owners, modes, times, xattrs, symlinks, hard
links, device nodes and fifos), and its directory takes the owner and mode of the image's.

The volume may already be mounted in a running container while it is filled (another container
created with it while it was still empty), and that container could swap what is being created for
symlinks. So nothing here follows a path it wrote: every entry is created and changed relative to
an open directory descriptor, files are opened ``O_NOFOLLOW``, and metadata is set through the
descriptor (or with ``AT_SYMLINK_NOFOLLOW``). The worst such a race can do is fail the copy.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from .mounts import MountError

_MAX_LINK_FDS = 256          # first copies of hard-linked inodes kept open to link to; past that, copies


def image_dir(tree, target: str):
    """(path in the tree, stat) of what the image has at ``target``, symlinks resolved inside the
    tree as the mount will resolve them; None when nothing is there."""
    from ..build.sources import resolve

    rel = resolve(tree, target.strip("/"))
    try:
        return rel, tree.lstat(rel)
    except (FileNotFoundError, NotADirectoryError):
        return None


def check_not_file(tree, target: str) -> None:
    found = image_dir(tree, target)
    if found and not stat.S_ISDIR(found[1].st_mode):
        raise MountError(f"cannot mount volume over existing file, file exists {target}")


def copy_up(tree, target: str, dest: str, *, lock_dir: str | None = None) -> bool:
    """Fill the empty directory ``dest`` with the image's content at ``target``; False if there was
    nothing to do (``dest`` not empty, or nothing in the image there). ``lock_dir`` (the volume's
    directory) is locked so that two containers created at once do not both copy."""
    found = image_dir(tree, target)
    if found is None:
        return False
    rel, st = found
    if not stat.S_ISDIR(st.st_mode):
        raise MountError(f"cannot mount volume over existing file, file exists {target}")
    lock = os.open(lock_dir or dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        top = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if os.listdir(top):
                return False
            copier = _Copier(tree)
            try:
                copier.children(rel, top)
            finally:
                copier.close()
            os.fchown(top, st.st_uid, st.st_gid)
            os.fchmod(top, stat.S_IMODE(st.st_mode))
        finally:
            os.close(top)
    finally:
        os.close(lock)
    return True


class _Copier:
    def __init__(self, tree):
        self.tree = tree
        self.first_copies: dict[tuple[int, int], int] = {}    # (dev, ino) in the image -> O_PATH fd of the copy

    def close(self) -> None:
        for fd in self.first_copies.values():
            os.close(fd)
        self.first_copies.clear()

    def children(self, rel: str, dir_fd: int) -> None:
        from ..build.sources import join

        for name in self.tree.listdir(rel):
            self.entry(join(rel, name), name, dir_fd)

    def entry(self, rel: str, name: str, dir_fd: int) -> None:
        st = self.tree.lstat(rel)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFDIR:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
            fd = _open_created(name, dir_fd, os.O_RDONLY | os.O_DIRECTORY)
            try:
                self.children(rel, fd)
                self._metadata_fd(fd, rel, st)
            finally:
                os.close(fd)
        elif kind == stat.S_IFREG:
            self._file(rel, name, dir_fd, st)
        elif kind == stat.S_IFLNK:
            os.symlink(self.tree.readlink(rel), name, dir_fd=dir_fd)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dir_fd, follow_symlinks=False)
            for key, value in self.tree.xattrs(rel).items():
                _try(os.setxattr, f"/proc/self/fd/{dir_fd}/{name}", key, value, follow_symlinks=False)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dir_fd, follow_symlinks=False)
        elif kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
            if kind == stat.S_IFIFO:
                os.mkfifo(name, 0o600, dir_fd=dir_fd)
            else:
                os.mknod(name, kind | 0o600, st.st_rdev, dir_fd=dir_fd)
            fd = _open_created(name, dir_fd, os.O_PATH)
            try:
                if stat.S_IFMT(os.fstat(fd).st_mode) != kind:
                    raise MountError(f"copying the image's content into a volume: {rel} changed while copied")
                self._metadata_path(f"/proc/self/fd/{fd}", rel, st)
            finally:
                os.close(fd)
        # sockets are not copied (tar skips them)

    def _file(self, rel: str, name: str, dir_fd: int, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        first = self.first_copies.get(key) if st.st_nlink > 1 else None
        if first is not None:
            os.link(f"/proc/self/fd/{first}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
            return
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            _copy_bytes(self.tree.host_path(rel), fd, st.st_size)
            self._metadata_fd(fd, rel, st)
        finally:
            os.close(fd)
        if st.st_nlink > 1 and len(self.first_copies) < _MAX_LINK_FDS:
            self.first_copies[key] = _open_created(name, dir_fd, os.O_PATH)

    def _metadata_fd(self, fd: int, rel: str, st: os.stat_result) -> None:
        os.fchown(fd, st.st_uid, st.st_gid)             # before the mode: chown clears set-id bits
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
        for key, value in self.tree.xattrs(rel).items():  # after chown, which drops security.capability
            _try(os.setxattr, fd, key, value)
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))

    def _metadata_path(self, proc_path: str, rel: str, st: os.stat_result) -> None:
        """The same through ``/proc/self/fd/N`` of an O_PATH descriptor (nodes and fifos: opening
        them for real could block or reach a device)."""
        os.chown(proc_path, st.st_uid, st.st_gid)
        os.chmod(proc_path, stat.S_IMODE(st.st_mode))
        for key, value in self.tree.xattrs(rel).items():
            _try(os.setxattr, proc_path, key, value)
        os.utime(proc_path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _open_created(name: str, dir_fd: int, flags: int) -> int:
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            raise MountError(f"copying the image's content into a volume: {name} was replaced while copied") from None
        raise


def _copy_bytes(src: str, out: int, size: int) -> None:
    """File content by copy_file_range (read/write where the kernel refuses it)."""
    fin = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        left = size
        try:
            while left > 0:
                n = os.copy_file_range(fin, out, min(left, 1 << 30))
                if n == 0:
                    break
                left -= n
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
                raise
            while True:
                chunk = os.read(fin, 1 << 20)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
    finally:
        os.close(fin)


def _try(fn, *args, **kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except OSError:
        pass                          # an xattr the filesystem refuses: docker's archiver goes on, too


__all__ = ["copy_up", "image_dir", "check_not_file"]
