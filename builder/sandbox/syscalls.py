"""The one seam between the sandbox and the kernel.

Every namespace, mount, credential, capability and seccomp operation the sandbox performs goes through
a ``Syscalls`` object, so the mount/namespace logic can be run against ``RecordingSyscalls`` (a fake
that records each call and can be told to fail) in unit tests that need neither root nor a kernel
that allows namespaces.  ``Syscalls`` is the real thing: ctypes calls into libc (``unshare``, ``mount``,
``umount2``, ``sethostname``, ``prctl``, raw ``syscall`` for ``pivot_root``/``capget``/``capset``) and
into libseccomp (``libseccomp.so.2``, Debian's ``libseccomp2``).  Calls that CPython already wraps
(``setgroups``, ``setresuid``, ``setresgid``, ``mknod``, ``chroot``, ``chdir``) use ``os`` -- the same libc
calls, with CPython's error handling.

Failures raise ``OSError`` with the errno and the call spelled out (``mount /x: Operation not
permitted``) so a setup error can be reported verbatim.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # kept out of the init process's imports: it starts for every RUN
    from typing import Any, Callable, Sequence

# --- namespace flags (linux/sched.h) ---------------------------------------------------------------
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# --- mount flags (linux/mount.h) -------------------------------------------------------------------
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# --- prctl options (linux/prctl.h) -----------------------------------------------------------------
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_KEEPCAPS = 8

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# statvfs f_flag bits -> the per-mount MS_* flags a bind remount must repeat to keep them.
_ST_TO_MS = ((os.ST_RDONLY, MS_RDONLY), (os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV),
             (os.ST_NOEXEC, MS_NOEXEC), (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
             (os.ST_RELATIME, MS_RELATIME))

# Raw syscall numbers for the calls glibc does not wrap (or wraps in ways we do not want).
_SYSCALL_NUMBERS = {
    "x86_64": {"pivot_root": 155, "capget": 125, "capset": 126},
    "aarch64": {"pivot_root": 41, "capget": 90, "capset": 91},
}

# libseccomp constants (seccomp.h)
_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_ERRNO = 0x00050000
_SCMP_FLTATR_ACT_BADARCH = 2
_SCMP_FLTATR_CTL_NNP = 3
_SCMP_CMP = {"ne": 1, "lt": 2, "le": 3, "eq": 4, "ge": 5, "gt": 6, "masked_eq": 7}

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def _scmp_errno(err: int) -> int:
    return _SCMP_ACT_ERRNO | (err & 0xFFFF)


_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _path_kind(path: str) -> str | None:
    """``"dir"``, ``"file"`` (anything else that exists) or ``None``; symlinks are not followed."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return "dir" if (st.st_mode & 0o170000) == 0o040000 else "file"


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def _raise(call: str, detail: str = "") -> None:
    err = ctypes.get_errno()
    text = f"{call} {detail}".strip()
    raise OSError(err, f"{text}: {os.strerror(err)}")


class Syscalls:
    """The real kernel interface.  One instance per process; creating one loads libc (and, lazily,
    libseccomp)."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self._libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                                     ctypes.c_char_p]
        self._libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self._libc.unshare.argtypes = [ctypes.c_int]
        self._libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        self._libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        self._libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        self._libc.syscall.restype = ctypes.c_long
        self._numbers = _SYSCALL_NUMBERS.get(os.uname().machine, {})
        self._seccomp: ctypes.CDLL | None = None
        self._programs: dict[int, bytes] = {}

    # --- namespaces and mounts -------------------------------------------------------------------
    def unshare(self, flags: int) -> None:
        if self._libc.unshare(flags) != 0:
            _raise("unshare", hex(flags))

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        if self._libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
            _raise("mount", f"{fstype or 'bind'} {source or ''} on {target}")

    def setns(self, fd: int, nstype: int) -> None:
        if self._libc.setns(fd, nstype) != 0:
            _raise("setns", hex(nstype))

    def umount2(self, target: str, flags: int = 0) -> None:
        if self._libc.umount2(_b(target), flags) != 0:
            _raise("umount2", target)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        if self._libc.syscall(self._nr("pivot_root"), _b(new_root), _b(put_old)) != 0:
            _raise("pivot_root", new_root)

    def chdir(self, path: str) -> None:
        os.chdir(path)

    def chroot(self, path: str) -> None:
        os.chroot(path)

    def mknod(self, path: str, mode: int, device: int) -> None:
        os.mknod(path, mode, device)

    def mount_flags(self, path: str) -> int:
        """The MS_* per-mount flags of the mount holding ``path`` (a bind remount must repeat them)."""
        flags = os.statvfs(path).f_flag
        return sum(ms for st, ms in _ST_TO_MS if flags & st)

    def path_kind(self, path: str) -> str | None:
        return _path_kind(path)

    # --- identity -------------------------------------------------------------------------------
    def sethostname(self, name: str) -> None:
        raw = name.encode()
        if self._libc.sethostname(raw, len(raw)) != 0:
            _raise("sethostname", name)

    def setgroups(self, gids: Sequence[int]) -> None:
        os.setgroups(list(gids))

    def setresgid(self, rgid: int, egid: int, sgid: int) -> None:
        os.setresgid(rgid, egid, sgid)

    def setresuid(self, ruid: int, euid: int, suid: int) -> None:
        os.setresuid(ruid, euid, suid)

    # --- capabilities and prctl -----------------------------------------------------------------
    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        ret = self._libc.prctl(option, arg2, arg3, arg4, arg5)
        if ret < 0:
            _raise("prctl", str(option))
        return ret

    def capget(self) -> tuple[int, int, int]:
        """(effective, permitted, inheritable) of the calling thread as 64-bit masks."""
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        if self._libc.syscall(self._nr("capget"), ctypes.byref(header), data) != 0:
            _raise("capget")
        join = lambda attr: getattr(data[0], attr) | (getattr(data[1], attr) << 32)  # noqa: E731
        return join("effective"), join("permitted"), join("inheritable")

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        for i in range(2):
            shift = 32 * i
            data[i].effective = (effective >> shift) & 0xFFFFFFFF
            data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
            data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
        if self._libc.syscall(self._nr("capset"), ctypes.byref(header), data) != 0:
            _raise("capset")

    # --- seccomp --------------------------------------------------------------------------------
    def seccomp_load(self, filt: Any) -> None:
        """Load ``filt`` (a ``seccomp.SeccompFilter``) for this thread: its compiled program from the
        cache when ``load_libraries(seccomp=filt)`` found one, else compiled with libseccomp now.

        no_new_privs stays off (libseccomp would set it by default): like BuildKit, setuid programs must
        keep working, which is why this must run while the caller still holds CAP_SYS_ADMIN.
        """
        program = self._programs.get(id(filt))
        if program is None:                 # not prepared by load_libraries: compile, never cache from here
            program = self._compile(filt, cache=False)
        buf = ctypes.create_string_buffer(program, len(program))
        fprog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
        if self._libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
            _raise("prctl(PR_SET_SECCOMP)")

    def _compile(self, filt: Any, cache: bool = True) -> bytes:
        """libseccomp's BPF program for ``filt`` (exported, not loaded); into the host's cache with
        ``cache`` (only before pivot_root: afterwards /run is the container's)."""
        from . import seccompcache

        lib = self._libseccomp()
        ctx = ctypes.c_void_p(lib.seccomp_init(_scmp_errno(filt.default_errno)))
        if not ctx.value:
            raise OSError(_errno.ENOMEM, "seccomp_init failed")
        try:
            self._seccomp_check(lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_NNP, 0), "seccomp_attr_set(nnp)")
            self._seccomp_check(lib.seccomp_attr_set(ctx, _SCMP_FLTATR_ACT_BADARCH, _scmp_errno(_errno.ENOSYS)),
                                "seccomp_attr_set(badarch)")
            for arch in filt.arches:
                token = lib.seccomp_arch_resolve_name(arch.encode())
                if token == 0:
                    continue
                ret = lib.seccomp_arch_add(ctx, token)
                if ret not in (0, -_errno.EEXIST):
                    self._seccomp_check(ret, f"seccomp_arch_add({arch})")
            for rule in filt.rules:
                nr = lib.seccomp_syscall_resolve_name(rule.syscall.encode())
                if nr == -1:        # unknown to this libseccomp: Docker skips these too
                    continue
                action = _SCMP_ACT_ALLOW if rule.errno is None else _scmp_errno(rule.errno)
                args = (_ArgCmp * max(1, len(rule.args)))(
                    *[_ArgCmp(a.index, _SCMP_CMP[a.op], a.value, a.value_two) for a in rule.args])
                self._seccomp_check(lib.seccomp_rule_add_array(ctx, action, nr, len(rule.args), args),
                                    f"seccomp_rule_add({rule.syscall})")
            fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
            try:
                self._seccomp_check(lib.seccomp_export_bpf(ctx, fd), "seccomp_export_bpf")
                os.lseek(fd, 0, os.SEEK_SET)
                chunks = []
                while chunk := os.read(fd, 65536):
                    chunks.append(chunk)
                program = b"".join(chunks)
            finally:
                os.close(fd)
        finally:
            lib.seccomp_release(ctx)
        if cache:
            seccompcache.store(filt, self._library_version_hint(), program)
        return program

    def load_libraries(self, seccomp: Any = None) -> None:
        """Load what is needed later now: after pivot_root the host's libraries (and Python's lib-dynload)
        are out of reach.  ``seccomp``: the filter to load later; its compiled program comes from the
        cache if it is there (libseccomp is then not loaded at all), else libseccomp is loaded to compile it."""
        import fcntl  # noqa: F401
        import socket  # noqa: F401

        if seccomp is not None:
            from . import seccompcache

            program = seccompcache.load(seccomp, self._library_version_hint())
            if program is None:
                program = self._compile(seccomp)
            self._programs[id(seccomp)] = program
            return
        self._libseccomp()

    @staticmethod
    def _library_version_hint() -> str:
        """libseccomp's file (its version is in the name) without loading it: the cache key."""
        for directory in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
                          "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib"):
            path = os.path.join(directory, "libseccomp.so.2")
            if os.path.exists(path):
                return os.path.realpath(path)
        return "libseccomp"

    @staticmethod
    def _seccomp_check(ret: int, what: str) -> None:
        if ret < 0:
            raise OSError(-ret, f"{what}: {os.strerror(-ret)}")

    def _libseccomp(self) -> ctypes.CDLL:
        if self._seccomp is None:
            try:
                lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
            except OSError as err:
                raise OSError(_errno.ENOENT, f"libseccomp.so.2 not found (apt-get install libseccomp2): {err}")
            lib.seccomp_init.restype = ctypes.c_void_p
            lib.seccomp_init.argtypes = [ctypes.c_uint32]
            lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
            lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
            lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
            lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
            lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
            lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                                   ctypes.c_void_p]
            lib.seccomp_load.argtypes = [ctypes.c_void_p]
            lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
            lib.seccomp_release.argtypes = [ctypes.c_void_p]
            self._seccomp = lib
        return self._seccomp

    # --- network --------------------------------------------------------------------------------
    def set_loopback_up(self) -> None:
        """Bring ``lo`` up in the current network namespace (a new one starts with it down)."""
        import fcntl
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            req = struct.pack("16sH14x", b"lo", 0)
            flags = struct.unpack("16sH14x", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, req))[1]
            fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))

    def _nr(self, name: str) -> int:
        try:
            return self._numbers[name]
        except KeyError:
            raise OSError(_errno.ENOSYS, f"{name}: syscall number unknown on {os.uname().machine}") from None


@dataclass(frozen=True, slots=True)
class Call:
    """One recorded call: the method name and its positional arguments."""

    name: str
    args: tuple


@dataclass
class _Failure:
    name: str
    errno: int
    when: Callable[[Call], bool] | None


@dataclass
class RecordingSyscalls:
    """A fake ``Syscalls`` that records every call and performs none of them.

    ``fail("mount", errno.EPERM, when=lambda c: c.args[1].endswith("/proc"))`` makes matching calls raise.
    ``paths`` answers ``path_kind`` for the given paths (others are looked up on the real filesystem, so
    a temporary directory can stand in for a rootfs).  ``flags`` answers ``mount_flags`` (default 0).
    """

    paths: dict[str, str | None] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)
    caps: tuple[int, int, int] = (0, 0, 0)
    calls: list[Call] = field(default_factory=list)
    _failures: list[_Failure] = field(default_factory=list, init=False, repr=False)

    def fail(self, name: str, errno: int, when: Callable[[Call], bool] | None = None) -> "RecordingSyscalls":
        self._failures.append(_Failure(name, errno, when))
        return self

    def names(self) -> list[str]:
        return [c.name for c in self.calls]

    def of(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    def _record(self, name: str, *args: Any) -> None:
        call = Call(name, args)
        self.calls.append(call)
        for f in self._failures:
            if f.name == name and (f.when is None or f.when(call)):
                raise OSError(f.errno, f"{name} {args}: {os.strerror(f.errno)}")

    def unshare(self, flags: int) -> None:
        self._record("unshare", flags)

    def mount(self, source, target, fstype, flags=0, data=None) -> None:
        self._record("mount", source, target, fstype, flags, data)

    def setns(self, fd, nstype) -> None:
        self._record("setns", fd, nstype)

    def umount2(self, target, flags=0) -> None:
        self._record("umount2", target, flags)

    def pivot_root(self, new_root, put_old) -> None:
        self._record("pivot_root", new_root, put_old)

    def chdir(self, path) -> None:
        self._record("chdir", path)

    def chroot(self, path) -> None:
        self._record("chroot", path)

    def mknod(self, path, mode, device) -> None:
        self._record("mknod", path, mode, device)

    def mount_flags(self, path) -> int:
        self._record("mount_flags", path)
        return self.flags.get(path, 0)

    def path_kind(self, path) -> str | None:
        if path in self.paths:
            return self.paths[path]
        return _path_kind(path)

    def sethostname(self, name) -> None:
        self._record("sethostname", name)

    def setgroups(self, gids) -> None:
        self._record("setgroups", tuple(gids))

    def setresgid(self, r, e, s) -> None:
        self._record("setresgid", r, e, s)

    def setresuid(self, r, e, s) -> None:
        self._record("setresuid", r, e, s)

    def prctl(self, option, arg2=0, arg3=0, arg4=0, arg5=0) -> int:
        self._record("prctl", option, arg2)
        return 0

    def capget(self) -> tuple[int, int, int]:
        self._record("capget")
        return self.caps

    def capset(self, effective, permitted, inheritable) -> None:
        self._record("capset", effective, permitted, inheritable)
        self.caps = (effective, permitted, inheritable)

    def seccomp_load(self, filt) -> None:
        self._record("seccomp_load", filt)

    def load_libraries(self, seccomp=None) -> None:
        self._record("load_libraries")

    def set_loopback_up(self) -> None:
        self._record("set_loopback_up")


__all__ = ["Syscalls", "RecordingSyscalls", "Call"]
