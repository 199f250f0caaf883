"""``pybuild parse`` and ``pybuild check``: the Dockerfile front end on the command line."""

from __future__ import annotations

import os
import sys

import click

from . import build_args_from, main, read_dockerfile


@main.command("parse")
@click.option("-f", "--file", "path", default="Dockerfile", show_default=True, help="Dockerfile to read ('-' for stdin).")
@click.option("--format", "fmt", type=click.Choice(["buildkit", "json"]), default="json", show_default=True,
              help="buildkit: BuildKit's parser dump; json: typed stages and instructions.")
def parse_command(path, fmt):
    """Parse a Dockerfile and print its structure."""
    data, name = read_dockerfile(path)
    if fmt == "buildkit":
        from ..dockerfile.dump import dump_tree
        from ..dockerfile.syntax import parse_bytes

        sys.stdout.write(dump_tree(parse_bytes(data, name)))
        return
    import json

    from ..dockerfile.instructions import parse_dockerfile
    from ..dockerfile.jsonview import dockerfile_to_json

    click.echo(json.dumps(dockerfile_to_json(parse_dockerfile(data, name)), indent=2, ensure_ascii=False))


@main.command("check")
@click.argument("context", required=False)
@click.option("-f", "--file", "path", default=None,
              help="Dockerfile to check ('-' for stdin; default: CONTEXT/Dockerfile, or ./Dockerfile).")
@click.option("--build-arg", "build_args", multiple=True, metavar="K=V", help="Build-time variable.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def check_command(context, path, build_args, fmt):
    """Run BuildKit's build checks (lint rules) on a Dockerfile; exit 1 when one fails.

    With a CONTEXT directory its .dockerignore (or <Dockerfile>.dockerignore) is read, so
    CopyIgnoredFile runs too, as with ``docker build --check CONTEXT``."""
    ignore = None
    if context is not None:
        from ..buildcontext import read_ignore_rules
        from ..errors import UsageError
        from ..gotext import go_quote

        if not os.path.isdir(context):
            raise UsageError(f"unable to prepare context: path {go_quote(context)} not found")
        path = path or os.path.join(context, "Dockerfile")
        ignore = read_ignore_rules(context, path if path != "-" else None)[0]
    data, name = read_dockerfile(path or "Dockerfile")
    from ..dockerfile.checks import run_checks
    from ..dockerfile.instructions import parse_dockerfile

    args = build_args_from(build_args)
    report = run_checks(parse_dockerfile(data, name, args), args, collect_errors=True, ignore=ignore)
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
