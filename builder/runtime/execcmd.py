"""``pybuild exec``: one more process in a running container, with the container's privileges."""

from __future__ import annotations

import os
import sys

from .containers import ContainerStore
from .errors import ContainerConflict, ContainerError
from .lifecycle import monitor_alive


def exec_in_container(root, cid: str, argv: tuple, *, interactive: bool, tty: bool, env=(), user=None, workdir=None,
                      privileged: bool = False, detach: bool = False) -> int:
    from ..sandbox.caps import capability_set
    from ..sandbox.enter import EnterSpec, ExecError, NotRunningError, run_in

    store = ContainerStore(root)
    config, state = store.config(cid), store.state(cid)
    if state.status != "running" or not monitor_alive(state):
        raise ContainerConflict(f"Container {cid} is not running", cid)
    if state.paused:
        raise ContainerConflict(f"Container {cid} is paused, unpause the container before exec", cid)
    from .createspec import runtime_env

    merged = dict(e.partition("=")[::2] for e in runtime_env(config))
    if tty:
        merged["TERM"] = "xterm"                # docker exec -t adds it, whatever the container has
    for item in env:
        key, eq, value = item.partition("=")
        if eq:
            merged[key] = value
        elif key in os.environ:
            merged[key] = os.environ[key]
    spec = EnterSpec(argv=tuple(argv), env=tuple(f"{k}={v}" for k, v in merged.items()),
                     cwd=workdir or config.working_dir or "/", user=config.user if user is None else user, tty=tty,
                     stdin="inherit" if interactive and not tty and not detach else "null",
                     stdout="inherit" if not detach else "pipe", stderr="inherit" if not detach else "pipe",
                     privileged=privileged or config.privileged,
                     caps=capability_set(config.cap_add, config.cap_drop),
                     seccomp="seccomp=unconfined" not in config.security_opt,
                     no_new_privs=any(o.startswith("no-new-privileges") for o in config.security_opt),
                     detach=detach)
    try:
        if tty:
            from ..sandbox.terminal import TerminalRelay

            with TerminalRelay(interactive) as relay:
                result = run_in(state.pid, spec, on_console=relay.attach, start_time=state.pid_start)
        else:
            result = run_in(state.pid, spec, start_time=state.pid_start)
    except NotRunningError:
        raise ContainerConflict(f"Container {cid} is not running", cid) from None
    except ExecError as err:
        error = ContainerError(err.message, cid)
        error.exit_code = err.exit_code
        raise error from None
    sys.stdout.flush()
    return result.exit_code


__all__ = ["exec_in_container"]
