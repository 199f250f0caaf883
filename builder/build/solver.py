"""``pybuild build``: Dockerfile + context -> an image in the local store.

Reads the Dockerfile through the parse cache, resolves each stage's base (``scratch``, an earlier
stage, or an image in the local store keyed by its image ID, never by its tag), runs the stages the
target needs in order through the executor, and records the final image under its tags.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

from ..errors import ImageError, ImageNotFound, UsageError
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
    ignore: object = None                                   # IgnoreRules of the main context, or None
    named_contexts: dict = field(default_factory=dict)      # --build-context name -> NamedContext
    context_kind: str = "dir"                               # buildcontext.BuildContext.kind
    cache_to: tuple = ()                                    # --cache-to: remotecache.CacheSpec (export after)
    platform: object = None                                 # --platform (a native Platform), None: this machine's
    pull: bool = False                                      # --pull: pull every base image again
    pull_progress: object = None                            # registry.progress.TransferProgress for pulls
    warnings: list = field(default_factory=list)            # (rule, message, line) found while building


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    tags: tuple
    cache_exports: tuple = ()    # (CacheSpec, None or the error an ignore-error=true export ignored)


def build(store, request: BuildRequest) -> BuildResult:
    from ..dockerfile.evaluate import resolve_from
    from ..images.service import store_config, tag_image
    from .buildsources import BuildSources
    from .configstep import empty_image, finalize_result, make_plan_context
    from .graph import stage_graph
    from .history import finalize_history
    from .parsecache import parse_cached

    dockerfile = parse_cached(request.dockerfile, root=store.root, filename=request.filename,
                              build_args=request.build_args)
    ctx = make_plan_context(dockerfile, request.build_args, target=request.target, target_platform=request.platform)
    if ctx.epoch is not None and request.options.source_date_epoch is None:
        request.options.source_date_epoch = ctx.epoch  # clamp new layers' mtimes (BuildKit's rewrite-timestamp)
    stages = dockerfile.stages
    target_index = len(stages) - 1
    if request.target:
        found = dockerfile.stage(request.target)
        if found is None:
            raise UsageError(f"target stage {request.target!r} could not be found")
        target_index = found.index
    resolved = [resolve_from(stage, ctx.eval.global_args, ctx.eval.lexer) for stage in stages]
    from ..registry.bases import BasePuller

    puller = BasePuller(store, always=request.pull, platform=request.platform, progress=request.pull_progress)
    bases = [r.base_name for r in resolved]
    graph = stage_graph(dockerfile, bases, target_index, request.named_contexts,
                        image_triggers=lambda name: _image_triggers(store, request, name))
    if _pull_bases(graph, puller, request.named_contexts):   # as BuildKit, every needed base resolved first (in parallel);
        graph = stage_graph(dockerfile, bases, target_index, request.named_contexts,   # their triggers
                            image_triggers=lambda name: _image_triggers(store, request, name))  # may add deps
    options = request.options
    offsets, position = {}, 0
    for index in graph.needed:
        offsets[stages[index].display_name] = position
        position += len(stages[index].instructions)
    options.on_event = _serialized(options.on_event, offsets)
    with store.lease("build") as lease, _named_contexts(request, store) as named:
        sources = BuildSources(store, dockerfile, context_dir=request.context_dir, ignore=request.ignore,
                               named=named, lease=lease)
        sources.puller = puller
        executor = StageExecutor(store, dockerfile, ctx, request.context_dir, options, sources=sources)
        plans: dict[int, tuple] = {}

        def run_stage(index: int) -> None:
            stage = stages[index]
            node = graph.nodes[index]
            base = node.base
            if base.kind == "stage":
                parent_plan, parent_key = plans[base.index]
                plan, key = executor.run(stage, parent=parent_plan, base_key=parent_key)
            elif base.kind == "scratch":
                platform = resolved[index].platform or ctx.eval.target_platform
                plan, key = executor.run(stage, base_key=cachekey.scratch_key(platform))
            elif sources.named.get(base.name.lower()) == ("image", "scratch"):   # BuildKit: the empty image
                platform = resolved[index].platform or ctx.eval.target_platform
                plan, key = executor.run(stage, base_image=empty_image(platform),
                                         base_key=cachekey.scratch_key(platform))
            else:
                config, image_id, _ = _stage_base(sources, dockerfile, stage, base.name)
                _check_base_platform(request, stage, base.name, config,
                                     resolved[index].platform or ctx.eval.target_platform)
                plan, key = executor.run(stage, base_image=config, base_key=cachekey.base_key(image_id))
            sources.stage_layers[index] = tuple(plan.config.rootfs.diff_ids)
            plans[index] = (plan, key)

        run_graph(graph, run_stage, options)
        final, _ = plans[target_index]
        config = finalize_result(final.config, labels=request.labels or None)
        config = finalize_history(config, epoch=ctx.epoch, base_history=final.base_history)
        config = _inline_cache(request, graph, executor, target_index, config)
        image_id = store_config(store, config, tuple(config.rootfs.diff_ids), meta=_build_meta(store, config))
        names = tuple(tag_image(store, image_id, tag) for tag in request.tags)
        exports = _export_cache(store, request, graph, executor, target_index)
    if not request.named_contexts:
        _remember(store, request, image_id, sources.bases, executor.reads)
    return BuildResult(image_id, names, exports)


def _inline_cache(request: BuildRequest, graph, executor, target: int, config):
    """``--cache-to type=inline``: the final chain's cache entries in the image config (a base image's
    own inline cache, which describes the base's build, never gets this far: ``base_image_config``
    drops keys outside the image spec)."""
    if not any(spec.type == "inline" for spec in request.cache_to):
        return config
    from .remotecache import records_for, with_inline

    return with_inline(config, records_for(graph, executor.cache_records, target, "min"))


def _export_cache(store, request: BuildRequest, graph, executor, target: int) -> tuple:
    """Each ``--cache-to`` destination (inside the build's lease: the layers cannot be collected)."""
    done = []
    for spec in request.cache_to:
        error = None
        if spec.type != "inline":
            from .remotecache import export_cache, records_for

            error = export_cache(store, spec, records_for(graph, executor.cache_records, target, spec.mode))
        done.append((spec, error))
    return tuple(done)


def _pull_bases(graph, puller, named_contexts) -> bool:
    """Pull the needed stages' image bases that are missing (all of them with --pull), several at
    once; True if any was pulled. Failures are kept by the puller and reported at their FROM."""
    from concurrent.futures import ThreadPoolExecutor

    named = {n.lower() for n in named_contexts}
    names = list(dict.fromkeys(graph.nodes[i].base.name for i in graph.needed
                               if graph.nodes[i].base.kind == "external" and graph.nodes[i].base.name.lower()
                               not in named and graph.nodes[i].base.name != "scratch"))
    wanted = [n for n in names if puller.wanted(n)]
    if not wanted:
        return False

    def ensure(name: str) -> None:
        try:
            puller.ensure(name)
        except ImageError:
            pass

    with ThreadPoolExecutor(max_workers=min(4, len(wanted)), thread_name_prefix="pybuild-bases") as pool:
        list(pool.map(ensure, wanted))
    return True


def _image_triggers(store, request: BuildRequest, name: str) -> tuple:
    """A local base image's ONBUILD triggers (none for one not in the store: that is reported
    where the stage starts)."""
    from ..images.service import load_config, resolve_image

    if name.lower() in {n.lower() for n in request.named_contexts}:
        return ()
    try:
        image_id, _ = resolve_image(store, name)
        return tuple(load_config(store, image_id).config.on_build)
    except ImageError:
        return ()


def _build_meta(store, config) -> dict:
    """An image built again keeps what its record knows (where its blobs were pushed: cross-repo mounts)."""
    digest = config.digest
    old = dict(store.get_image(digest).meta) if store.has_image(digest) else {}
    return {**old, "source": old.get("source", "build")}


def _check_base_platform(request: BuildRequest, stage, name: str, config, expected) -> None:
    """BuildKit's InvalidBaseImagePlatform: the base image's os/arch differ from the stage's platform."""
    from ..image.platform import Platform, normalize_platform

    if not config.os or expected is None:
        return
    have = normalize_platform(Platform(config.os, config.architecture, config.variant))
    want = normalize_platform(expected)
    if (have.os, have.architecture) != (want.os, want.architecture):
        message = (f"Base image {name} was pulled with platform \"{have.format_all()}\", expected "
                   f"\"{want.format_all()}\" for current build")
        request.warnings.append(("InvalidBaseImagePlatform", message, stage.from_.span.line))


def _stage_base(sources, dockerfile, stage, name: str):
    """A stage's outside base: a local image (or a named context naming one), keyed by image ID."""
    from ..errors import DockerfileError
    from ..images.service import load_config

    named = sources.named.get(name.lower())
    if named is not None and named[0] == "dir":
        located = DockerfileError(f"FROM a local directory context ({name!r}) is not supported; name an image "
                                  "with --build-context {name}=docker-image://REF", stage.from_.span)
        raise located.with_source(dockerfile.filename, dockerfile.tree.source_lines)
    ref = named[1] if named is not None else name
    try:
        image_id, _, reference = sources.image(ref)
    except ImageNotFound as err:
        located = DockerfileError(f"base {err.message}", stage.from_.span, filename=dockerfile.filename)
        raise located.with_source(dockerfile.filename, dockerfile.tree.source_lines) from None
    return load_config(sources.store, image_id), image_id, reference


def _serialized(callback, offsets: dict):
    """Progress events come from several stage threads; the renderer sees one at a time. Each step
    gets one number for the whole build (docker's ``#N``): its position among the needed stages'
    instructions in Dockerfile order, so the numbers do not depend on which thread ran first."""
    import threading

    lock = threading.Lock()

    def emit(event) -> None:
        with lock:
            event.number = offsets.get(event.stage, 0) + event.index
            callback(event)

    return emit


@contextmanager
def _named_contexts(request: BuildRequest, store):
    """``--build-context`` values as ("dir", root, ignore) or ("image", ref), temp dirs removed after."""
    if not request.named_contexts:
        yield {}
        return
    from ..buildcontext import open_named_contexts

    with open_named_contexts(request.named_contexts, str(store.root / "tmp")) as named:
        yield named


def run_graph(graph, run_stage, options) -> None:
    """Run the needed stages, each once all its stage dependencies are done, independent ones at the
    same time (as many as there are CPUs). The first failure stops the rest (running RUNs are killed)
    and is raised; a single-stage build runs in the calling thread."""
    import os
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    pending = list(graph.needed)
    if len(pending) == 1:
        run_stage(pending[0])
        return
    done: set[int] = set()
    running: dict = {}
    workers = max(1, min(os.cpu_count() or 1, len(pending)))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pybuild-stage")
    failure: BaseException | None = None
    try:
        while pending or running:
            for index in [i for i in pending if graph.deps(i) <= done]:
                if len(running) >= workers:
                    break
                pending.remove(index)
                running[pool.submit(run_stage, index)] = index
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                index = running.pop(future)
                error = future.exception()
                if error is not None:
                    raise error
                done.add(index)
    except BaseException as err:
        failure = err
        options.cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if failure is not None:
            options.cancel.clear()


def _remember(store, request: BuildRequest, image_id: str, bases: dict, reads: list) -> None:
    """Leave the memo that lets an identical rebuild skip the engine (see ``memo``)."""
    import hashlib

    from . import memo

    options = request.options
    if options.no_cache or options.no_cache_filter or request.context_dir is None or request.context_kind != "dir":
        return
    if options.secrets or options.ssh or options.allow or options.extra_hosts or options.ulimits or options.shm_size:
        return  # RUN flags are not in the memo's request key (the fast path never takes them either)
    key = memo.request_key(dockerfile_path=request.filename,
                           dockerfile_digest=hashlib.sha256(request.dockerfile).hexdigest(),
                           context=request.context_dir, build_args=request.build_args, target=request.target,
                           labels=request.labels, network=options.network)
    try:
        memo.write_memo(str(store.root), key, image_id=image_id, bases=bases, reads=reads)
    except OSError:
        pass  # a memo only saves time
