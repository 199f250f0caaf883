"""``pybuild run --rm IMAGE [CMD...]``: run an image's command in the foreground.

Docker's semantics for the process: ENTRYPOINT + CMD (arguments after the image replace CMD;
``--entrypoint`` replaces ENTRYPOINT and clears CMD), image Env plus ``-e``, WorkingDir or ``-w``,
User or ``-u``; the exit code is passed through. The container's writable layer is a fresh overlay
upper directory, discarded when the process ends (the full container lifecycle — kept containers,
start/stop, networking, limits — comes with the runtime).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import select
import signal
import sys
import termios
import threading
import tty as ttymod

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


def _copy_winsize(src: int, dst: int) -> None:
    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])


class _Terminal:
    """``-t``: a pty pair for the container, the user's terminal in raw mode while it runs (restored on
    every exit path), its window size copied over (and on SIGWINCH), and a thread moving bytes: stdin to
    the master (with ``-i``), the master to stdout until the container's side is closed everywhere."""

    def __init__(self, interactive: bool):
        self.master, self.slave = os.openpty()
        self.interactive = interactive
        self.in_fd, self.out_fd = sys.stdin.fileno(), sys.stdout.fileno()
        self.saved_attrs = None
        self.old_winch = None
        self.stop_r, self.stop_w = os.pipe()
        self.thread = threading.Thread(target=self._pump, name="pybuild-tty", daemon=True)

    def __enter__(self) -> "_Terminal":
        if os.isatty(self.in_fd):
            _copy_winsize(self.in_fd, self.master)
            if threading.current_thread() is threading.main_thread():
                self.old_winch = signal.signal(signal.SIGWINCH,
                                               lambda *_: _copy_winsize(self.in_fd, self.master))
            self.saved_attrs = termios.tcgetattr(self.in_fd)
            ttymod.setraw(self.in_fd, termios.TCSANOW)
        self.thread.start()
        return self

    def _pump(self) -> None:
        readers = [self.master, self.stop_r] + ([self.in_fd] if self.interactive else [])
        while True:
            ready = select.select(readers, [], [])[0]
            if self.master in ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError as err:          # EIO: every copy of the slave is closed
                    if err.errno != errno.EIO:
                        raise
                    data = b""
                if not data:
                    return
                _write_all(self.out_fd, data)
                continue                        # drain the container's output before anything else
            if self.in_fd in ready:
                try:
                    data = os.read(self.in_fd, 65536)
                except OSError:
                    data = b""
                if data:
                    _write_all(self.master, data)
                else:
                    readers.remove(self.in_fd)  # stdin at EOF: the container keeps its terminal
            if self.stop_r in ready:
                return

    def __exit__(self, *exc) -> None:
        try:
            os.close(self.slave)                # the container is gone: the master reads EIO once drained
            self.slave = -1
            self.thread.join(5.0)
            if self.thread.is_alive():
                os.write(self.stop_w, b"x")
                self.thread.join(1.0)
        finally:
            if self.saved_attrs is not None:
                with contextlib.suppress(termios.error):
                    termios.tcsetattr(self.in_fd, termios.TCSADRAIN, self.saved_attrs)
            if self.old_winch is not None:
                signal.signal(signal.SIGWINCH, self.old_winch)
            if not self.thread.is_alive():
                for fd in (self.master, self.stop_r, self.stop_w):
                    os.close(fd)


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
                with _Terminal(interactive) as terminal:
                    result = run(spec, terminal=terminal.slave)
            else:
                result = run(spec)
        finally:
            store.abort_snapshot(upper)
            store.abort_snapshot(work)
    sys.exit(result.exit_code)


main.add_command(run_command)
