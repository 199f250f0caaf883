"""``pybuild build``: Dockerfile + context -> an image in the local store.

Reads the Dockerfile through the parse cache, resolves each stage's base (``scratch``, an earlier
stage, or an image in the local store keyed by its image ID, never by its tag), runs the stages the
target needs in order through the executor, and records the final image under its tags.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ImageNotFound, UsageError
from . import cachekey
from .executor import ExecOptions, StageExecutor


@dataclass
class BuildRequest:
    dockerfile: bytes
    filename: str
    context_dir: str | None
    tags: tuple = ()
    build_args: dict = field(default_factory=dict)
    target: str = ""
    labels: dict = field(default_factory=dict)
    options: ExecOptions = field(default_factory=ExecOptions)


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    tags: tuple


def _base_image(store, name: str):
    from ..images.service import load_config, resolve_image

    try:
        image_id, reference = resolve_image(store, name)
    except ImageNotFound:
        raise ImageNotFound(f"base image {name!r} is not in the local store (pulling from registries comes "
                            f"with the registry client; `pybuild import` or `pybuild load` it first)", name) from None
    return image_id, load_config(store, image_id), (str(reference) if reference is not None else None)


def build(store, request: BuildRequest) -> BuildResult:
    from ..dockerfile.evaluate import resolve_from
    from ..images.service import store_config, tag_image
    from .configstep import finalize_result, make_plan_context
    from .history import finalize_history
    from .parsecache import parse_cached

    dockerfile = parse_cached(request.dockerfile, root=store.root, filename=request.filename,
                              build_args=request.build_args)
    ctx = make_plan_context(dockerfile, request.build_args, target=request.target)
    if ctx.epoch is not None and request.options.source_date_epoch is None:
        request.options.source_date_epoch = ctx.epoch  # clamp new layers' mtimes (BuildKit's rewrite-timestamp)
    stages = dockerfile.stages
    target_index = len(stages) - 1
    if request.target:
        found = dockerfile.stage(request.target)
        if found is None:
            raise UsageError(f"target stage {request.target!r} could not be found")
        target_index = found.index
    with store.lease("build") as lease:
        by_name: dict[str, int] = {}
        plans: dict[int, tuple] = {}
        bases: dict[str, str] = {}
        needed = _needed(dockerfile, ctx, target_index)
        executor = StageExecutor(store, dockerfile, ctx, request.context_dir, request.options)
        for stage in stages[: target_index + 1]:
            resolved = resolve_from(stage, ctx.eval.global_args, ctx.eval.lexer)
            if stage.name:
                by_name.setdefault(stage.name, stage.index)
            if stage.index not in needed:
                continue
            parent_index = by_name.get(resolved.base_name.lower())
            if parent_index is not None and parent_index < stage.index:
                parent_plan, parent_key = plans[parent_index]
                plan, key = executor.run(stage, parent=parent_plan, base_key=parent_key)
            elif resolved.base_name == "scratch":
                platform = resolved.platform or ctx.eval.target_platform
                plan, key = executor.run(stage, base_key=cachekey.scratch_key(platform))
            else:
                try:
                    image_id, config, base_ref = _base_image(store, resolved.base_name)
                except ImageNotFound as err:
                    from ..errors import DockerfileError

                    located = DockerfileError(err.message, stage.from_.span, filename=dockerfile.filename)
                    raise located.with_source(dockerfile.filename, dockerfile.tree.source_lines) from None
                bases[base_ref or f"<by id {image_id}>"] = image_id
                lease.add(image_id)
                from ..images.layers import ensure_snapshots

                ensure_snapshots(store, config.rootfs.diff_ids)
                plan, key = executor.run(stage, base_image=config, base_key=cachekey.base_key(image_id))
            plans[stage.index] = (plan, key)
        final, _ = plans[target_index]
        config = finalize_result(final.config, labels=request.labels or None)
        config = finalize_history(config, epoch=ctx.epoch, base_history=final.base_history)
        image_id = store_config(store, config, tuple(config.rootfs.diff_ids), meta={"source": "build"})
        names = tuple(tag_image(store, image_id, tag) for tag in request.tags)
    _remember(store, request, image_id, bases, executor.reads)
    return BuildResult(image_id, names)


def _remember(store, request: BuildRequest, image_id: str, bases: dict, reads: list) -> None:
    """Leave the memo that lets an identical rebuild skip the engine (see ``memo``)."""
    import hashlib

    from . import memo

    options = request.options
    if options.no_cache or options.no_cache_filter or request.context_dir is None:
        return
    key = memo.request_key(dockerfile_path=request.filename,
                           dockerfile_digest=hashlib.sha256(request.dockerfile).hexdigest(),
                           context=request.context_dir, build_args=request.build_args, target=request.target,
                           labels=request.labels, network="default" if options.network == "host" else options.network)
    try:
        memo.write_memo(str(store.root), key, image_id=image_id, bases=bases, reads=reads)
    except OSError:
        pass  # a memo only saves time


def _needed(dockerfile, ctx, target_index: int) -> set[int]:
    """The target and the stages it is built FROM (COPY --from / RUN --mount come with part two)."""
    from ..dockerfile.evaluate import resolve_from

    names = {}
    for stage in dockerfile.stages:
        if stage.name:
            names.setdefault(stage.name, stage.index)
    needed = set()
    index = target_index
    while index is not None and index not in needed:
        needed.add(index)
        stage = dockerfile.stages[index]
        base = resolve_from(stage, ctx.eval.global_args, ctx.eval.lexer).base_name.lower()
        parent = names.get(base)
        index = parent if parent is not None and parent < index else None
    return needed
