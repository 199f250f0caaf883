"""The ``pybuild`` command line: parses arguments, calls the engine, renders results and errors.

No logic lives here. Imports of the engine are inside the commands so that ``pybuild`` starts fast.
Errors print as ``error: file:line:col: message`` plus the offending lines and exit 1; a Python
traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import os
import sys

import click

from . import __version__


class _Group(click.Group):
    """Turns pybuild errors into readable messages (tracebacks only with --debug)."""

    def invoke(self, ctx):
        from .errors import PybuildError

        try:
            return super().invoke(ctx)
        except PybuildError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            from .render import render_error

            click.echo(render_error(err), err=True)
            ctx.exit(err.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.version_option(__version__, prog_name="pybuild")
@click.pass_context
def main(ctx, debug):
    """pybuild: build, store and run OCI images from Dockerfiles, without a daemon."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug or os.environ.get("PYBUILD_DEBUG") == "1"


def _read_dockerfile(path: str) -> tuple[bytes, str]:
    from .errors import UsageError

    if path == "-":
        return sys.stdin.buffer.read(), "Dockerfile"
    try:
        with open(path, "rb") as fh:
            return fh.read(), path
    except OSError as err:
        raise UsageError(f"cannot read Dockerfile {path}: {err.strerror}") from None


def _build_args(values: tuple[str, ...]) -> dict[str, str | None]:
    """``--build-arg K=V`` (or ``K``, taking the value from the environment, as docker does)."""
    out: dict[str, str | None] = {}
    for item in values:
        key, eq, value = item.partition("=")
        out[key] = value if eq else os.environ.get(key)
    return out


@main.command("parse")
@click.option("-f", "--file", "path", default="Dockerfile", show_default=True, help="Dockerfile to read ('-' for stdin).")
@click.option("--format", "fmt", type=click.Choice(["buildkit", "json"]), default="json", show_default=True,
              help="buildkit: BuildKit's parser dump; json: typed stages and instructions.")
def parse_command(path, fmt):
    """Parse a Dockerfile and print its structure."""
    data, name = _read_dockerfile(path)
    if fmt == "buildkit":
        from .dockerfile.dump import dump_tree
        from .dockerfile.syntax import parse_bytes

        sys.stdout.write(dump_tree(parse_bytes(data, name)))
        return
    import json

    from .dockerfile.instructions import parse_dockerfile
    from .dockerfile.jsonview import dockerfile_to_json

    click.echo(json.dumps(dockerfile_to_json(parse_dockerfile(data, name)), indent=2, ensure_ascii=False))


@main.command("check")
@click.option("-f", "--file", "path", default="Dockerfile", show_default=True, help="Dockerfile to check ('-' for stdin).")
@click.option("--build-arg", "build_args", multiple=True, metavar="K=V", help="Build-time variable.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def check_command(path, build_args, fmt):
    """Run BuildKit's build checks (lint rules) on a Dockerfile; exit 1 when one fails."""
    data, name = _read_dockerfile(path)
    from .dockerfile.checks import run_checks
    from .dockerfile.instructions import parse_dockerfile

    args = _build_args(build_args)
    report = run_checks(parse_dockerfile(data, name, args), args, collect_errors=True)
    if fmt == "json":
        import json

        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        sys.exit(report.exit_code)
    if report.error is not None:
        # Warnings found before the failure are still worth reading; then the error, as any other.
        if report.warnings:
            import dataclasses

            click.echo(dataclasses.replace(report, error=None).render())
        raise report.error
    click.echo(report.render())
    sys.exit(report.exit_code)


if __name__ == "__main__":
    main()
