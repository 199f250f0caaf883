"""The RUN sandbox: one command in fresh namespaces on an overlay rootfs, as BuildKit runs it.

Public API::

    from builder.sandbox import RunSpec, run
    result = run(RunSpec(argv=shell_argv("make"), lower_dirs=[...], upper_dir=..., work_dir=...))
    result.exit_code, result.signal, result.stdout

Modules, one job each: ``spec`` (what to run), ``process`` (run it from the parent: scratch dir,
streaming, kill and cleanup), ``init`` (the sandbox's monitor / pid 1 / command processes),
``container`` (what happens inside the namespaces), ``rootfs`` and ``overlay`` (the mounts),
``users`` (USER lookup), ``caps`` and ``seccomp`` (privileges), ``etcfiles`` (hosts, resolv.conf),
``paths`` (confined path resolution and mount stubs), ``syscalls`` (the kernel seam: ``Syscalls`` and
``RecordingSyscalls``).

Names are loaded lazily so the sandbox's own init process, which imports this package, starts fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "run": "process", "RunResult": "process", "OutputCallback": "process",
    "RunSpec": "spec", "BindMount": "spec", "TmpfsMount": "spec", "HostEntry": "spec", "shell_argv": "spec",
    "DEFAULT_HOSTNAME": "spec", "DEFAULT_SHELL": "spec",
    "SandboxError": "errors",
    "ExecUser": "users", "resolve_user": "users",
    "Syscalls": "syscalls", "RecordingSyscalls": "syscalls",
    "DEFAULT_CAPS": "caps", "DEFAULT_MASK": "caps",
    "build_filter": "seccomp",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
