"""``pybuild builder prune``: remove build cache (docker's ``builder prune``)."""

from __future__ import annotations

import sys

import click

from . import main


@click.group("builder")
def builder_group():
    """Manage builds."""


@builder_group.command("prune")
@click.option("-a", "--all", "all_records", is_flag=True, help="Remove all unused build cache, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, metavar="until=DURATION", help="Provide filter values (e.g. 'until=24h').")
@click.option("--keep-storage", default=None, metavar="SIZE", help="Amount of disk space to keep for cache.")
@click.pass_context
def builder_prune_command(ctx, all_records, force, filters, keep_storage):
    """Remove build cache."""
    from cache import Store

    from ..build.buildprune import parse_duration, prune_build_cache
    from ..dockerfile.runmount import ram_in_bytes
    from ..errors import UsageError
    from ..format import human_size

    until = None
    for item in filters:
        key, eq, value = item.partition("=")
        if not eq or key not in ("until", "unused-for"):
            raise UsageError(f"invalid filter {item!r}: only until=DURATION is supported")
        try:
            until = parse_duration(value)
        except ValueError:
            raise UsageError(f"invalid filter {item!r}: time: invalid duration {value!r}") from None
    keep = None
    if keep_storage:
        try:
            keep = ram_in_bytes(keep_storage)
        except ValueError:
            raise UsageError(f"invalid --keep-storage {keep_storage!r}: want a size like 10gb") from None
    if not force and sys.stdin.isatty():
        what = "all build cache" if all_records else "all dangling build cache"
        if not click.confirm(f"WARNING! This will remove {what}. Are you sure you want to continue?"):
            return
    store = Store.open((ctx.find_root().obj or {}).get("root"))
    report = prune_build_cache(store, all_records=all_records, until=until, keep_bytes=keep)
    if report.deleted:
        click.echo("Deleted build cache objects:")
        click.echo("\n".join(report.deleted))
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(report.reclaimed, 4)}")


main.add_command(builder_group)
