"""Docker's default seccomp profile as data (moby ``profiles/seccomp/default.json``, 2024 edition).

The profile is an allow list: every syscall not allowed here fails with EPERM (``default_errno``).
Conditional entries are allowed only for a capability the process holds (``caps``), not for one it
holds (``not_caps``), on given architectures (``arches`` / ``not_arches``, Docker's arch names) or
from a kernel version on (``min_kernel``).  ``seccomp.build_filter`` turns this into rules for one
process; keep this file a faithful copy of the profile so it can be compared line by line.
"""

from __future__ import annotations

DEFAULT_ERRNO = 1  # EPERM

# Docker's archMap: the native architecture and the sub-architectures a filter also covers.
ARCH_MAP = {
    "x86_64": ("x86", "x32"),
    "aarch64": ("arm",),
    "s390x": ("s390",),
    "riscv64": (),
    "ppc64le": (),
}
# uname machine -> Docker's arch names used in includes/excludes.
DOCKER_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "s390x": "s390x", "riscv64": "riscv64", "ppc64le": "ppc64le",
               "i686": "x86", "armv7l": "arm"}

ALLOWED = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 clock_adjtime
clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create
epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2
execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork
fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex
futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32
getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid
getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter io_uring_register
io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32
lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64
madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall
mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal
pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink
readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename
renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity
sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send
sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid
setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area
set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd
signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx symlink
symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask
uname unlink unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write
writev
""".split()

# Each entry: names, and optional errno (None = allow), args ((index, op, value[, value_two]), ...),
# caps / not_caps / arches / not_arches / min_kernel conditions.  Order follows the profile.
CONDITIONAL = (
    dict(names=("process_vm_readv", "process_vm_writev", "ptrace"), min_kernel=(4, 8)),
    dict(names=("socket",), args=((0, "ne", 40),)),  # everything but AF_VSOCK
    dict(names=("personality",), args=((0, "eq", 0x0),)),
    dict(names=("personality",), args=((0, "eq", 0x8),)),
    dict(names=("personality",), args=((0, "eq", 0x20000),)),
    dict(names=("personality",), args=((0, "eq", 0x20008),)),
    dict(names=("personality",), args=((0, "eq", 0xFFFFFFFF),)),
    dict(names=("sync_file_range2", "swapcontext"), arches=("ppc64le",)),
    dict(names=("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush",
                "set_tls"), arches=("arm", "arm64")),
    dict(names=("arch_prctl",), arches=("amd64", "x32")),
    dict(names=("modify_ldt",), arches=("amd64", "x32", "x86")),
    dict(names=("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"), arches=("s390", "s390x")),
    dict(names=("riscv_flush_icache",), arches=("riscv64",)),
    dict(names=("open_by_handle_at",), caps=("CAP_DAC_READ_SEARCH",)),
    dict(names=("bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
                "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
                "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2",
                "unshare"), caps=("CAP_SYS_ADMIN",)),
    # clone without namespace flags (CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP).
    dict(names=("clone",), args=((0, "masked_eq", 0x7E020000, 0),), not_caps=("CAP_SYS_ADMIN",),
         not_arches=("s390", "s390x")),
    dict(names=("clone",), args=((1, "masked_eq", 0x7E020000, 0),), arches=("s390", "s390x"),
         not_caps=("CAP_SYS_ADMIN",)),
    # clone3's flags live in memory seccomp cannot read: ENOSYS makes libc fall back to clone.
    dict(names=("clone3",), errno=38, not_caps=("CAP_SYS_ADMIN",)),
    dict(names=("reboot",), caps=("CAP_SYS_BOOT",)),
    dict(names=("chroot",), caps=("CAP_SYS_CHROOT",)),
    dict(names=("delete_module", "init_module", "finit_module"), caps=("CAP_SYS_MODULE",)),
    dict(names=("acct",), caps=("CAP_SYS_PACCT",)),
    dict(names=("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"),
         caps=("CAP_SYS_PTRACE",)),
    dict(names=("iopl", "ioperm"), caps=("CAP_SYS_RAWIO",)),
    dict(names=("settimeofday", "stime", "clock_settime", "clock_settime64"), caps=("CAP_SYS_TIME",)),
    dict(names=("vhangup",), caps=("CAP_SYS_TTY_CONFIG",)),
    dict(names=("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"), caps=("CAP_SYS_NICE",)),
    dict(names=("syslog",), caps=("CAP_SYSLOG",)),
    dict(names=("bpf",), caps=("CAP_BPF",)),
    dict(names=("perf_event_open",), caps=("CAP_PERFMON",)),
)
