"""The ``pybuild`` command line: parses arguments, calls the engine, renders results and errors.

No logic lives here. Imports of the engine are inside the commands so that ``pybuild`` starts fast.
Errors print as ``error: file:line:col: message`` plus the offending lines and exit 1; a Python
traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import os
import sys

import click

from .. import __version__


class _Group(click.Group):
    """Turns pybuild errors into readable messages (tracebacks only with --debug)."""

    def invoke(self, ctx):
        from cache.errors import StoreError

        from ..errors import PybuildError

        try:
            return super().invoke(ctx)
        except (PybuildError, StoreError) as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            from ..render import render_error

            click.echo(render_error(err), err=True)
            ctx.exit(getattr(err, "exit_code", 1))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.option("--root", metavar="DIR", default=None,
              help="State root (default: $PYBUILD_ROOT, else /var/lib/pybuild as root, $XDG_DATA_HOME/pybuild otherwise).")
@click.version_option(__version__, prog_name="pybuild")
@click.pass_context
def main(ctx, debug, root):
    """pybuild: build, store and run OCI images from Dockerfiles, without a daemon."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug or os.environ.get("PYBUILD_DEBUG") == "1"
    ctx.obj["root"] = root


def read_dockerfile(path: str) -> tuple[bytes, str]:
    from ..errors import UsageError

    if path == "-":
        return sys.stdin.buffer.read(), "Dockerfile"
    try:
        with open(path, "rb") as fh:
            return fh.read(), path
    except OSError as err:
        raise UsageError(f"cannot read Dockerfile {path}: {err.strerror}") from None


def print_documents(documents: list, fmt: str | None) -> None:
    """``inspect``'s output, as docker prints it: each document through the Go template, or all as JSON."""
    import json

    if fmt:
        from ..format import Template

        template = Template(fmt)
        for item in documents:
            click.echo(template.render(item))
    else:
        click.echo(json.dumps(documents, indent=4, ensure_ascii=False))


def build_args_from(values: tuple[str, ...]) -> dict[str, str | None]:
    """``--build-arg K=V`` (or ``K``, taking the value from the environment, as docker does)."""
    out: dict[str, str | None] = {}
    for item in values:
        key, eq, value = item.partition("=")
        out[key] = value if eq else os.environ.get(key)
    return out


def _register_commands() -> None:
    """Each area's commands live in its own module; importing it registers them on ``main``."""
    from . import build_commands, dockerfile_commands, image_commands  # noqa: F401
    from . import container_commands  # noqa: F401
    from . import builder_commands  # noqa: F401
    from . import registry_commands  # noqa: F401
    from . import network_commands  # noqa: F401
    from . import volume_commands  # noqa: F401


_register_commands()


def run() -> None:
    """The console entry point: ``pybuild -t app:1.0 .`` is short for ``pybuild build -t app:1.0 .``."""
    args = sys.argv[1:]
    globals_with_value = {"--root"}
    i = 0
    while i < len(args) and args[i] in ("--debug",) + tuple(globals_with_value):
        i += 2 if args[i] in globals_with_value else 1
    rest = args[i:]
    if rest and rest[0] not in main.commands and rest[0] not in ("-h", "--help", "--version"):
        from .build_commands import BUILD_FLAGS

        first = rest[0].split("=", 1)[0]
        if first in BUILD_FLAGS or not first.startswith("-"):
            sys.argv[1:] = args[:i] + ["build"] + rest
    main()


