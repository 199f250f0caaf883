"""Container commands with docker's names, flags and output: run, create, start, attach, stop, restart,
kill, rm, ps, logs, wait, exec, cp, commit, export, container prune (and ``inspect`` of containers).

Every command first lets ``lifecycle.reconcile`` correct the states of containers whose monitor died,
so ``ps`` tells the truth and leftovers of killed monitors are cleaned by the next command.
"""

from __future__ import annotations

import sys

import click

from . import main, print_documents


def _root(ctx) -> str:
    from cache.paths import default_root

    root = (ctx.find_root().obj or {}).get("root")
    return str(root or default_root())


def _containers(ctx):
    from ..runtime.containers import ContainerStore
    from ..runtime.lifecycle import reconcile

    root = _root(ctx)
    reconcile(root)
    return root, ContainerStore(root)


def _run_options(f):
    """The flags ``run`` and ``create`` share."""
    options = [
        click.option("--name", default="", help="Assign a name to the container."),
        click.option("-e", "--env", "env", multiple=True, help="Set environment variables."),
        click.option("--env-file", "env_files", multiple=True, help="Read in a file of environment variables."),
        click.option("-w", "--workdir", default=None, help="Working directory inside the container."),
        click.option("-u", "--user", default=None, help="Username or UID (format: <name|uid>[:<group|gid>])."),
        click.option("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image."),
        click.option("-h", "--hostname", default=None, help="Container host name."),
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY."),
        click.option("--rm", is_flag=True, help="Automatically remove the container when it exits."),
        click.option("--network", "--net", "network", default="bridge", help="Connect a container to a network."),
        click.option("--network-alias", "network_aliases", multiple=True, help="Add network-scoped alias."),
        click.option("-p", "--publish", multiple=True, help="Publish a container's port(s) to the host."),
        click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports."),
        click.option("--expose", multiple=True, help="Expose a port or a range of ports."),
        click.option("-v", "--volume", "volumes", multiple=True, help="Bind mount a volume."),
        click.option("--mount", "mounts", multiple=True, help="Attach a filesystem mount to the container."),
        click.option("--tmpfs", multiple=True, help="Mount a tmpfs directory."),
        click.option("-m", "--memory", default="", help="Memory limit."),
        click.option("--memory-swap", default="", help="Swap limit equal to memory plus swap: '-1' for unlimited."),
        click.option("--cpus", default="", help="Number of CPUs."),
        click.option("-c", "--cpu-shares", default=0, type=int, help="CPU shares (relative weight)."),
        click.option("--pids-limit", default=0, type=int, help="Tune container pids limit (-1 for unlimited)."),
        click.option("--read-only", is_flag=True, help="Mount the container's root filesystem as read only."),
        click.option("--cap-add", multiple=True, help="Add Linux capabilities."),
        click.option("--cap-drop", multiple=True, help="Drop Linux capabilities."),
        click.option("--privileged", is_flag=True, help="Give extended privileges to this container."),
        click.option("--device", "devices", multiple=True, help="Add a host device to the container."),
        click.option("--init", is_flag=True, help="Run an init inside the container that forwards signals and "
                                                   "reaps processes."),
        click.option("--restart", default="no", help="Restart policy to apply when a container exits."),
        click.option("--security-opt", multiple=True, help="Security Options."),
        click.option("-l", "--label", "labels", multiple=True, help="Set meta data on a container."),
        click.option("--add-host", "add_hosts", multiple=True, help="Add a custom host-to-IP mapping (host:ip)."),
        click.option("--dns", multiple=True, help="Set custom DNS servers."),
        click.option("--stop-signal", default=None, help="Signal to stop the container."),
        click.option("--stop-timeout", default=None, type=int, help="Timeout (in seconds) to stop a container."),
        click.option("--health-cmd", default=None, help="Command to run to check health."),
        click.option("--health-interval", default=None, help="Time between running the check (ms|s|m|h)."),
        click.option("--health-timeout", default=None, help="Maximum time to allow one check to run (ms|s|m|h)."),
        click.option("--health-retries", default=None, type=int, help="Consecutive failures needed to report "
                                                                      "unhealthy."),
        click.option("--health-start-period", default=None, help="Start period for the container to initialize."),
        click.option("--no-healthcheck", is_flag=True, help="Disable any container-specified HEALTHCHECK."),
        click.option("--ulimit", "ulimits", multiple=True, help="Ulimit options."),
        click.option("--shm-size", default="", help="Size of /dev/shm."),
        click.option("--pull", "pull_policy", type=click.Choice(["always", "missing", "never"]), default="missing",
                     help="Pull image before running."),
        click.option("--platform", default=None, help="Set platform if server is multi-platform capable."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@main.command("create", context_settings={"allow_interspersed_args": False})
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@_run_options
@click.pass_context
def create_command(ctx, image, command, **kw):
    """Create a new container."""
    from ..runtime.runcmd import create_container

    _, cid = create_container(_root(ctx), image, command, kw)
    click.echo(cid)


@main.command("run", context_settings={"allow_interspersed_args": False})
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy received signals to the process.")
@_run_options
@click.pass_context
def run_command(ctx, image, command, detach, sig_proxy, **kw):
    """Run a command in a new container."""
    from ..runtime.runcmd import run_container

    code = run_container(_root(ctx), image, command, detach=detach, sig_proxy=sig_proxy, kw=kw)
    if code is not None:
        sys.exit(code)


@main.command("start")
@click.argument("containers", nargs=-1, required=True)
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN.")
@click.pass_context
def start_command(ctx, containers, attach, interactive):
    """Start one or more stopped containers."""
    from ..runtime.errors import ContainerError
    from ..runtime.runcmd import start_container_cli

    if attach or interactive:
        if len(containers) > 1:
            raise ContainerError("you cannot start and attach multiple containers at once")
        root, store = _containers(ctx)
        cid = store.resolve(containers[0])
        if store.state(cid).running:
            return
        code = start_container_cli(root, cid, attach=True, stdin=interactive, tty=store.config(cid).tty)
        if code is not None:
            sys.exit(code)
        return

    def start(root, store, cid):
        if not store.state(cid).running:
            start_container_cli(root, cid, attach=False)

    _each(ctx, containers, start)


@main.command("attach")
@click.argument("container")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy all received signals to the process.")
@click.pass_context
def attach_command(ctx, container, no_stdin, sig_proxy):
    """Attach local standard input, output, and error streams to a running container."""
    from ..runtime import attach as attach_mod
    from ..runtime.attachclient import relay
    from ..runtime.errors import ContainerConflict

    root, store = _containers(ctx)
    cid = store.resolve(container)
    config, state = store.config(cid), store.state(cid)
    if not state.running:
        raise ContainerConflict("You cannot attach to a stopped container, start it first", container)
    sock = attach_mod.connect(store.path(cid, "attach.sock"), stdin=config.open_stdin and not no_stdin)
    from ..runtime.runcmd import proxy_signals

    restore = proxy_signals(root, cid) if sig_proxy and not config.tty else None
    try:
        code = relay(sock, tty=config.tty, stdin=config.open_stdin and not no_stdin)
    finally:
        sock.close()
        if restore:
            restore()
    if code is not None:
        sys.exit(code)


def _each(ctx, refs, action) -> None:
    """Apply ``action(root, store, cid)`` to each container; print the name as docker does; errors at the end."""
    from ..runtime.errors import ContainerError

    root, store = _containers(ctx)
    failed = False
    for ref in refs:
        try:
            action(root, store, store.resolve(ref))
            click.echo(ref)
        except ContainerError as err:
            click.echo(f"error: {err.message}", err=True)
            failed = True
    if failed:
        sys.exit(1)


@main.command("stop")
@click.argument("containers", nargs=-1, required=True)
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait for stop before killing it.")
@click.pass_context
def stop_command(ctx, containers, timeout):
    """Stop one or more running containers."""
    from ..runtime.lifecycle import stop_container

    _each(ctx, containers, lambda root, store, cid: stop_container(root, cid, timeout))


@main.command("restart")
@click.argument("containers", nargs=-1, required=True)
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds to wait for stop before killing it.")
@click.pass_context
def restart_command(ctx, containers, timeout):
    """Restart one or more containers."""
    from ..runtime.lifecycle import stop_container

    def restart(root, store, cid):
        from ..runtime.runcmd import start_container_cli

        stop_container(root, cid, timeout)
        start_container_cli(root, cid, attach=False)

    _each(ctx, containers, restart)


@main.command("kill")
@click.argument("containers", nargs=-1, required=True)
@click.option("-s", "--signal", "signal_name", default="KILL", help="Signal to send to the container.")
@click.pass_context
def kill_command(ctx, containers, signal_name):
    """Kill one or more running containers."""
    from ..runtime.lifecycle import kill_container, parse_signal, wait_stopped

    sig = parse_signal(signal_name)

    def kill(root, store, cid):
        kill_container(root, cid, sig, stopping=sig == 9)
        if sig == 9:
            wait_stopped(root, cid, 10)

    _each(ctx, containers, kill)


@main.command("rm")
@click.argument("containers", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL).")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container.")
@click.pass_context
def rm_command(ctx, containers, force, volumes):
    """Remove one or more containers."""
    from ..runtime.lifecycle import remove_container

    _each(ctx, containers, lambda root, store, cid: remove_container(root, cid, force=force, volumes=volumes))


@main.command("pause")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def pause_command(ctx, containers):
    """Pause all processes within one or more containers."""
    from ..runtime.pausing import pause

    _each(ctx, containers, lambda root, store, cid: pause(root, cid))


@main.command("unpause")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def unpause_command(ctx, containers):
    """Unpause all processes within one or more containers."""
    from ..runtime.pausing import unpause

    _each(ctx, containers, lambda root, store, cid: unpause(root, cid))


@main.command("port")
@click.argument("container")
@click.argument("private_port", required=False)
@click.pass_context
def port_command(ctx, container, private_port):
    """List port mappings or a specific mapping for the container."""
    from ..runtime.errors import ContainerError

    _root_, store = _containers(ctx)
    cid = store.resolve(container)
    state = store.state(cid)
    ports = (state.network or {}).get("Ports", {}) if state.running else {}
    wanted = None
    if private_port:
        wanted = private_port if "/" in private_port else f"{private_port}/tcp"
    lines = []
    for port, bindings in sorted(ports.items(), key=lambda kv: (int(kv[0].split("/")[0]), kv[0])):
        if wanted is not None and port != wanted:
            continue
        for binding in bindings or ():
            address = f"{binding.get('HostIp') or '0.0.0.0'}:{binding.get('HostPort')}"
            lines.append(address if wanted else f"{port} -> {address}")
    if wanted is not None and not lines:
        raise ContainerError(f"No public port '{wanted}' published for {container}", container)
    for line in lines:
        click.echo(line)


@main.command("rename")
@click.argument("container")
@click.argument("new_name")
@click.pass_context
def rename_command(ctx, container, new_name):
    """Rename a container."""
    from ..runtime.containers import NAME_RE
    from ..runtime.errors import ContainerError

    _root_, store = _containers(ctx)
    if not NAME_RE.match(new_name):
        raise ContainerError(f"Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    store.rename(store.resolve(container), new_name.lstrip("/"))


@main.command("wait")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def wait_command(ctx, containers):
    """Block until one or more containers stop, then print their exit codes."""
    from ..runtime.lifecycle import wait_stopped

    root, store = _containers(ctx)
    for ref in containers:
        cid = store.resolve(ref)
        wait_stopped(root, cid, None)
        click.echo(store.state(cid).exit_code)


@main.command("ps")
@click.option("-a", "--all", "show_all", is_flag=True, help="Show all containers (default shows just running).")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided.")
@click.option("--format", "fmt", default=None, help="Pretty-print containers using a Go template.")
@click.option("-n", "--last", default=-1, type=int, help="Show n last created containers (includes all states).")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states).")
@click.pass_context
def ps_command(ctx, show_all, quiet, no_trunc, filters, fmt, last, latest):
    """List containers."""
    from ..format import render_rows
    from ..runtime.filters import container_filter
    from ..runtime.views import ps_row

    _root_, store = _containers(ctx)
    items = sorted(store.all(), key=lambda cs: cs[0].created, reverse=True)
    if latest:
        last = 1
    match = container_filter(filters)
    items = [(c, s) for c, s in items if match(c, s)]
    if not show_all and last < 0 and not filters:
        items = [(c, s) for c, s in items if s.running]
    if last >= 0:
        items = items[:last]
    rows = []
    for config, state in items:
        row = ps_row(config, state)
        if no_trunc:
            row["ID"] = config.id
            row["Command"] = '"' + " ".join(config.argv) + '"'
        rows.append(row)
    out = render_rows(fmt, rows, [("ID", "CONTAINER ID"), ("Image", "IMAGE"), ("Command", "COMMAND"),
                                  ("RunningFor", "CREATED"), ("Status", "STATUS"), ("Ports", "PORTS"),
                                  ("Names", "NAMES")], quiet_field="ID", quiet=quiet)
    if out:
        click.echo(out)


@main.command("logs")
@click.argument("container")
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("-n", "--tail", default="all", help='Number of lines to show from the end of the logs.')
@click.option("--since", default=None, help="Show logs since timestamp or relative (e.g. 42m).")
@click.pass_context
def logs_command(ctx, container, follow, timestamps, tail, since):
    """Fetch the logs of a container."""
    import time

    from ..runtime.durations import parse_duration

    from ..runtime.lifecycle import monitor_alive
    from ..runtime.logs import read_entries

    _root_, store = _containers(ctx)
    cid = store.resolve(container)
    since_ts = 0.0
    if since:
        since_ts = time.time() - parse_duration(since) if since[-1].isalpha() else float(since)

    def running() -> bool:
        state = store.state(cid)
        return state.running and monitor_alive(state)

    out = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    for entry in read_entries(store.path(cid, "ctr.log"), follow=running if follow else None, since=since_ts,
                              tail=-1 if tail == "all" else int(tail)):
        stream = out.get(entry.get("stream"), sys.stdout.buffer)
        text = entry.get("log", "")
        if timestamps:
            text = f"{entry.get('time')} {text}"
        stream.write(text.encode("utf-8", "surrogateescape"))
        stream.flush()


@main.command("exec", context_settings={"allow_interspersed_args": False})
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background.")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-e", "--env", "env", multiple=True, help="Set environment variables.")
@click.option("-u", "--user", default=None, help="Username or UID (format: <name|uid>[:<group|gid>]).")
@click.option("-w", "--workdir", default=None, help="Working directory inside the container.")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@click.pass_context
def exec_command(ctx, container, command, detach, interactive, tty, env, user, workdir, privileged):
    """Run a command in a running container."""
    from ..runtime.execcmd import exec_in_container

    root, store = _containers(ctx)
    cid = store.resolve(container)
    code = exec_in_container(root, cid, tuple(command), interactive=interactive, tty=tty, env=env, user=user,
                             workdir=workdir, privileged=privileged, detach=detach)
    sys.exit(code)


@main.command("cp")
@click.argument("source")
@click.argument("dest")
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information).")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.pass_context
def cp_command(ctx, source, dest, archive, follow_link):
    """Copy files/folders between a container and the local filesystem."""
    from ..runtime.filecmds import copy

    root, store = _containers(ctx)
    copy(root, store, source, dest, archive=archive, follow_link=follow_link)


@main.command("commit")
@click.argument("container")
@click.argument("repository", required=False)
@click.option("-a", "--author", default="", help="Author.")
@click.option("-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image.")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("-p", "--pause/--no-pause", default=True, help="Pause container during commit.")
@click.pass_context
def commit_command(ctx, container, repository, author, changes, message, pause):
    """Create a new image from a container's changes."""
    from ..runtime.filecmds import commit

    root, store = _containers(ctx)
    click.echo(commit(root, store, container, repository, author=author, changes=changes, message=message,
                      pause=pause))


@main.command("export")
@click.argument("container")
@click.option("-o", "--output", default=None, help="Write to a file, instead of STDOUT.")
@click.pass_context
def export_command(ctx, container, output):
    """Export a container's filesystem as a tar archive."""
    from ..runtime.filecmds import export

    root, store = _containers(ctx)
    export(root, store, container, output)


@main.group("container")
def container_group():
    """Manage containers."""


@container_group.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>').")
@click.pass_context
def container_prune_command(ctx, force, filters):
    """Remove all stopped containers."""
    from ..runtime.filters import container_filter
    from ..runtime.lifecycle import remove_container

    root, store = _containers(ctx)
    if not force:
        click.echo("WARNING! This will remove all stopped containers.")
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    match = container_filter(filters)
    removed = []
    for config, state in store.all():
        if not state.running and match(config, state):
            remove_container(root, config.id)
            removed.append(config.id)
    if removed:
        click.echo("Deleted Containers:")
        for cid in removed:
            click.echo(cid)
        click.echo("")
    click.echo("Total reclaimed space: 0B")


for _name, _cmd in (("ls", ps_command), ("list", ps_command), ("create", create_command), ("run", run_command),
                    ("start", start_command), ("stop", stop_command), ("restart", restart_command),
                    ("kill", kill_command), ("rm", rm_command), ("wait", wait_command), ("logs", logs_command),
                    ("exec", exec_command), ("cp", cp_command), ("commit", commit_command),
                    ("export", export_command), ("attach", attach_command), ("pause", pause_command),
                    ("unpause", unpause_command), ("port", port_command), ("rename", rename_command)):
    container_group.add_command(_cmd, _name)


def inspect_containers(ctx, names) -> tuple[list, list]:
    """For the top-level ``inspect``: (container documents, names that are not containers)."""
    from ..runtime.errors import NoSuchContainer
    from ..runtime.views import inspect_container

    _root_, store = _containers(ctx)
    found, missing = [], []
    for name in names:
        try:
            cid = store.resolve(name)
            found.append(inspect_container(store.config(cid), store.state(cid)))
        except NoSuchContainer:
            missing.append(name)
    return found, missing


@container_group.command("inspect")
@click.argument("containers", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using a Go template.")
@click.pass_context
def container_inspect_command(ctx, containers, fmt):
    """Display detailed information on one or more containers."""
    found, missing = inspect_containers(ctx, containers)
    print_documents(found, fmt)
    for name in missing:
        click.echo(f"error: No such container: {name}", err=True)
    if missing:
        sys.exit(1)
