"""Image commands with docker's names, flags and output: images, tag, rmi, inspect, history,
save, load, import, image prune, system df (and the ``image ...`` spellings)."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import click

from . import main, print_documents


def _image_users(ctx):
    """image id -> the (container id, running) pairs of the containers that use it."""
    from ..runtime.images_in_use import image_users

    return image_users(_root_of(ctx))


def _root_of(ctx) -> str:
    from cache.paths import default_root

    return str((ctx.find_root().obj or {}).get("root") or default_root())


def _store(ctx):
    from cache import Store

    root = (ctx.find_root().obj or {}).get("root")
    return Store.open(root)


@contextmanager
def _input(path: str | None):
    """``path`` opened for reading, or stdin for ``-``/None; an unreadable file is a usage error."""
    from ..errors import UsageError

    if path in (None, "-"):
        yield sys.stdin.buffer
        return
    try:
        stream = open(path, "rb")
    except OSError as err:
        raise UsageError(f"cannot open {path}: {err.strerror}") from None
    with stream:
        yield stream


def _echo_lines(text: str) -> None:
    if text:
        click.echo(text)


@click.group("image")
def image_group():
    """Manage images."""


@click.group("system")
def system_group():
    """Manage pybuild's state."""


main.add_command(image_group)
main.add_command(system_group)


# ----------------------------------------------------------------------------------------------


@click.command("images")
@click.argument("reference", required=False)
@click.option("-a", "--all", "all_images", is_flag=True, help="Show all images (default hides intermediate images).")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (dangling=true|false, reference=PATTERN).")
@click.option("--format", "fmt", help="'json', a Go template, or 'table TEMPLATE'.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.pass_context
def images_command(ctx, reference, all_images, quiet, filters, fmt, no_trunc, digests):
    """List images."""
    from ..format import render_rows
    from ..images.service import list_images

    filters = list(filters) + ([f"reference={reference}"] if reference else [])
    rows = list_images(_store(ctx), all_images=all_images, filters=filters)
    if no_trunc:
        for row in rows:
            row["ID"] = _full_id(ctx, row)
    if quiet:
        seen, ids = set(), []
        for row in rows:
            if row["ID"] not in seen:
                seen.add(row["ID"])
                ids.append(row["ID"])
        _echo_lines("\n".join(ids))
        return
    columns = [("Repository", "REPOSITORY"), ("Tag", "TAG"), *([("Digest", "DIGEST")] if digests else []),
               ("ID", "IMAGE ID"), ("CreatedSince", "CREATED"), ("Size", "SIZE")]
    _echo_lines(render_rows(fmt, rows, columns))


def _full_id(ctx, row) -> str:
    from ..images.service import resolve_image

    return resolve_image(_store(ctx), row["ID"])[0]


main.add_command(images_command)
image_group.add_command(images_command, "ls")
image_group.add_command(images_command, "list")


@click.command("tag")
@click.argument("source")
@click.argument("target")
@click.pass_context
def tag_command(ctx, source, target):
    """Create a tag TARGET that refers to SOURCE."""
    from ..images.service import resolve_image, tag_image

    store = _store(ctx)
    image_id, _ = resolve_image(store, source)
    tag_image(store, image_id, target)


main.add_command(tag_command)
image_group.add_command(tag_command)


@click.command("rmi")
@click.argument("images", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.pass_context
def rmi_command(ctx, images, force):
    """Remove one or more images."""
    from ..images.service import remove_images

    _echo_lines("\n".join(remove_images(_store(ctx), images, force=force, users=_image_users(ctx))))


main.add_command(rmi_command)
image_group.add_command(rmi_command, "rm")
image_group.add_command(rmi_command, "remove")


@click.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using a Go template.")
@click.option("--type", "kind", type=click.Choice(["image", "container"]), default=None,
              help="Only inspect objects of this type.")
@click.pass_context
def inspect_command(ctx, names, fmt, kind):
    """Display detailed information on one or more containers or images."""
    from ..errors import ImageNotFound
    from ..images.service import inspect_image

    store = _store(ctx)
    results, missing = [], []
    for name in names:
        if kind != "image":
            from .container_commands import inspect_containers

            found, _ = inspect_containers(ctx, [name])
            if found or kind == "container":
                results.extend(found)
                if not found:
                    missing.append(name)
                continue
        try:
            results.append(inspect_image(store, name))
        except ImageNotFound:
            missing.append(name)
    print_documents(results, fmt)
    if missing:
        for name in missing:
            click.echo(f"error: No such object: {name}" if kind is None else
                       f"error: No such {kind}: {name}", err=True)
        sys.exit(1)


main.add_command(inspect_command)
image_group.add_command(inspect_command)


class _GoBool(click.ParamType):
    """A Go boolean flag value: ``-H=false`` (click passes the ``=``), ``--human=false``, ``-H false``."""

    name = "boolean"

    def convert(self, value, param, ctx):
        if isinstance(value, bool):
            return value
        text = str(value).lstrip("=")
        if text in ("1", "t", "T", "true", "TRUE", "True"):
            return True
        if text in ("0", "f", "F", "false", "FALSE", "False"):
            return False
        self.fail(f"invalid boolean value {value!r}", param, ctx)


@click.command("history")
@click.argument("name")
@click.option("-H", "--human", default=True, type=_GoBool(), is_flag=False, flag_value="true",
              help="Print sizes and dates in human readable format (-H=false, as docker).")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--format", "fmt", help="'json', a Go template, or 'table TEMPLATE'.")
@click.pass_context
def history_command(ctx, name, human, no_trunc, quiet, fmt):
    """Show the history of an image."""
    from ..format import render_rows
    from ..images.service import history, resolve_image

    store = _store(ctx)
    rows = history(store, name)
    if no_trunc and rows and rows[0]["ID"] != "<missing>":
        rows[0]["ID"] = resolve_image(store, name)[0]
    for row in rows:
        bytes_ = row.pop("_bytes")
        created_by = row["CreatedBy"].replace("\t", " ")  # as docker: a tab would break the table
        row["CreatedBy"] = created_by
        if not no_trunc and len(created_by) > 45:
            row["CreatedBy"] = created_by[:44] + "…"
        if not human:
            row["Size"] = str(bytes_)
            row["CreatedSince"] = row["CreatedAt"]
    if quiet:
        _echo_lines("\n".join(r["ID"] for r in rows))
        return
    columns = [("ID", "IMAGE"), ("CreatedSince", "CREATED") if human else ("CreatedAt", "CREATED AT"),
               ("CreatedBy", "CREATED BY"), ("Size", "SIZE"), ("Comment", "COMMENT")]
    _echo_lines(render_rows(fmt, rows, columns))


main.add_command(history_command)
image_group.add_command(history_command)


@click.command("import")
@click.argument("source")
@click.argument("reference", required=False)
@click.option("-c", "--change", "changes", multiple=True, help="Apply a Dockerfile instruction to the image.")
@click.option("-m", "--message", default="", help="Commit message for the imported image.")
@click.option("--platform", default=None, help="Set the platform (default: this machine's).")
@click.pass_context
def import_command(ctx, source, reference, changes, message, platform):
    """Import a root filesystem tarball (or - for stdin) as a one-layer image."""
    from ..image.platform import parse_platform
    from ..images.importer import import_rootfs

    from ..epoch import source_date_epoch

    epoch = source_date_epoch()
    target = parse_platform(platform) if platform else None
    store = _store(ctx)
    with _input(source) as stream:
        image_id = import_rootfs(store, stream, reference, changes=changes, message=message,
                                 source_date_epoch=epoch, platform=target)
    click.echo(image_id)


main.add_command(import_command)
image_group.add_command(import_command)


@click.command("prune")
@click.option("-a", "--all", "all_images", is_flag=True, help="Remove all unused images, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_context
def image_prune_command(ctx, all_images, force):
    """Remove unused images."""
    from ..format import human_size
    from ..images.service import prune_images

    if not force and sys.stdin.isatty():
        what = "all images without at least one container associated to them" if all_images else "all dangling images"
        if not click.confirm(f"WARNING! This will remove {what}.\nAre you sure you want to continue?"):
            return
    lines, freed = prune_images(_store(ctx), all_images=all_images, users=_image_users(ctx))
    if lines:
        click.echo("Deleted Images:")
        click.echo("\n".join(lines))
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(freed)}")


image_group.add_command(image_prune_command)


@click.command("df")
@click.option("--format", "fmt", help="'json', a Go template, or 'table TEMPLATE'.")
@click.pass_context
def df_command(ctx, fmt):
    """Show disk usage."""
    from ..format import render_rows
    from ..images.service import disk_usage_rows

    columns = [("Type", "TYPE"), ("TotalCount", "TOTAL"), ("Active", "ACTIVE"), ("Size", "SIZE"),
               ("Reclaimable", "RECLAIMABLE")]
    _echo_lines(render_rows(fmt, disk_usage_rows(_store(ctx)), columns))


system_group.add_command(df_command)


@click.command("save")
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", default=None, help="Write to a file, instead of stdout.")
@click.option("--format", "fmt", type=click.Choice(["docker-archive", "oci-archive"]), default="docker-archive",
              show_default=True, help="Archive format (podman's names).")
@click.pass_context
def save_command(ctx, images, output, fmt):
    """Save one or more images to a tar archive (streamed to stdout by default)."""
    from ..errors import UsageError
    from ..images.archive import save

    store = _store(ctx)
    if output is None:
        if sys.stdout.isatty():
            raise UsageError("refusing to write an archive to a terminal: use -o FILE or redirect stdout")
        save(store, images, sys.stdout.buffer, fmt=fmt)
        sys.stdout.buffer.flush()
        return
    if os.path.exists(output) and not os.path.isfile(output):
        # A device or pipe (-o /dev/null, a FIFO): write straight into it, never replace it.
        try:
            with open(output, "wb") as out:
                save(store, images, out, fmt=fmt)
        except OSError as err:
            raise UsageError(f"cannot write {output}: {err.strerror}") from None
        return
    tmp = f"{output}.pybuild-tmp"
    try:
        out = open(tmp, "wb")
    except OSError as err:
        raise UsageError(f"cannot write {output}: {err.strerror}") from None
    try:
        with out:
            save(store, images, out, fmt=fmt)
        os.replace(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


main.add_command(save_command)
image_group.add_command(save_command)


@click.command("load")
@click.option("-i", "--input", "input_path", default=None, help="Read from a tar archive file, instead of stdin.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
@click.pass_context
def load_command(ctx, input_path, quiet):
    """Load images from a docker-archive or OCI archive (stdin by default)."""
    from ..errors import UsageError
    from ..images.archive import load

    store = _store(ctx)
    if input_path is None and sys.stdin.isatty():
        raise UsageError("requested load from stdin, but stdin is empty (use -i FILE or pipe an archive)")
    with _input(input_path) as stream:
        lines = load(store, stream)
    if not quiet:
        _echo_lines("\n".join(lines))


main.add_command(load_command)
image_group.add_command(load_command)
