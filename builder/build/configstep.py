"""The pure part of a build: what each instruction does to the image config and its history.

For each instruction of a stage, ``plan_step`` expands it (``evaluate.dispatch``: ARG/ENV scoping),
applies it to the image config as BuildKit's dispatchers do (``images.changes.apply_instruction``
for the metadata fields), and writes the history entry BuildKit writes (``history``). It says
whether the step makes a layer -- RUN, COPY, ADD, and WORKDIR to anything but ``/`` -- and, for
those, leaves the diff to the executor: ``StepPlan.commit(diff_id)`` then adds the layer and its
history entry.

``start_stage`` gives the config a stage starts from (a pulled image's config with ``created``
dropped and PATH added when missing, BuildKit's empty image for ``scratch``, or the config of the
stage it is built FROM) and the ONBUILD triggers to run first; ``plan_stage`` runs a whole stage,
asking a callback for the diff of each layer step (none needed when the stage has no filesystem
steps). Nothing here touches the filesystem.

Typical use::

    ctx = make_plan_context(dockerfile, build_args)
    plan = plan_stage(dockerfile, dockerfile.stages[-1], ctx, base_image=busybox_config)
    plan.config                     # the image config (history included, times not yet set)
    history.finalize_history(plan.config, ...)   # the exporter's times, once layers exist
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from ..dockerfile import instructions as ins
from ..dockerfile.evaluate import (
    BaseImageConfig, EvalContext, StageState, dispatch, expand_instruction, make_context, parse_expose_ports,
    parse_onbuild_triggers, resolve_from, start_stage as start_vars,
)
from ..dockerfile.prepass import parse_heredoc_word
from ..errors import DockerfileError
from ..image.config import ContainerConfig, History, ImageConfig, RootFS
from ..image.platform import Platform
from ..images.changes import apply_instruction
from . import history as hist
from .history import BUILDKIT, HistoryStyle

__all__ = [
    "PlanContext", "StepState", "StepPlan", "StageStart", "StagePlan", "NeedsExecutor",
    "make_plan_context", "plan_step", "start_stage", "plan_stage", "plan_target", "empty_image",
    "base_image_config", "run_argv", "default_shell", "parse_signal", "finalize_result",
]


class NeedsExecutor(DockerfileError):
    """A stage has a filesystem step (RUN, COPY, ADD, WORKDIR) and no executor was given."""


# ----------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, slots=True)
class PlanContext:
    """Everything planning needs besides the stage's own state."""

    eval: EvalContext                 # lexer, global args, build args, platforms
    style: HistoryStyle = BUILDKIT    # which BuildKit's history texts to write
    epoch: int | None = None          # SOURCE_DATE_EPOCH (seconds): the time of new history entries

    @property
    def created(self) -> str | None:
        return hist.epoch_timestamp(self.epoch)


@dataclass(frozen=True, slots=True)
class StepState:
    """The state of a stage between two steps, besides its image config."""

    vars: StageState                  # ARG/ENV scoping (expansion env, build args in scope)
    cmd_set: bool = False             # a CMD came earlier in this stage: ENTRYPOINT keeps Cmd
    inherited_args: int = 0           # how many of vars.args came from the stage this one is built FROM


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One planned step.

    ``config`` is the image config after the step. For a step without a layer it includes the
    step's history entry; for a layer step (``needs_layer``) it has the step's metadata already
    (WORKDIR's WorkingDir) but neither the layer nor its history entry: the executor makes the
    diff and calls ``commit(diff_id)``.
    """

    instruction: ins.Instruction      # expanded (ARG: values resolved)
    state: StepState                  # after the step
    config: ImageConfig
    history: History | None           # None: ONBUILD writes no entry
    needs_layer: bool = False
    undefined: tuple = ()             # UndefinedVar names (evaluate.dispatch)
    references: frozenset = frozenset()   # variable names the expansion looked up
    key_args: tuple = ()              # (name, value) of the build args the step uses (cache keys)
    argv: tuple = ()                  # RUN: the process's argv (shell form wrapped in the shell)
    workdir: str = ""                 # WORKDIR: the directory to create (mkdir -p, 0755, owner = USER)
    from_onbuild: bool = False

    def commit(self, diff_id: str | None = None) -> ImageConfig:
        """The config after the step, with its layer (``diff_id``) when it has one."""
        if not self.needs_layer:
            if diff_id is not None:
                raise ValueError(f"{self.instruction.keyword} makes no layer")
            return self.config
        if diff_id is None:
            raise ValueError(f"{self.instruction.keyword} needs the diff_id of its layer")
        return self.config.with_layer(diff_id, self.history)


@dataclass(frozen=True, slots=True)
class StageStart:
    """Where a stage starts: config, state, the ONBUILD triggers to run first, the base's history."""

    config: ImageConfig
    state: StepState
    triggers: tuple = ()              # of Instruction, parsed ONBUILD triggers
    base_history: tuple = ()          # the base image's history as pulled (the exporter's epoch rule)
    base_name: str = ""


@dataclass(frozen=True, slots=True)
class StagePlan:
    stage: ins.Stage
    start: StageStart
    steps: tuple                      # of StepPlan (triggers first)
    config: ImageConfig               # final
    state: StepState                  # final

    @property
    def base_history(self) -> tuple:
        return self.start.base_history


# ----------------------------------------------------------------------------------------------
# Context


def make_plan_context(dockerfile: ins.Dockerfile, build_args: Mapping | None = None, *,
                      style: HistoryStyle = BUILDKIT, build_platform: Platform | None = None,
                      target_platform: Platform | None = None, target: str = "") -> PlanContext:
    """Built-in and global args, the lexer, and SOURCE_DATE_EPOCH (build arg or global ARG)."""
    ctx = make_context(dockerfile, build_args, build_platform=build_platform, target_platform=target_platform,
                       target=target)
    try:
        epoch = hist.resolve_source_date_epoch(ctx.build_args, ctx.global_args.env)
    except ValueError as err:
        raise DockerfileError(str(err), filename=dockerfile.filename) from None
    return PlanContext(ctx, style, epoch)


# ----------------------------------------------------------------------------------------------
# Stage start (FROM)


def empty_image(platform: Platform) -> ImageConfig:
    """BuildKit's ``emptyImage``: the config of ``FROM scratch``."""
    env = () if platform.os == "windows" else (f"PATH={_default_path(platform.os)}",)
    return ImageConfig(architecture=platform.architecture, os=platform.os, variant=platform.variant,
                       os_version=platform.os_version, os_features=tuple(platform.os_features),
                       config=ContainerConfig(env=env, working_dir="/"), rootfs=RootFS(type="layers"))


def _default_path(os_name: str) -> str:
    from ..dockerfile.evaluate import DEFAULT_PATH_UNIX, DEFAULT_PATH_WINDOWS

    return DEFAULT_PATH_WINDOWS if os_name == "windows" else DEFAULT_PATH_UNIX


def base_image_config(config: ImageConfig) -> ImageConfig:
    """A pulled base image's config as a stage starts from it: ``created`` dropped (the history,
    its times included, is kept), PATH added to Env when missing (not on Windows).

    Keys outside the image spec (docker's ``Hostname``/``Image``..., an inline build cache) are
    dropped, at the top and in ``config``, as BuildKit reads the base config into typed fields."""
    from ..image.config import EMPTY

    config = replace(config, created=None, extra=EMPTY, config=replace(config.config, extra=EMPTY))
    env = tuple(config.config.env)
    if config.os != "windows" and not any(e.partition("=")[0] == "PATH" for e in env):
        env += (f"PATH={_default_path(config.os)}",)
    if env != tuple(config.config.env):
        config = config.with_config(env=env)
    return config


def _vars_base(config: ImageConfig) -> BaseImageConfig:
    c = config.config
    return BaseImageConfig(env=tuple(e.partition("=")[::2] for e in c.env), shell=tuple(c.shell),
                           onbuild=tuple(c.on_build), working_dir=c.working_dir, user=c.user)


def start_stage(dockerfile: ins.Dockerfile, stage: ins.Stage, ctx: PlanContext, *,
                base_image: ImageConfig | None = None, parent: "StagePlan | None" = None) -> StageStart:
    """The config and state a stage starts from, and its ONBUILD triggers (cleared from the config).

    ``parent``: the plan of the stage this one is built FROM (its ONBUILD instructions are the
    triggers). ``base_image``: the pulled image's config. Neither: the base must be ``scratch``.
    """
    try:
        resolved = resolve_from(stage, ctx.eval.global_args, ctx.eval.lexer)
    except DockerfileError as err:
        raise err.with_source(dockerfile.filename, dockerfile.tree.source_lines)
    span = stage.from_.span
    if parent is not None:
        vars_ = start_vars(parent.state.vars.platform, parent=parent.state.vars)
        config = parent.config
        expressions = [i.expression for i in parent.stage.instructions if type(i) is ins.OnbuildInstruction]
        base_history = parent.base_history
        inherited = len(vars_.args)
    elif base_image is not None:
        config = base_image_config(base_image)
        platform = config.platform if config.os else (resolved.platform or ctx.eval.target_platform)
        vars_ = start_vars(platform, _vars_base(config))
        expressions = list(config.config.on_build)
        base_history = tuple(base_image.history)
        inherited = 0
    else:
        if resolved.base_name != "scratch":
            raise ValueError(f"the config of base image {resolved.base_name!r} is needed to plan stage "
                             f"{stage.display_name!r}")
        platform = resolved.platform or ctx.eval.target_platform
        config = empty_image(platform)
        vars_ = start_vars(platform, None)
        expressions = []
        base_history = ()
        inherited = 0
    try:
        triggers = parse_onbuild_triggers(expressions, span, dockerfile.filename) if expressions else ()
    except DockerfileError as err:
        raise err.with_source(dockerfile.filename, dockerfile.tree.source_lines)
    if config.config.on_build:
        config = config.with_config(on_build=())
    return StageStart(config, StepState(vars_, False, inherited), triggers, base_history, resolved.base_name)


# ----------------------------------------------------------------------------------------------
# Steps


def default_shell(os_name: str) -> tuple:
    return ("cmd", "/S", "/C") if os_name == "windows" else ("/bin/sh", "-c")


def _with_shell(config: ImageConfig, args) -> tuple:
    """BuildKit's ``withShell``: the image's SHELL (or the OS default) + the args joined by spaces."""
    shell = tuple(config.config.shell) or default_shell(config.os)
    return shell + (" ".join(args),)


def run_argv(instruction: ins.RunInstruction, config: ImageConfig) -> tuple:
    """The argv of a RUN, heredocs included (BuildKit's ``dispatchRun``).

    One heredoc that is the whole command: a body starting with ``#!`` (not on Windows) becomes a
    file run from ``/dev/pipes/<name>``, any other body is the shell script itself. Other heredoc
    forms are handed to the shell as the command line followed by each body and its terminator.
    """
    args = list(instruction.command)
    files = instruction.files
    if files:
        if len(args) != 1 or not instruction.prepend_shell:
            raise DockerfileError(f"parsing produced an invalid run command: {hist.go_list(args)}",
                                  instruction.span)
        doc = parse_heredoc_word(args[0])
        if doc is not None:
            data = files[0].data
            if files[0].chomp:
                data = ins.chomp_heredoc(data)
            if config.os != "windows" and data.startswith("#!"):
                args = [f"/dev/pipes/{files[0].name}"]
            else:
                args = [data]
        else:
            text = args[0]
            for f in files:
                text += "\n" + f.data + f.name
            args = [text]
    if instruction.prepend_shell:
        return _with_shell(config, args)
    return tuple(args)


def _argv(config: ImageConfig, command, prepend_shell: bool) -> tuple:
    if command is None:
        return ()
    return _with_shell(config, command) if prepend_shell else tuple(command)


_SIGNALS = ("ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE",
            "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU",
            "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
            *(f"RTMIN+{i}" for i in range(1, 16)), *(f"RTMAX-{i}" for i in range(1, 15)))


def parse_signal(text: str) -> str:
    """Check a STOPSIGNAL value as ``signal.ParseSignal`` does (number, ``SIGNAME`` or ``NAME``)."""
    import re

    if re.fullmatch(r"[+-]?[0-9]+", text):
        if int(text) == 0 or not -(2**63) <= int(text) < 2**63:
            raise ValueError(f"invalid signal: {text}")
        return text
    name = text.upper()
    if name.startswith("SIG"):
        name = name[3:]
    if name not in _SIGNALS:
        raise ValueError(f"invalid signal: {text}")
    return text


def _located(err: Exception, instruction: ins.Instruction) -> DockerfileError:
    if isinstance(err, DockerfileError):
        return err.located(instruction.span)
    return DockerfileError(str(err), instruction.span)


def plan_step(state: StepState, config: ImageConfig, instruction: ins.Instruction, ctx: PlanContext, *,
              from_onbuild: bool = False) -> StepPlan:
    """One instruction (unexpanded, as parsed): the config and history BuildKit makes of it.

    Raises DockerfileError located at the instruction (expansion errors, a bad EXPOSE port, an
    invalid STOPSIGNAL, an empty VOLUME). FROM is not a step: use ``start_stage``.
    """
    kind = type(instruction)
    if kind is ins.FromInstruction:
        raise ValueError("FROM starts a stage: use start_stage")
    try:
        return _plan(state, config, instruction, ctx, from_onbuild)
    except (DockerfileError, ValueError) as err:
        raise _located(err, instruction) from None


def _references(instruction: ins.Instruction, state: StepState, ctx: PlanContext) -> frozenset:
    expanded = expand_instruction(instruction, state.vars.env, ctx.eval.lexer)
    return frozenset(expanded.matched) | frozenset(expanded.unmatched)


def _key_args(state: StepState, references: frozenset, run: bool) -> tuple:
    """The build args a step uses: those its expansion looked up, and for RUN every arg in scope
    (the RUN environment: BuildKit's ``|N K=V`` prefix, each name once, inherited ones included).
    Proxy args given without an ARG stay out, as in BuildKit."""
    vars_ = state.vars
    used: dict[str, str | None] = {}
    declared = vars_.arg_names
    for name in sorted(references):
        if name in declared:
            arg = vars_.arg(name)
            used[name] = vars_.env.get(name, arg.value if arg is not None else None)
    if run:
        for item in hist.run_args_prefix(vars_.args, vars_.env)[1:]:
            name, _, value = item.partition("=")
            used[name] = value
    return tuple(sorted(used.items()))


def _plan(state: StepState, config: ImageConfig, instruction: ins.Instruction, ctx: PlanContext,
          from_onbuild: bool) -> StepPlan:
    step = dispatch(state.vars, instruction, ctx.eval, from_onbuild=from_onbuild)
    new = step.instruction
    after = replace(state, vars=step.after)
    kind = type(new)
    style = ctx.style
    created = ctx.created
    container = config.config
    refs = _references(instruction, state, ctx)
    key_args = _key_args(state, refs, kind is ins.RunInstruction)

    def meta(created_by: str | None, new_config: ImageConfig, **extra) -> StepPlan:
        entry = None
        if created_by is not None:
            entry = hist.entry(created_by, created=created)
            new_config = new_config.with_history(entry)
        return StepPlan(new, extra.pop("state", after), new_config, entry, False, step.undefined, refs, key_args,
                        from_onbuild=from_onbuild, **extra)

    def apply(changed: ins.Instruction, **kw) -> ImageConfig:
        return replace(config, config=apply_instruction(container, changed, **kw))

    if kind is ins.EnvInstruction:
        return meta(hist.env_created_by(new.pairs), apply(new))
    if kind is ins.LabelInstruction:
        return meta(hist.label_created_by(new.pairs), apply(new))
    if kind is ins.MaintainerInstruction:
        return meta(hist.maintainer_created_by(new.maintainer), replace(config, author=new.maintainer))
    if kind is ins.CmdInstruction:
        argv = _argv(config, new.command, new.prepend_shell)
        changed = apply(replace(new, command=argv, prepend_shell=False))
        return meta(hist.cmd_created_by(argv), changed, state=replace(after, cmd_set=True))
    if kind is ins.EntrypointInstruction:
        argv = _argv(config, new.command, new.prepend_shell)
        changed = apply(replace(new, command=argv, prepend_shell=False), cmd_set=state.cmd_set)
        return meta(hist.entrypoint_created_by(argv), changed)
    if kind is ins.HealthcheckInstruction:
        created_by = hist.healthcheck_created_by(new.test, new.interval, new.timeout, new.start_period,
                                                 new.start_interval, new.retries, style)
        return meta(created_by, apply(new))
    if kind is ins.ExposeInstruction:
        ports = parse_expose_ports(new.ports)
        return meta(hist.expose_created_by(ports, style), apply(replace(new, ports=ports)))
    if kind is ins.UserInstruction:
        return meta(hist.user_created_by(new.user), apply(new))
    if kind is ins.VolumeInstruction:
        if any(v == "" for v in new.volumes):
            raise DockerfileError("VOLUME specified can not be an empty string")
        return meta(hist.volume_created_by(new.volumes), apply(new))
    if kind is ins.StopSignalInstruction:
        parse_signal(new.signal)
        return meta(hist.stopsignal_created_by(new.signal), apply(new))
    if kind is ins.ShellInstruction:
        return meta(hist.shell_created_by(new.shell), apply(new))
    if kind is ins.OnbuildInstruction:
        return meta(None, apply(new))
    if kind is ins.ArgInstruction:
        if style.arg_value == "declared":
            # The defaults as written, each expanded against the env before the instruction.
            declared = expand_instruction(instruction, state.vars.env, ctx.eval.lexer).instruction
            pairs = [(d.key, d.value) for d in declared.args]
        else:
            pairs = [(d.key, d.value) for d in new.args]
        return meta(hist.arg_created_by(pairs), config)
    if kind is ins.WorkdirInstruction:
        changed = apply(new)
        wd = changed.config.working_dir
        if wd == "/":
            return meta(hist.workdir_created_by(wd), changed)
        entry = hist.entry(hist.workdir_created_by(wd), layer=True, created=created)
        return StepPlan(new, after, changed, entry, True, step.undefined, refs, key_args, workdir=wd,
                        from_onbuild=from_onbuild)
    if kind is ins.RunInstruction:
        argv = run_argv(new, config)
        args = state.vars.args if style.run_args_inherited else state.vars.args[state.inherited_args:]
        entry = hist.entry(hist.run_created_by(argv, args, state.vars.env, style), layer=True, created=created)
        return StepPlan(new, after, config, entry, True, step.undefined, refs, key_args, argv=argv,
                        from_onbuild=from_onbuild)
    if kind is ins.CopyInstruction or kind is ins.AddInstruction:
        created_by = hist.copy_created_by(new.keyword, new.sources, new.dest,
                                          heredocs=[c.path for c in new.contents], chown=new.chown,
                                          chmod=new.chmod, parents=getattr(new, "parents", False), style=style)
        entry = hist.entry(created_by, layer=True, created=created)
        return StepPlan(new, after, config, entry, True, step.undefined, refs, key_args, from_onbuild=from_onbuild)
    raise ValueError(f"cannot plan {new.keyword}")


# ----------------------------------------------------------------------------------------------
# Stages


LayerCallback = Callable[[StepPlan], str]


def plan_stage(dockerfile: ins.Dockerfile, stage: ins.Stage, ctx: PlanContext, *,
               base_image: ImageConfig | None = None, parent: StagePlan | None = None,
               layer: LayerCallback | None = None) -> StagePlan:
    """Plan a whole stage: its start (see ``start_stage``), ONBUILD triggers, then its instructions.

    ``layer(step)`` is called for each step with a layer and returns the layer's diff_id; without it
    a filesystem step raises ``NeedsExecutor`` (stages of metadata instructions only need none).
    """
    start = start_stage(dockerfile, stage, ctx, base_image=base_image, parent=parent)
    config, state = start.config, start.state
    steps = []
    work = [(i, True) for i in start.triggers] + [(i, False) for i in stage.instructions]
    try:
        for instruction, from_onbuild in work:
            step = plan_step(state, config, instruction, ctx, from_onbuild=from_onbuild)
            if step.needs_layer:
                if layer is None:
                    raise NeedsExecutor(f"{instruction.keyword} needs an executor to make its layer",
                                        instruction.span)
                config = step.commit(layer(step))
            else:
                config = step.config
            state = step.state
            steps.append(step)
    except DockerfileError as err:
        raise err.with_source(dockerfile.filename, dockerfile.tree.source_lines)
    return StagePlan(stage, start, tuple(steps), config, state)


def plan_target(dockerfile: ins.Dockerfile, ctx: PlanContext, *, base_images: Mapping | Callable | None = None,
                target: str = "", layer: LayerCallback | None = None) -> StagePlan:
    """Plan the target stage (default: the last) and the stages it is built FROM, in order.

    ``base_images``: the pulled config of each image base, by expanded name (a mapping or a
    callable ``name -> ImageConfig``).
    """
    by_name: dict[str, int] = {}
    parents: list[int | None] = []
    names = []
    for stage in dockerfile.stages:
        resolved = resolve_from(stage, ctx.eval.global_args, ctx.eval.lexer)
        parents.append(by_name.get(resolved.base_name))
        names.append(resolved.base_name)
        if stage.name:
            by_name[stage.name] = stage.index
    if target:
        found = dockerfile.stage(target)
        if found is None:
            raise DockerfileError(f"target stage {target!r} could not be found", filename=dockerfile.filename)
        index = found.index
    else:
        index = len(dockerfile.stages) - 1
    chain = [index]
    while parents[chain[-1]] is not None:
        chain.append(parents[chain[-1]])
    plans: dict[int, StagePlan] = {}
    for i in reversed(chain):
        stage = dockerfile.stages[i]
        base = None
        if parents[i] is None and names[i] != "scratch":
            base = base_images(names[i]) if callable(base_images) else (base_images or {}).get(names[i])
        plans[i] = plan_stage(dockerfile, stage, ctx, base_image=base,
                              parent=plans[parents[i]] if parents[i] is not None else None, layer=layer)
    return plans[index]


def finalize_result(config: ImageConfig, *, labels: Mapping | None = None,
                    platform: Platform | None = None) -> ImageConfig:
    """The target's last touches: build-level ``--label`` values; an explicit ``--platform``'s
    os/architecture (BuildKit's ``finalizeResultImage``)."""
    if labels:
        merged = dict(config.config.labels)
        merged.update(labels)
        config = config.with_config(labels=merged)
    if platform is not None:
        same = platform.os == config.os and platform.architecture == config.architecture
        changes = {"os": platform.os, "architecture": platform.architecture}
        if platform.variant or not same:
            changes["variant"] = platform.variant
        if platform.os_version or not same:
            changes["os_version"] = platform.os_version
        if platform.os_features:
            changes["os_features"] = tuple(platform.os_features)
        config = replace(config, **changes)
    return config
