"""``pybuild build`` (and the short form ``pybuild -t app:1.0 .``)."""

from __future__ import annotations

import os
import sys
import time

import click

from . import build_args_from, main
from .run_flags import run_flag_options, run_options

BUILD_FLAGS = ("-t", "--tag", "-f", "--file", "--build-arg", "--label", "--network", "--no-cache", "--progress",
               "-q", "--quiet", "--iidfile", "--target", "--no-cache-filter", "--metadata-file", "--build-context",
               "-o", "--output", "--platform", "--cache-to", "--cache-from", "--pull", "--push",
               "--secret", "--ssh", "--allow", "--add-host", "--ulimit", "--shm-size")   # RUN flags (run_flags.py)


class _Progress:
    """Renders step events: plain lines (CI, ``plain``), the same with tqdm bars for long transfers on a
    terminal (``tty``; ``auto`` picks it when stderr is a terminal), JSON lines (``rawjson``), or nothing."""

    def __init__(self, mode: str, quiet: bool):
        if mode == "auto":
            mode = "tty" if sys.stderr.isatty() else "plain"
        self.mode = "quiet" if quiet else mode
        self.started = time.monotonic()
        self.bars: dict = {}

    def __call__(self, event) -> None:
        if self.mode == "quiet":
            return
        out = sys.stderr
        if self.mode == "rawjson":
            import json

            record = {"vertex": event.number, "stage": event.stage, "step": event.index, "total": event.total,
                      "name": event.text, "status": event.status, "seconds": round(event.seconds, 3)}
            if event.output:
                record["output"] = event.output.decode("utf-8", "replace")
            out.write(json.dumps(record) + "\n")
            out.flush()
            return
        tag = f"[{event.stage} {event.index}/{event.total}]"
        number = event.number or event.index
        if event.status == "transfer":
            if self.mode != "tty":
                return
            bar = self.bars.get(number)
            if bar is None:
                from tqdm import tqdm

                bar = self.bars[number] = tqdm(desc=f"#{number} copying", unit="B", unit_scale=True,
                                               file=out, leave=False, dynamic_ncols=True)
            bar.update(event.transferred)
            return
        bar = self.bars.pop(number, None) if event.status in ("done", "error") else None
        if bar is not None:
            bar.close()
        if event.status == "start":
            out.write(f"#{number} {tag} {event.text}\n")
        elif event.status == "cached":
            out.write(f"#{number} {tag} {event.text}\n#{number} CACHED\n")
        elif event.status == "output" and event.output:
            for line in event.output.decode("utf-8", "replace").splitlines():
                out.write(f"#{number} {line}\n")
        elif event.status == "done":
            out.write(f"#{number} DONE {event.seconds:.1f}s\n")
        out.flush()


@click.command("build")
@click.argument("context", default=".")
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag (name:tag).")
@click.option("-f", "--file", "dockerfile", default=None,
              help="Name of the Dockerfile (default: CONTEXT/Dockerfile; - for stdin; an http(s) URL).")
@click.option("--build-context", "build_contexts", multiple=True, metavar="NAME=VALUE",
              help="Additional build context: a directory, docker-image://REF, a git or http(s) URL.")
@click.option("--build-arg", "build_args", multiple=True, metavar="K=V", help="Build-time variables.")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Set metadata for the image.")
@click.option("--network", type=click.Choice(["default", "host", "none"]), default="default",
              help="Networking mode for RUN steps (default: an isolated network with NAT to the outside; "
                   "host needs --allow network.host).")
@click.option("--no-cache", is_flag=True, help="Do not use the build cache.")
@click.option("--no-cache-filter", "no_cache_filter", multiple=True, help="Do not cache these stages.")
@click.option("--target", default="", help="The stage to build.")
@click.option("--progress", type=click.Choice(["auto", "tty", "plain", "quiet", "rawjson"]), default="auto")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
@click.option("--iidfile", default=None, help="Write the image ID to this file.")
@click.option("--metadata-file", default=None, help="Write build result metadata (JSON) to this file.")
@click.option("-o", "--output", "outputs", multiple=True, metavar="SPEC",
              help="Output destination: type=image|oci|docker|local|tar[,dest=PATH] (PATH alone: a directory, "
                   "- alone: a tar on stdout).")
@click.option("--platform", "platforms", multiple=True, help="Target platform (only this machine's, for now).")
@click.option("--cache-to", "cache_to", multiple=True, metavar="SPEC",
              help="Cache export: type=registry,ref=REF[,mode=min|max] | type=local,dest=DIR[,mode=...] | "
                   "type=inline (REF alone: a registry).")
@click.option("--cache-from", "cache_from", multiple=True, metavar="SPEC",
              help="Cache import: type=registry,ref=REF | type=local,src=DIR | REF (a registry cache or an "
                   "image with inline cache).")
@click.option("--pull", is_flag=True, help="Always pull the base images again (follow moved tags).")
@click.option("--push", is_flag=True, help="Shorthand for --output=type=registry: push every -t name.")
@run_flag_options
@click.pass_context
def build_command(ctx, context, tags, dockerfile, build_args, labels, network, no_cache, no_cache_filter, target,
                  build_contexts,
                  progress, quiet, iidfile, metadata_file, outputs, platforms, cache_to=(), cache_from=(),
                  pull=False, push=False, **run_flags):
    """Build an image from a Dockerfile."""
    from cache import Store

    from ..build.executor import ExecOptions
    from ..build.solver import BuildRequest, build
    from ..epoch import source_date_epoch

    store = Store.open((ctx.find_root().obj or {}).get("root"))
    source, named = _open_context(ctx, store, context, dockerfile, build_contexts)
    data, path = source.dockerfile, source.dockerfile_name
    args = build_args_from(build_args)
    if "SOURCE_DATE_EPOCH" not in args and os.environ.get("SOURCE_DATE_EPOCH"):
        args["SOURCE_DATE_EPOCH"] = os.environ["SOURCE_DATE_EPOCH"]  # as buildx does: the env var is a build arg
    label_map = dict(item.partition("=")[::2] for item in labels)
    options = ExecOptions(no_cache=no_cache, no_cache_filter=tuple(no_cache_filter),
                          network=network,
                          source_date_epoch=source_date_epoch({k: v for k, v in args.items() if v}),
                          on_event=_Progress(progress, quiet), **run_options(**run_flags))
    request = BuildRequest(data, path, source.root,
                           tuple(tags), {k: v for k, v in args.items() if v is not None}, target, label_map, options)
    request.ignore, request.named_contexts, request.context_kind = source.ignore, named, source.kind
    _check_copy_ignored(ctx, source, request.build_args, progress, quiet)
    wanted = _outputs_for(request, tuple(outputs) + (("type=registry",) if push else ()), platforms, iidfile)
    request.pull, request.pull_progress = pull, _transfer_progress(progress, quiet)
    _remote_cache(store, request, cache_to, cache_from, quiet or progress == "quiet")
    before = None if any(o.stores for o in wanted) else set(store.image_ids())
    result = build(store, request)
    if not quiet:
        for spec, error in result.cache_exports:
            click.echo(f"warning: exporting cache to {spec.describe()} failed (ignore-error=true): {error}"
                       if error else f"exporting cache to {spec.describe()} done", err=True)
    _warn(request.warnings, quiet or progress in ("quiet", "rawjson"))
    _deliver(store, result, wanted, tuple(tags), before, quiet=quiet, iidfile=iidfile, metadata_file=metadata_file)
    _push(store, result, wanted, request.pull_progress, quiet)


def _transfer_progress(progress: str, quiet: bool):
    """Pulls and pushes of a build report on stderr: bars on a terminal (tty), lines (plain), or nothing."""
    from ..registry.progress import TransferProgress

    if quiet or progress in ("quiet", "rawjson"):
        return TransferProgress("quiet")
    return TransferProgress({"tty": "tty", "plain": "plain"}.get(progress, "auto"), out=sys.stderr)


def _warn(warnings: list, quiet: bool) -> None:
    """Warnings found while building (InvalidBaseImagePlatform), as BuildKit lists them at the end."""
    if not warnings or quiet:
        return
    lines = [f"{len(warnings)} warning{'s' if len(warnings) > 1 else ''} found:"]
    lines += [f" - {rule}: {message} (line {line})" for rule, message, line in warnings]
    click.echo("\n".join(lines), err=True)


def _push(store, result, wanted, progress, quiet: bool) -> None:
    """--push / --output type=registry: every name of the image goes to its registry, manifest last."""
    if not any(o.push for o in wanted):
        return
    from ..registry.push import push

    for name in result.tags:
        pushed = push(store, name, image=result.image_id, progress=progress)
        if not quiet:
            click.echo(f"pushing manifest for {pushed.name}@{pushed.digest} done", err=True)


def _remote_cache(store, request, cache_to, cache_from, quiet: bool) -> None:
    """--cache-to / --cache-from (buildx syntax), checked before the build; the imports' manifests are
    read now (one that cannot be read is a warning)."""
    if not cache_to and not cache_from:
        return
    from ..build.remotecache import load_imports, parse_cache_specs

    request.cache_to = parse_cache_specs(cache_to, to=True)
    specs = parse_cache_specs(cache_from, to=False)
    if specs and not request.options.no_cache:
        request.options.cache_from = load_imports(
            store, specs, platform=request.platform,
            warn=lambda message: None if quiet else click.echo(f"warning: {message}", err=True))


def _outputs_for(request, outputs, platforms, iidfile):
    """--output and --platform, checked before anything is built; the request tags the image only when
    an output puts it in the store (as buildx: ``-t`` with ``-o type=local`` tags nothing)."""
    from ..build.outputs import parse_outputs
    from ..build.targetplatform import target_platform
    from ..errors import UsageError

    wanted = parse_outputs(outputs)
    request.platform = target_platform(platforms)
    if iidfile and any(o.rootfs for o in wanted):
        raise UsageError("local and tar exporters are incompatible with image ID file")
    stored = [o for o in wanted if o.stores]
    pushed = [o for o in wanted if o.push]
    if pushed and not request.tags and not any(o.names for o in stored):
        raise UsageError(f"--output {pushed[0].text}: tag is needed when pushing to registry (-t NAME, or name= "
                         "in the output)")
    request.tags = tuple(dict.fromkeys(tuple(request.tags) + tuple(n for o in stored for n in o.names))) \
        if stored else ()
    return wanted


def _deliver(store, result, wanted, tags, before, *, quiet, iidfile, metadata_file):
    """Write the non-store outputs, report, and leave no new untagged image when nothing stores it."""
    from ..build.outputs import deliver

    image_id = result.image_id
    try:
        for output in wanted:
            if not output.stores:
                names = tuple(dict.fromkeys(tags + output.names)) if output.type in ("docker", "oci") else ()
                deliver(store, output, image_id, names)
                if not quiet:
                    click.echo(f"exporting to {output.describe()} done", err=True)
    finally:
        if before is not None and image_id not in before and not store.tags_for(image_id):
            store.remove_image(image_id)  # like docker: only the build cache keeps what was built
    image_result = not all(o.rootfs for o in wanted)
    if iidfile:
        with open(iidfile, "w") as fh:
            fh.write(image_id)
    if metadata_file:
        import json

        metadata = {"containerimage.config.digest": image_id, "image.name": ",".join(result.tags)} \
            if image_result else {}
        with open(metadata_file, "w") as fh:
            json.dump(metadata, fh, indent=2)
    if quiet:
        if image_result and not any(o.to_stdout for o in wanted):
            click.echo(image_id)
    elif any(o.stores for o in wanted):
        for name in result.tags:
            click.echo(f"naming to {name} done", err=True)
        click.echo(f"writing image {image_id} done", err=True)


main.add_command(build_command)


# ----------------------------------------------------------------------------------------------
# the build context (builder.buildcontext): CONTEXT, -f, --build-context, CopyIgnoredFile


def _open_context(ctx, store, location, dockerfile, build_contexts):
    """The main context (open until the command ends: fetched or unpacked contexts live in the store's
    tmp/ until then) and the parsed --build-context values."""
    from ..buildcontext import open_build_context
    from ..buildcontext.named import parse_named_contexts

    named = parse_named_contexts(build_contexts)
    source = ctx.with_resource(open_build_context(location, dockerfile, stdin=sys.stdin.buffer,
                                                  tmp_dir=str(store.layout.tmp)))
    return source, named


def _check_copy_ignored(ctx, source, build_args, progress, quiet):
    """BuildKit runs CopyIgnoredFile during a build: its warnings are printed when the command ends;
    with ``# check=error=true`` the build fails before any step runs."""
    if source.ignore is None or source.ignore.has_exclusions:
        return
    from ..dockerfile.checks import run_checks
    from ..dockerfile.instructions import parse_dockerfile
    from ..errors import DockerfileError, PybuildError

    try:
        report = run_checks(parse_dockerfile(source.dockerfile, source.dockerfile_name, build_args), build_args,
                            collect_errors=True, ignore=source.ignore)
    except PybuildError:
        return  # the build reports the Dockerfile's own errors
    found = [w for w in report.warnings if w.rule == "CopyIgnoredFile"]
    if not found:
        return
    lines = [f"{len(found)} warning{'s' if len(found) > 1 else ''} found:"]
    lines += [f" - {w.rule}: {w.message} (line {w.line})" for w in found]
    if report.config.error:
        click.echo("\n".join(lines), err=True)
        raise DockerfileError("lint violation found for rules: CopyIgnoredFile", filename=source.dockerfile_name)
    if not quiet and progress not in ("quiet", "rawjson"):
        ctx.call_on_close(lambda: click.echo("\n".join(lines), err=True))
