"""The build engine's executor: runs the filesystem steps the planner asks for, captures layers.

The planner (``configstep``) decides configs and history; this module makes the diffs. Each
filesystem step (RUN, WORKDIR, COPY) writes into a fresh overlay upper directory prepared inside
the store; the upper directory *is* the layer's snapshot (overlay whiteouts and all), so capturing
a layer is hashing the deterministic tar of the changed files — time proportional to the change,
never a scan of the rootfs — and renaming the directory into the store. An empty diff adds no
layer. Every step is looked up in the build cache first by its key (parent key, expanded
instruction, the build args it uses, the digests of its inputs).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Callable

from ..dockerfile import instructions as ins
from ..errors import PybuildError
from . import cachekey
from .configstep import PlanContext, StagePlan, StepPlan, plan_step, start_stage


class BuildError(PybuildError):
    """A build step failed; the message names the Dockerfile line, the command and the exit code."""


class BuildCancelled(BuildError):
    """A stage stopped because the build as a whole failed or was interrupted."""


@dataclass
class StepEvent:
    """Progress of one step, for the CLI to render (the core never prints)."""

    stage: str
    index: int
    total: int
    text: str
    status: str = "start"      # start | cached | done | output | transfer | error
    seconds: float = 0.0
    output: bytes = b""
    transferred: int = 0       # bytes, for status "transfer" (a long COPY): the UI draws a bar
    number: int = 0            # the step's number in the whole build (docker's "#N"), set by the solver


@dataclass
class ExecOptions:
    no_cache: bool = False
    no_cache_filter: tuple = ()      # stage names whose steps must not use the cache
    network: str = "default"         # RUN steps: default (own namespace + NAT, as BuildKit), host, none
    source_date_epoch: int | None = None
    on_event: Callable[[StepEvent], None] = field(default=lambda event: None)
    # set when another stage failed or the build was interrupted: stages stop at their next step
    cancel: threading.Event = field(default_factory=threading.Event)
    # RUN: --secret / --ssh sources by id (runmounts.SecretSource / SSHSource), --allow entitlements,
    # --add-host (sandbox.HostEntry), --ulimit (sandbox.Ulimit), --shm-size in bytes (None: 64 MiB)
    secrets: dict = field(default_factory=dict)
    ssh: dict = field(default_factory=dict)
    allow: frozenset = frozenset()
    extra_hosts: tuple = ()
    ulimits: tuple = ()
    shm_size: int | None = None
    # --cache-from: remotecache.CacheImports consulted on a local cache miss (None: none given)
    cache_from: object = None


_LINK_BASE = "sha256:" + hashlib.sha256(b"pybuild: an empty tree for COPY --link").hexdigest()


def _digest_json(value) -> str:
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def capture_layer(store, upper: str, *, source_date_epoch: int | None = None) -> str | None:
    """Turn a filled upper directory into a stored layer; None (and the directory removed) when empty."""
    from ..images.layers import commit_directory

    return commit_directory(store, upper, source_date_epoch=source_date_epoch)


class StageExecutor:
    """Runs one stage: plans each step, executes its filesystem part (or takes it from the cache)."""

    def __init__(self, store, dockerfile: ins.Dockerfile, ctx: PlanContext, context_dir: str | None,
                 options: ExecOptions, sources=None):
        self.store = store
        self.sources = sources   # BuildSources: the trees COPY --from / RUN --mount from= read
        self.dockerfile = dockerfile
        self.ctx = ctx
        self.context_dir = context_dir
        self.options = options
        self.reads: list = []   # lstat of every context path read (the no-op rebuild memo)
        self.cache_records: dict = {}   # stage index -> [cacheformat.CacheRecord] (--cache-to)

    def run(self, stage: ins.Stage, *, base_image=None, base_key: str, parent: StagePlan | None = None
            ) -> tuple[StagePlan, str]:
        start = start_stage(self.dockerfile, stage, self.ctx, base_image=base_image, parent=parent)
        config, state = start.config, start.state
        key = base_key
        steps = []
        work = [(i, True) for i in start.triggers] + [(i, False) for i in stage.instructions]
        use_cache = not self.options.no_cache and stage.display_name not in self.options.no_cache_filter
        for index, (instruction, from_onbuild) in enumerate(work, 1):
            if self.options.cancel.is_set():
                raise BuildCancelled(f"stage {stage.display_name!r} stopped: another stage failed")
            try:
                step = plan_step(state, config, instruction, self.ctx, from_onbuild=from_onbuild)
            except PybuildError as err:
                if hasattr(err, "with_source"):
                    err.with_source(self.dockerfile.filename, self.dockerfile.tree.source_lines)
                raise
            text = instruction.original
            if step.needs_layer:
                with self._located(instruction):
                    inputs = self._inputs(step, config)
                layer_key = self._link_key(step, config, inputs)
                key = cachekey.plan_key(key, step, inputs={"layer": layer_key} if layer_key else inputs)
                event = StepEvent(stage.display_name, index, len(work), text)
                started = time.monotonic()
                entry = self.store.build_cache.get(key) if use_cache else None
                if entry is None and layer_key and use_cache:
                    entry = self.store.build_cache.get(layer_key)   # the same --link layer, on another parent
                usable = entry is not None and (entry.diff_id is None or self._layer_usable(entry.diff_id))
                if not usable and use_cache and self.options.cache_from is not None:   # --cache-from
                    restored = self.options.cache_from.restore(key, layer_key, warn=self._warner(event),
                                                               note=self._warner(event, prefix=""))
                    entry, usable = (restored, True) if restored is not None else (entry, False)
                if usable:
                    diff_id = entry.diff_id
                    self.store.build_cache.touch(key)
                    event.status = "cached"
                else:
                    self.options.on_event(event)
                    with self._located(instruction):
                        diff_id = self._execute(step, config, instruction, event)
                    size = self.store.get_layer(diff_id).size if diff_id else 0
                    entry = self.store.build_cache.put(key, diff_id, size)
                    if layer_key:
                        self.store.build_cache.put(layer_key, diff_id, size)
                    event = replace(event, status="done")
                event.seconds = time.monotonic() - started
                self.options.on_event(event)
                self._record(stage, key, layer_key, diff_id, entry.created)
                if diff_id is None:
                    config = step.config.with_history(replace(step.history, empty_layer=True)) \
                        if step.history is not None else step.config
                else:
                    if step.history is not None and step.history.created is None:
                        # BuildKit's exporter dates a layer's entry by when the layer was made (its
                        # cache record), so a fully cached rebuild gives the same image
                        from ..image.config import format_timestamp

                        step = replace(step, history=replace(step.history,
                                                             created=format_timestamp(int(entry.created * 1e9))))
                    config = step.commit(diff_id)
            else:
                key = cachekey.plan_key(key, step)
                config = step.config
            state = step.state
            steps.append(step)
        return StagePlan(stage, start, tuple(steps), config, state), key

    def _record(self, stage, key: str, layer_key: str, diff_id: str | None, created: float) -> None:
        """Remember a step's cache entry for ``--cache-to`` (per stage, in step order)."""
        from .cacheformat import CacheRecord

        records = self.cache_records.setdefault(stage.index, [])
        records.append(CacheRecord(key, diff_id, created))
        if layer_key:
            records.append(CacheRecord(layer_key, diff_id, created))

    def _warner(self, event: StepEvent, prefix: str = "warning: "):
        """A line shown under the step (a remote cache layer imported, or one that could not be used)."""
        return lambda message: self.options.on_event(replace(event, status="output",
                                                             output=f"{prefix}{message}\n".encode()))

    @contextmanager
    def _located(self, instruction):
        """A step's own errors (a missing COPY source, an unknown --chown user) name the Dockerfile line."""
        from ..errors import DockerfileError
        from .copyerror import CopyError

        try:
            yield
        except CopyError as err:
            located = DockerfileError(err.message, instruction.span, filename=self.dockerfile.filename)
            raise located.with_source(self.dockerfile.filename, self.dockerfile.tree.source_lines) from None

    def _layer_usable(self, diff_id: str) -> bool:
        return self.store.has_layer(diff_id) and self.store.get_layer(diff_id).snapshot

    # -- inputs of a step (cache key) -------------------------------------------------------------

    def _inputs(self, step: StepPlan, config) -> dict:
        instruction = step.instruction
        inputs = {}
        if type(instruction) is ins.RunInstruction or type(instruction) is ins.WorkdirInstruction:
            inputs["env"] = _digest_json({"env": list(config.config.env), "user": config.config.user,
                                          "workdir": config.config.working_dir, "argv": list(step.argv),
                                          "network": self._network(instruction)})
        if type(instruction) is ins.RunInstruction:
            inputs.update(self._run_inputs(instruction))
        if type(instruction) in (ins.CopyInstruction, ins.AddInstruction):
            from .context import source_digest

            inputs["sources"] = source_digest(instruction, tree_for=self._tree, cache=self._stat_cache(),
                                              reads=self.reads, url_digest=self._url_digest)
        return inputs

    def _link_key(self, step: StepPlan, config, inputs: dict) -> str:
        """The key of a ``COPY --link`` layer, which BuildKit builds on an empty tree and rebases: it
        leaves out the parent step, so a changed earlier step reuses the layer. What the layer still
        depends on of the image below: WORKDIR (a relative destination) and, for ``--chown`` names,
        the ids they resolve to there. "" for other steps (and --link with --chmod, which BuildKit
        copies in place)."""
        instruction = step.instruction
        if type(instruction) not in (ins.CopyInstruction, ins.AddInstruction) or not instruction.link \
                or instruction.chmod:
            return ""
        below = {"workdir": config.config.working_dir or "/"}
        if instruction.chown:
            from .copystep import resolve_chown
            from .sources import LayeredTree, read_text

            image = LayeredTree(self._lowers(config), description="image")
            with self._located(instruction):
                below["chown"] = list(resolve_chown(instruction.chown, lambda rel: read_text(image, rel)))
        return cachekey.plan_key(_LINK_BASE, step, inputs={**inputs, "below": _digest_json(below)})

    # -- what COPY/ADD read -------------------------------------------------------------------------

    def _tree(self, name: str):
        """The SourceTree of a COPY's ``--from`` (``""``: the build context); errors name the line."""
        from .copyerror import CopyError

        if self.sources is None:
            from .sources import DirectoryTree

            if name or self.context_dir is None:
                raise CopyError(f"no source named {name!r}" if name else "this build has no context")
            return DirectoryTree(self.context_dir, description="build context")
        try:
            return self.sources.tree(name)
        except CopyError:
            raise
        except PybuildError as err:
            raise CopyError(err.message) from None

    def _stat_cache(self):
        """One stat cache per build (loaded once, however many COPY steps read the context)."""
        cache = getattr(self, "_stat_cache_obj", None)
        if cache is None:
            from .context import StatCache

            cache = self._stat_cache_obj = StatCache(self.store.root)
        return cache

    def _staging(self) -> str:
        return str(self.store.prepare_snapshot())

    def _url_digest(self, url: str) -> str:
        from .addsources import download

        work = self._staging()
        try:
            return download(url, work)[1]
        finally:
            self.store.abort_snapshot(work)

    def _network(self, instruction) -> str:
        wanted = getattr(instruction, "network", "default")
        return self.options.network if wanted in ("", "default") else wanted

    # -- execution ----------------------------------------------------------------------------------

    def _lowers(self, config) -> tuple:
        return tuple(str(self.store.snapshot_path(d)) for d in reversed(config.rootfs.diff_ids))

    def _execute(self, step: StepPlan, config, instruction, event: StepEvent) -> str | None:
        kind = type(step.instruction)
        upper = str(self.store.prepare_snapshot())
        try:
            if kind is ins.RunInstruction:
                self._run(step, config, instruction, upper, event)
            elif kind is ins.WorkdirInstruction:
                from .fileops import make_workdir

                make_workdir(self._lowers(config), upper, step.workdir or config.config.working_dir,
                             config.config.user)
            elif kind in (ins.CopyInstruction, ins.AddInstruction):
                from .copyops import TRANSFER
                from .copystep import CopyStep, run_copy

                def transferred(count: int) -> None:
                    self.options.on_event(replace(event, status="transfer", transferred=count))

                token = TRANSFER.set(transferred)
                try:
                    run_copy(CopyStep(step.instruction, self._lowers(config), upper, config.config.working_dir or "/",
                                      tree_for=self._tree, staging=self._staging,
                                      release=self.store.abort_snapshot))
                finally:
                    TRANSFER.reset(token)
            else:
                raise BuildError(f"{instruction.keyword} is not supported yet")
        except BaseException:
            self.store.abort_snapshot(upper)
            raise
        return capture_layer(self.store, upper, source_date_epoch=self.options.source_date_epoch)

    # -- RUN ----------------------------------------------------------------------------------------

    @contextmanager
    def _run_located(self, instruction):
        """RUN --mount / entitlement errors name the Dockerfile line."""
        from ..errors import DockerfileError
        from .runmounts import MountError

        try:
            yield
        except MountError as err:
            located = DockerfileError(err.message, instruction.span, filename=self.dockerfile.filename)
            raise located.with_source(self.dockerfile.filename, self.dockerfile.tree.source_lines) from None

    def _run_inputs(self, instruction) -> dict:
        """Checked for every RUN, cached or not (BuildKit checks entitlements when it loads the graph):
        the entitlements its --network/--security need; then the cache-key inputs of its mounts (the
        content of bind sources) and of the build's RUN options.  Never a secret's or a cache's content."""
        from .runmounts import MountError, bind_inputs

        with self._run_located(instruction):
            if self._network(instruction) == "host" and "network.host" not in self.options.allow:
                raise MountError("network.host is not allowed (pass --allow network.host to the build)")
            if instruction.security == "insecure" and "security.insecure" not in self.options.allow:
                raise MountError("security.insecure is not allowed (pass --allow security.insecure to the build)")
            if instruction.devices:
                raise MountError("device feature is only supported in Dockerfile frontend 1.14.0-labs or later")
            inputs = bind_inputs(instruction.mounts, sources=self.sources, store=self.store, reads=self.reads) \
                if instruction.mounts else {}
        o = self.options
        if o.extra_hosts or o.ulimits or o.shm_size:
            inputs["runopts"] = _digest_json({"hosts": [[h.name, h.ip] for h in o.extra_hosts],
                                              "ulimits": [[u.name, u.soft, u.hard] for u in o.ulimits],
                                              "shm": o.shm_size})
        return inputs

    def _run(self, step: StepPlan, config, instruction, upper: str, event: StepEvent) -> None:
        from contextlib import ExitStack

        from ..sandbox import RunSpec, run
        from ..sandbox.spec import DEFAULT_SHM_SIZE
        from . import runmounts

        work = str(self.store.prepare_snapshot())
        try:
            with ExitStack() as stack, self._run_located(instruction):
                vars_env = step.state.vars.env
                env = tuple(f"{k}={v}" for k, v in vars_env.items()) if hasattr(vars_env, "items") else ()
                workdir = config.config.working_dir or "/"
                mounts = runmounts.prepare(step.instruction.mounts, workdir=workdir, env=env, sources=self.sources,
                                           store=self.store, secrets=self.options.secrets, ssh=self.options.ssh,
                                           stack=stack, cancelled=self.options.cancel.is_set)
                network = self._network(step.instruction)
                netns = ""
                if network not in ("host", "none"):    # its own namespace on the build bridge, NAT to the outside
                    from ..runtime.network import build_netns

                    netns = stack.enter_context(build_netns(self.store.root))
                spec = RunSpec(argv=tuple(step.argv), lower_dirs=self._lowers(config), upper_dir=upper, work_dir=work,
                               env=env + tuple(mounts.env), cwd=workdir, user=config.config.user,
                               network="host" if network == "host" else "none", netns=netns,
                               stdout="pipe", stderr="stdout",
                               binds=mounts.binds, tmpfs=mounts.tmpfs, overlays=mounts.overlays,
                               secrets=mounts.secrets, security=step.instruction.security or "sandbox",
                               extra_hosts=self.options.extra_hosts, ulimits=self.options.ulimits,
                               shm_size=self.options.shm_size or DEFAULT_SHM_SIZE)
                tail: list[bytes] = []

                def on_output(stream: str, chunk: bytes) -> None:
                    tail.append(chunk)
                    if len(tail) > 64:
                        del tail[:-64]
                    self.options.on_event(replace(event, status="output", output=chunk))

                result = run(spec, on_output=on_output, secrets=mounts.secret_values, cancel=self.options.cancel)
        finally:
            self.store.abort_snapshot(work)
        if result.exit_code != 0:
            lines = b"".join(tail).decode("utf-8", "replace").splitlines()[-10:]
            command = " ".join(step.argv)
            node = instruction.node
            where = f"{self.dockerfile.filename}:{node.start_line}"
            detail = "\n".join(f"  > {line}" for line in lines)
            how = f"signal {result.signal}" if result.signal else f"exit code {result.exit_code}"
            raise BuildError(f"{where}: RUN failed ({how}): {command}" + (f"\nlast output:\n{detail}" if detail else ""))
