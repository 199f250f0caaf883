"""``pybuild network create/ls/rm/inspect/prune`` with docker's names, flags and output."""

from __future__ import annotations


import click

from . import main, print_documents


def _manager(ctx):
    from cache import Store

    from ..runtime.network import NetworkManager

    root = (ctx.find_root().obj or {}).get("root")
    return NetworkManager(Store.open(root).root)


@click.group("network")
def network_group():
    """Manage networks."""


main.add_command(network_group)


@network_group.command("create")
@click.argument("name")
@click.option("-d", "--driver", default="bridge", help="Driver to manage the network (bridge).")
@click.option("--subnet", default=None, help="Subnet in CIDR format (default: a free /16 or /20).")
@click.option("--gateway", default=None, help="IPv4 gateway for the subnet.")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Set metadata on a network.")
@click.option("--internal", is_flag=True, help="Restrict external access to the network.")
@click.pass_context
def create_command(ctx, name, driver, subnet, gateway, labels, internal):
    """Create a network."""
    network = _manager(ctx).create(name, subnet=subnet, gateway=gateway, driver=driver, internal=internal,
                                   labels=dict(item.partition("=")[::2] for item in labels))
    click.echo(network.id)


def _matches(network, filters: list[tuple[str, str]]) -> bool:
    by_key: dict[str, list[str]] = {}
    for key, value in filters:
        by_key.setdefault(key, []).append(value)
    def label(value: str) -> bool:
        key, eq, wanted = value.partition("=")
        return key in network.labels and (not eq or network.labels[key] == wanted)

    checks = {"name": lambda v: v in network.name, "id": lambda v: network.id.startswith(v),
              "driver": lambda v: v == network.driver,
              "type": lambda v: v == ("builtin" if network.builtin else "custom"),
              "label": label, "scope": lambda v: v == "local"}
    return all(any(checks[key](v) for v in values) for key, values in by_key.items())


@network_group.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Filter output (name, id, driver, type=custom|builtin, label, scope).")
@click.option("--format", "fmt", default=None, help="Format the output using a Go template.")
@click.pass_context
def ls_command(ctx, quiet, no_trunc, filters, fmt):
    """List networks."""
    from ..errors import UsageError
    from ..format import render_rows

    parsed = []
    for item in filters:
        key, eq, value = item.partition("=")
        if not eq or key not in ("name", "id", "driver", "type", "label", "scope"):
            raise UsageError(f"invalid filter '{item}'" if not eq else f"invalid filter '{key}'")
        parsed.append((key, value))
    rows = [{"ID": n.id if no_trunc else n.id[:12], "Name": n.name, "Driver": n.driver, "Scope": "local",
             "IPv6": "false", "Internal": str(n.internal).lower(), "CreatedAt": n.created,
             "Labels": ",".join(f"{k}={v}" for k, v in sorted(n.labels.items()))}
            for n in _manager(ctx).list() if _matches(n, parsed)]
    text = render_rows(fmt, rows, [("ID", "NETWORK ID"), ("Name", "NAME"), ("Driver", "DRIVER"), ("Scope", "SCOPE")],
                       quiet_field="ID", quiet=quiet)
    if text:
        click.echo(text)


network_group.add_command(ls_command, "list")


@network_group.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def rm_command(ctx, names):
    """Remove one or more networks."""
    from ..runtime.network import NetworkError, NoSuchNetwork

    manager, failed = _manager(ctx), False
    for name in names:
        try:
            manager.remove(name)
        except NoSuchNetwork:
            click.echo(f"error: No such network: {name}", err=True)
            failed = True
            continue
        except NetworkError as err:
            click.echo(f"Error response from daemon: {err}", err=True)
            failed = True
            continue
        click.echo(name)
    if failed:
        ctx.exit(1)


network_group.add_command(rm_command, "remove")


@network_group.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", default=None, help="Format the output using a Go template.")
@click.pass_context
def inspect_command(ctx, names, fmt):
    """Display detailed information on one or more networks."""
    from ..runtime.network import NoSuchNetwork

    manager, found, failed = _manager(ctx), [], False
    for name in names:
        try:
            found.append(manager.inspect(name))
        except NoSuchNetwork:
            click.echo(f"error: No such network: {name}", err=True)
            failed = True
    print_documents(found, fmt)
    if failed:
        ctx.exit(1)


@network_group.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_context
def prune_command(ctx, force):
    """Remove all unused custom networks."""
    if not force:
        click.echo("WARNING! This will remove all custom networks not used by at least one container.")
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    removed = _manager(ctx).prune()
    if removed:
        click.echo("Deleted Networks:")
        for network in removed:
            click.echo(network.name)
