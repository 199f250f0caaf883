"""``pybuild run --rm IMAGE [CMD...]``: run an image's command in the foreground.

Docker's semantics for the process: ENTRYPOINT + CMD (arguments after the image replace CMD;
``--entrypoint`` replaces ENTRYPOINT and clears CMD), image Env plus ``-e``, WorkingDir or ``-w``,
User or ``-u``; the exit code is passed through. The container's writable layer is a fresh overlay
upper directory, discarded when the process ends (the full container lifecycle — kept containers,
start/stop, networking, limits — comes with the runtime).
"""

from __future__ import annotations

import os
import secrets
import sys

import click

from . import main


def _env_list(image_env, overrides, env_files) -> tuple:
    env = dict(entry.partition("=")[::2] for entry in image_env)
    for path in env_files:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line and not line.startswith("#"):
                    key, eq, value = line.partition("=")
                    env[key] = value if eq else os.environ.get(key, "")
    for item in overrides:
        key, eq, value = item.partition("=")
        if eq:
            env[key] = value
        elif key in os.environ:
            env[key] = os.environ[key]
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return tuple(f"{k}={v}" for k, v in env.items())


@click.command("run", context_settings={"allow_interspersed_args": False})
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--rm", is_flag=True, help="Remove the container when it exits (always, for now).")
@click.option("-e", "--env", "env", multiple=True, help="Set environment variables.")
@click.option("--env-file", "env_files", multiple=True, help="Read environment variables from a file.")
@click.option("-w", "--workdir", default=None, help="Working directory inside the container.")
@click.option("-u", "--user", default=None, help="Username or UID (format: <name|uid>[:<group|gid>]).")
@click.option("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image.")
@click.option("--hostname", default=None, help="Container host name.")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("--network", type=click.Choice(["host", "none"]), default="host", help="Network mode.")
@click.pass_context
def run_command(ctx, image, command, rm, env, env_files, workdir, user, entrypoint, hostname, interactive, tty,
                network):
    """Run a command in a new container (foreground)."""
    from cache import Store

    from ..errors import UsageError
    from ..images.service import load_config, resolve_image
    from ..sandbox import RunSpec, run

    store = Store.open((ctx.find_root().obj or {}).get("root"))
    image_id, _ = resolve_image(store, image)
    config = load_config(store, image_id)
    cfg = config.config
    if entrypoint is not None:
        argv = ([entrypoint] if entrypoint else []) + list(command)
    else:
        argv = list(cfg.entrypoint) + (list(command) if command else list(cfg.cmd))
    if not argv:
        raise UsageError(f"no command specified: image {image} has neither ENTRYPOINT nor CMD")
    from ..images.layers import ensure_snapshots

    container_id = secrets.token_hex(32)
    with store.lease(f"run {container_id[:12]}", [image_id]):
        lowers = tuple(reversed(ensure_snapshots(store, config.rootfs.diff_ids)))
        upper = str(store.prepare_snapshot())
        work = str(store.prepare_snapshot())
        try:
            spec = RunSpec(argv=tuple(argv), lower_dirs=lowers, upper_dir=upper, work_dir=work,
                           env=_env_list(cfg.env, env, env_files), cwd=workdir or cfg.working_dir or "/",
                           user=user if user is not None else cfg.user, hostname=hostname or container_id[:12],
                           network=network, stdin="inherit" if interactive and not tty else "null",
                           stdout="inherit", stderr="inherit", tty=tty)
            if tty:
                from ..sandbox.terminal import TerminalRelay

                with TerminalRelay(interactive) as relay:
                    result = run(spec, on_console=relay.attach)
            else:
                result = run(spec)
        finally:
            store.abort_snapshot(upper)
            store.abort_snapshot(work)
    sys.exit(result.exit_code)


main.add_command(run_command)
