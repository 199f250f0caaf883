"""``pybuild run`` without the command-line framework: a stdlib parser for run's usual flags.

``pybuild run --rm busybox true`` is a start-up-bound command (CI runs it many times), and loading the
CLI framework and every command module costs more than the rest of the command line's work.  This
parser knows the flags people pass most; anything else (an unknown flag, ``--help``) returns None and
the full CLI handles the command, with the same code behind it (``runcmd``).
"""

from __future__ import annotations

import sys

_BOOL = {"--rm": "rm", "-d": "detach", "--detach": "detach", "-i": "interactive", "--interactive": "interactive",
         "-t": "tty", "--tty": "tty", "--init": "init", "--read-only": "read_only", "--privileged": "privileged",
         "-P": "publish_all", "--publish-all": "publish_all", "--no-healthcheck": "no_healthcheck"}
_VALUE = {"--name": "name", "--network": "network", "--net": "network", "-w": "workdir", "--workdir": "workdir",
          "-u": "user", "--user": "user", "--entrypoint": "entrypoint", "-h": "hostname", "--hostname": "hostname",
          "-m": "memory", "--memory": "memory", "--memory-swap": "memory_swap", "--cpus": "cpus",
          "--restart": "restart", "--stop-signal": "stop_signal", "--shm-size": "shm_size",
          "--pull": "pull_policy", "--platform": "platform", "--health-cmd": "health_cmd"}
_INT = {"--pids-limit": "pids_limit", "-c": "cpu_shares", "--cpu-shares": "cpu_shares", "--stop-timeout": "stop_timeout"}
_MULTI = {"-e": "env", "--env": "env", "--env-file": "env_files", "-v": "volumes", "--volume": "volumes",
          "-p": "publish", "--publish": "publish", "--expose": "expose", "--mount": "mounts", "--tmpfs": "tmpfs",
          "--cap-add": "cap_add", "--cap-drop": "cap_drop", "--device": "devices", "--security-opt": "security_opt",
          "-l": "labels", "--label": "labels", "--add-host": "add_hosts", "--dns": "dns", "--ulimit": "ulimits",
          "--network-alias": "network_aliases"}
_SHORT_BOOL = {"d", "i", "t", "P"}


def parse(argv: list[str]) -> tuple[dict, dict] | None:
    """(globals {root, debug}, run arguments) for ``[--root R] [--debug] run FLAGS IMAGE [CMD...]``."""
    from .runcmd import RUN_DEFAULTS

    glob = {"root": None, "debug": False}
    i = 0
    while i < len(argv) and argv[i] != "run":
        if argv[i] == "--debug":
            glob["debug"] = True
            i += 1
        elif argv[i] == "--root" and i + 1 < len(argv):
            glob["root"] = argv[i + 1]
            i += 2
        elif argv[i].startswith("--root="):
            glob["root"] = argv[i].split("=", 1)[1]
            i += 1
        else:
            return None
    if i >= len(argv):
        return None
    kw = dict(RUN_DEFAULTS)
    kw.update(detach=False, sig_proxy=True)
    multi: dict[str, list] = {}
    args = argv[i + 1:]
    j = 0
    while j < len(args):
        arg = args[j]
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, inline = arg.partition("=")
        if name in _BOOL and not eq:
            kw[_BOOL[name]] = True
        elif name in _VALUE or name in _INT or name in _MULTI:
            if eq:
                value = inline
            elif j + 1 < len(args):
                j += 1
                value = args[j]
            else:
                return None
            if name in _VALUE:
                kw[_VALUE[name]] = value
            elif name in _INT:
                try:
                    kw[_INT[name]] = int(value)
                except ValueError:
                    return None
            else:
                multi.setdefault(_MULTI[name], []).append(value)
        elif arg[0] == "-" and arg[1:2] != "-" and len(arg) > 2 and set(arg[1:]) <= _SHORT_BOOL:
            for letter in arg[1:]:
                kw[_BOOL["-" + letter]] = True
        else:
            return None                 # a flag this parser does not know: the full CLI decides
        j += 1
    if j >= len(args):
        return None
    for key, values in multi.items():
        kw[key] = tuple(values)
    if kw["pull_policy"] not in ("always", "missing", "never"):
        return None
    kw["image"] = args[j]
    kw["command"] = tuple(args[j + 1:])
    return glob, kw


def fast_run(argv: list[str]) -> int | None:
    """Run the command if the fast parser understands it; None: let the full CLI do it."""
    parsed = parse(argv)
    if parsed is None:
        return None
    glob, kw = parsed
    from cache.errors import StoreError
    from cache.paths import default_root

    from ..errors import PybuildError
    from .runcmd import run_container

    root = str(glob["root"] or default_root())
    image, command = kw.pop("image"), kw.pop("command")
    detach, sig_proxy = kw.pop("detach"), kw.pop("sig_proxy")
    try:
        code = run_container(root, image, command, detach=detach, sig_proxy=sig_proxy, kw=kw)
    except (PybuildError, StoreError) as err:
        if glob["debug"]:
            raise
        from ..render import render_error

        print(render_error(err), file=sys.stderr)
        return getattr(err, "exit_code", 1)
    return 0 if code is None else code


__all__ = ["parse", "fast_run"]
