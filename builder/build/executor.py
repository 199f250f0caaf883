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


@dataclass
class ExecOptions:
    no_cache: bool = False
    no_cache_filter: tuple = ()      # stage names whose steps must not use the cache
    network: str = "host"
    source_date_epoch: int | None = None
    on_event: Callable[[StepEvent], None] = field(default=lambda event: None)
    # set when another stage failed or the build was interrupted: stages stop at their next step
    cancel: threading.Event = field(default_factory=threading.Event)


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
                key = cachekey.plan_key(key, step, inputs=inputs)
                event = StepEvent(stage.display_name, index, len(work), text)
                started = time.monotonic()
                entry = self.store.build_cache.get(key) if use_cache else None
                if entry is not None and (entry.diff_id is None or self._layer_usable(entry.diff_id)):
                    diff_id = entry.diff_id
                    self.store.build_cache.touch(key)
                    event.status = "cached"
                else:
                    self.options.on_event(event)
                    with self._located(instruction):
                        diff_id = self._execute(step, config, instruction, event)
                    size = self.store.get_layer(diff_id).size if diff_id else 0
                    entry = self.store.build_cache.put(key, diff_id, size)
                    event = replace(event, status="done")
                event.seconds = time.monotonic() - started
                self.options.on_event(event)
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

    @contextmanager
    def _located(self, instruction):
        """A step's own errors (a missing COPY source, an unknown --chown user) name the Dockerfile line."""
        from ..errors import DockerfileError
        from .fileops import CopyError

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
        if type(instruction) in (ins.CopyInstruction, ins.AddInstruction):
            from .context import source_digest

            inputs["sources"] = source_digest(self.context_dir, instruction, self.store.root, self.reads)
        return inputs

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
                from .fileops import TRANSFER, copy_into

                def transferred(count: int) -> None:
                    self.options.on_event(replace(event, status="transfer", transferred=count))

                token = TRANSFER.set(transferred)
                try:
                    copy_into(self.context_dir, self._lowers(config), upper, step.instruction,
                              config.config.working_dir or "/", source_date_epoch=self.options.source_date_epoch)
                finally:
                    TRANSFER.reset(token)
            else:
                raise BuildError(f"{instruction.keyword} is not supported yet")
        except BaseException:
            self.store.abort_snapshot(upper)
            raise
        return capture_layer(self.store, upper, source_date_epoch=self.options.source_date_epoch)

    def _run(self, step: StepPlan, config, instruction, upper: str, event: StepEvent) -> None:
        from ..sandbox import RunSpec, run

        where = f"{self.dockerfile.filename}:{instruction.node.start_line}"
        if step.instruction.mounts:
            raise BuildError(f"{where}: RUN --mount is not supported yet (it comes with part two of the build "
                             "engine); the step was not run")
        if step.instruction.security == "insecure":
            raise BuildError(f"{where}: RUN --security=insecure is not supported yet")
        if step.instruction.devices:
            raise BuildError(f"{where}: device feature is only supported in Dockerfile frontend 1.14.0-labs or later")

        work = str(self.store.prepare_snapshot())
        try:
            vars_env = step.state.vars.env
            env = tuple(f"{k}={v}" for k, v in vars_env.items()) if hasattr(vars_env, "items") else ()
            network = self._network(step.instruction)
            spec = RunSpec(argv=tuple(step.argv), lower_dirs=self._lowers(config), upper_dir=upper, work_dir=work,
                           env=env, cwd=config.config.working_dir or "/", user=config.config.user,
                           network="none" if network == "none" else "host", stdout="pipe", stderr="stdout")
            tail: list[bytes] = []

            def on_output(stream: str, chunk: bytes) -> None:
                tail.append(chunk)
                if len(tail) > 64:
                    del tail[:-64]
                self.options.on_event(replace(event, status="output", output=chunk))

            result = run(spec, on_output=on_output)
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
