"""Registry commands with docker's names, flags and output: pull, push, login, logout."""

from __future__ import annotations

import sys

import click

from . import main


def _store(ctx):
    from cache import Store

    root = (ctx.find_root().obj or {}).get("root")
    return Store.open(root)


def _progress(quiet: bool):
    from ..registry.progress import TransferProgress

    return TransferProgress("quiet" if quiet else "auto", out=sys.stdout)


@click.command("pull")
@click.argument("name")
@click.option("--platform", default=None, help="Pull this platform's image from a multi-platform image (os/arch).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image's name.")
@click.pass_context
def pull_command(ctx, name, platform, quiet):
    """Download an image from a registry."""
    from ..errors import UsageError
    from ..image.platform import PlatformError, parse_platform
    from ..image.reference import parse_normalized_named
    from ..registry.pull import pull

    wanted = None
    if platform:
        try:
            wanted = parse_platform(platform)
        except PlatformError as err:
            raise UsageError(f"--platform {platform}: {err}") from None
    ref = parse_normalized_named(name)
    if not quiet and not ref.tag and not ref.digest:
        click.echo("Using default tag: latest")
    result = pull(_store(ctx), name, platform=wanted, strict_platform=wanted is not None, progress=_progress(quiet))
    click.echo(result.name)


main.add_command(pull_command)


@click.command("push")
@click.argument("name")
@click.option("-q", "--quiet", is_flag=True, help="Print only the pushed name.")
@click.pass_context
def push_command(ctx, name, quiet):
    """Upload an image to a registry."""
    from ..registry.push import push

    result = push(_store(ctx), name, progress=_progress(quiet))
    if quiet:
        click.echo(result.name)


main.add_command(push_command)


@click.command("login")
@click.argument("server", required=False)
@click.option("-u", "--username", default=None, help="Username.")
@click.option("-p", "--password", default=None, help="Password (visible to other users of this machine: prefer "
                                                      "--password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
def login_command(server, username, password, password_stdin):
    """Log in to a registry (default: Docker Hub); the credentials are checked, then saved."""
    from ..errors import UsageError
    from ..registry.login import login

    if password and password_stdin:
        raise UsageError("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise UsageError("must provide --username with --password-stdin")
        password = sys.stdin.readline().rstrip("\r\n")
    elif password:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True)
    if not username:
        if not sys.stdin.isatty():
            raise UsageError("cannot ask for a username: stdin is not a terminal (use --username)")
        username = click.prompt("Username")
    if not password:
        if password_stdin or not sys.stdin.isatty():
            raise UsageError("no password given (use --password-stdin)")
        password = click.prompt("Password", hide_input=True)
    where = login(server, username, password)
    click.echo(f"Login Succeeded (credentials saved in {where})")


main.add_command(login_command)


@click.command("logout")
@click.argument("server", required=False)
def logout_command(server):
    """Log out from a registry (default: Docker Hub)."""
    from ..registry.login import logout

    host, removed = logout(server)
    if removed:
        click.echo(f"Removing login credentials for {host}")
    else:
        click.echo(f"Not logged in to {host}")


main.add_command(logout_command)
