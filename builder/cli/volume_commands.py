"""``pybuild volume create|ls|rm|inspect|prune`` with docker's flags and output."""

from __future__ import annotations

import sys

import click

from . import main, print_documents


def _volumes(ctx):
    from cache.paths import default_root

    from ..runtime.volumes import VolumeStore

    root = (ctx.find_root().obj or {}).get("root")
    return VolumeStore(root if root else default_root())


def volumes_in_use(store_root) -> dict[str, list[str]]:
    """Volume name -> ids of the containers using it, from the container records (none before the
    runtime's container store exists)."""
    try:
        from ..runtime.containers import volumes_in_use as from_records
    except ImportError:
        return {}
    return from_records(store_root)


def _in_use(ctx):
    """A function the volume store asks under its lock (so the answer is current)."""
    import os

    root = os.path.dirname(_volumes(ctx).root)
    return lambda: volumes_in_use(root)


@click.group("volume")
def volume_group():
    """Manage volumes."""


main.add_command(volume_group)


@volume_group.command("create")
@click.argument("name", required=False)
@click.option("-d", "--driver", default="local", show_default=True, help="Volume driver name (only local).")
@click.option("--label", "labels", multiple=True, help="Set metadata for a volume (key=value).")
@click.option("-o", "--opt", "opts", multiple=True, help="Driver options (the local driver here takes none).")
@click.option("--name", "name_flag", default=None, hidden=True)
@click.pass_context
def create_command(ctx, name, driver, labels, opts, name_flag):
    """Create a volume (a random name if none is given)."""
    from ..errors import UsageError
    from ..runtime.volumes import VolumeError, parse_labels

    if name and name_flag:
        raise UsageError("conflicting options: either specify --name or provide positional arg, not both")
    if driver != "local":
        raise VolumeError(f'create {name or name_flag or ""}: error looking up volume plugin {driver}: '
                          f'plugin "{driver}" not found')
    if opts:
        raise UsageError(f"--opt {opts[0]}: pybuild's local volumes take no driver options (type/device/o)")
    volume = _volumes(ctx).create(name or name_flag or None, parse_labels(labels))
    click.echo(volume.name)


@volume_group.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@click.option("-f", "--filter", "filters", multiple=True,
              help="Filter output (dangling=true|false, name=, label=KEY[=VALUE], driver=).")
@click.option("--format", "fmt", help="'json', a Go template, or 'table TEMPLATE'.")
@click.pass_context
def ls_command(ctx, quiet, filters, fmt):
    """List volumes."""
    from ..format import render_rows

    store = _volumes(ctx)
    needs_use = any(f.split("=", 1)[0].strip().lower() == "dangling" for f in filters)
    volumes = store.list(filters, _in_use(ctx) if needs_use else None)
    rows = [v.row() for v in volumes]
    text = render_rows(fmt, rows, [("Driver", "DRIVER"), ("Name", "VOLUME NAME")], quiet_field="Name", quiet=quiet)
    if text:
        click.echo(text)


volume_group.add_command(ls_command, "list")


@volume_group.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using a Go template.")
@click.pass_context
def inspect_command(ctx, names, fmt):
    """Display detailed information on one or more volumes."""
    from ..runtime.volumes import NoSuchVolume

    store = _volumes(ctx)
    results, errors = [], []
    for name in names:
        try:
            results.append(store.get(name).inspect())
        except NoSuchVolume as err:
            errors.append(err.message)
    print_documents(results, fmt)
    _fail(errors)


@volume_group.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes (no error if missing).")
@click.pass_context
def rm_command(ctx, names, force):
    """Remove one or more volumes (not while a container uses them)."""
    from ..runtime.volumes import VolumeError

    store = _volumes(ctx)
    in_use = _in_use(ctx)
    errors = []
    for name in names:
        try:
            store.remove(name, force=force, in_use=in_use)
        except VolumeError as err:
            errors.append(err.message)
            continue
        click.echo(name)
    _fail(errors)


volume_group.add_command(rm_command, "remove")


_PRUNE_WARNING = ("WARNING! This will remove all local volumes not used by at least one container.\n"
                  "Are you sure you want to continue?")


@volume_group.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (label=KEY[=VALUE], label!=...).")
@click.pass_context
def prune_command(ctx, force, filters):
    """Remove all unused local volumes."""
    from ..format import human_size

    store = _volumes(ctx)
    if not force:
        click.echo(_PRUNE_WARNING + " [y/N] ", nl=False)
        answer = sys.stdin.readline().strip()
        if answer not in ("y", "Y"):
            click.echo("Total reclaimed space: 0B")
            return
    result = store.prune(_in_use(ctx), filters)
    if result.deleted:
        click.echo("Deleted Volumes:\n" + "".join(f"{name}\n" for name in result.deleted))
    click.echo(f"Total reclaimed space: {human_size(result.reclaimed, 4)}")


def _fail(errors: list[str]) -> None:
    if errors:
        for message in errors:
            click.echo(f"error: {message}", err=True)
        sys.exit(1)
