"""Evaluation of a typed Dockerfile that needs neither base images nor a build context.

This is the pure half of BuildKit's ``dockerfile2llb`` dispatch (``convert.go``, ``platform.go``):

* the built-in platform args of this machine and the predefined proxy args (``builtin_args``,
  ``proxy_env``);
* global (meta) ARGs before the first FROM, with ``--build-arg`` overrides (``evaluate_meta_args``);
* FROM base names and ``--platform`` values expanded with the global args (``expand_base_name``,
  ``expand_platform``, ``resolve_from``);
* per-stage ARG/ENV scoping (``start_stage``, ``dispatch``, ``dispatch_arg``);
* word expansion of exactly the instructions and fields BuildKit expands (``expand_instruction``),
  reporting the variable names that were looked up for the UndefinedVar check.

Everything here is data in, data out: frozen values, no I/O. A base image's configuration is an
input (``BaseImageConfig``, or just its environment as a dict); ``pybuild check`` passes none, the
build engine passes what it pulled. ``evaluate_dockerfile`` runs the whole walk for callers that do
not need to interleave anything with it.

Expansion errors and evaluation errors are raised as :class:`~builder.errors.DockerfileError`
subclasses located at the offending instruction.
"""

from __future__ import annotations

from typing import NamedTuple

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from ..errors import DockerfileError, ExpansionError, InstructionError, InvalidReference, Span
from ..image.platform import Platform, PlatformError, host_platform, normalize_platform, parse_platform
from ..image.reference import Reference, parse_normalized_named
from .expand import ExpansionResult, ShellLexer
from .instructions import (
    AddInstruction, ArgInstruction, CopyInstruction, Dockerfile, EnvInstruction, ExposeInstruction,
    FromInstruction, Instruction, KeyValue, LabelInstruction, OnbuildInstruction, RunInstruction, Stage,
    StopSignalInstruction, UserInstruction, VolumeInstruction, WorkdirInstruction, parse_instruction,
)
from .runmount import parse_mount
from .words import go_quote

__all__ = [
    "Platform", "PlatformError", "host_platform", "parse_platform", "normalize_platform",
    "Env", "ArgValue", "GlobalArgs", "BaseImageConfig", "StageState", "EvalContext", "Expanded", "Step",
    "ArgStep", "ResolvedFrom", "PortSpec", "ImageReference", "StageEvaluation", "Evaluation",
    "BUILTIN_ARGS", "PROXY_ARGS", "NON_ENV_ARGS", "DEFAULT_PATH_UNIX", "DEFAULT_PATH_WINDOWS",
    "builtin_args", "proxy_env", "evaluate_meta_args", "make_context", "expand_base_name", "check_base_name",
    "expand_platform", "parse_stage_platform", "resolve_from", "suggest", "base_config_for", "start_stage",
    "expand_instruction", "dispatch", "dispatch_arg", "undefined_names", "parse_onbuild_triggers",
    "split_port_spec", "parse_expose_ports", "parse_image_reference", "is_abs_path", "require_stages",
    "evaluate_dockerfile",
]

BUILTIN_ARGS = ("BUILDPLATFORM", "BUILDOS", "BUILDOSVERSION", "BUILDARCH", "BUILDVARIANT", "TARGETPLATFORM",
                "TARGETOS", "TARGETOSVERSION", "TARGETARCH", "TARGETVARIANT", "TARGETSTAGE")
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
# Build args that never become environment variables of a stage.
NON_ENV_ARGS = frozenset(("BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"))
DEFAULT_PATH_UNIX = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_PATH_WINDOWS = "c:\\Windows\\System32;c:\\Windows;C:\\Windows\\System32\\WindowsPowerShell\\v1.0"


# ----------------------------------------------------------------------------------------------
# Environments


class Env(Mapping):
    """An immutable, ordered environment with BuildKit's ``EnvList`` semantics.

    Setting a key that exists replaces its value and moves it to the end (``keys()`` order matters
    for "did you mean" suggestions). Lookups are case-sensitive (Unix). ``set`` returns a new Env.
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, items: Mapping | Iterable = ()):
        data: dict[str, str] = {}
        pairs = items.items() if isinstance(items, Mapping) else items
        for key, value in pairs:
            data.pop(key, None)
            data[key] = value
        self._data = data
        self._hash = None

    def set(self, key: str, value: str) -> "Env":
        new = Env.__new__(Env)
        data = dict(self._data)
        data.pop(key, None)
        data[key] = value
        new._data = data
        new._hash = None
        return new

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def get(self, key, default=None):
        return self._data.get(key, default)

    def __contains__(self, key) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other) -> bool:
        if isinstance(other, Env):
            return list(self._data.items()) == list(other._data.items())
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"Env({list(self._data.items())!r})"

    def pairs(self) -> tuple:
        return tuple(self._data.items())

    def to_list(self) -> list[str]:
        """``["K=V", ...]`` as an OCI config / process environment."""
        return [f"{k}={v}" for k, v in self._data.items()]


def _parse_key_value(entry: str) -> tuple[str, str]:
    key, _, value = entry.partition("=")
    return key, value


def _add_config_env(pairs: tuple, key: str, value: str) -> tuple:
    """``Config.Env`` update: replace in place when the key exists, else append."""
    return _update_config_env(pairs, ((key, value),))


def _update_config_env(pairs: tuple, updates) -> tuple:
    """Several ``Config.Env`` updates at once (a dict keeps a replaced key where it was)."""
    merged = dict(pairs)
    for key, value in updates:
        merged[key] = value
    return tuple(merged.items())


# ----------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, slots=True)
class ArgValue:
    """A build arg in scope: its name and value (``None``: declared without any value)."""

    key: str
    value: str | None


@dataclass(frozen=True, slots=True)
class GlobalArgs:
    """The global scope: built-in args, then meta ARGs with a value (BuildKit's ``globalArgs``)."""

    env: Env                  # what FROM and an in-stage ``ARG X`` (no default) see
    declared: tuple = ()      # of ArgValue, every meta ARG definition in order
    builtins: Env = field(default_factory=Env)

    @property
    def names(self) -> tuple:
        """Names a FROM may use without UndefinedArgInFrom: every global arg, with or without value."""
        seen = dict.fromkeys(self.env)
        for arg in self.declared:
            seen.setdefault(arg.key, None)
        return tuple(seen)


@dataclass(frozen=True, slots=True)
class BaseImageConfig:
    """What a stage inherits from its base image's config (the parts evaluation needs)."""

    env: tuple = ()           # of (key, value), in the image's order
    shell: tuple = ()
    onbuild: tuple = ()       # trigger expressions, run at the start of a stage built on the image
    working_dir: str = ""
    user: str = ""

    @classmethod
    def coerce(cls, value) -> "BaseImageConfig | None":
        """Accept a BaseImageConfig, an env dict, a list of ``K=V`` strings, or None."""
        if value is None or isinstance(value, BaseImageConfig):
            return value
        if isinstance(value, Mapping):
            return cls(env=tuple((str(k), str(v)) for k, v in value.items()))
        return cls(env=tuple(_parse_key_value(str(entry)) for entry in value))


@dataclass(frozen=True, slots=True)
class StageState:
    """ARG/ENV state of a stage between two instructions."""

    env: Env                  # seen by expansion and RUN: image env, PATH, ENV, ARG values
    config_env: tuple         # the image's Config.Env as (key, value) pairs (ENV only, never ARGs)
    args: tuple               # of ArgValue: build args in scope, declaration order (inherited first)
    platform: Platform

    @property
    def arg_names(self) -> frozenset:
        return frozenset(a.key for a in self.args)

    def arg(self, key: str) -> ArgValue | None:
        for arg in reversed(self.args):
            if arg.key == key:
                return arg
        return None


@dataclass(frozen=True, slots=True)
class EvalContext:
    """Everything stage evaluation needs besides the stage's own state."""

    lexer: ShellLexer
    global_args: GlobalArgs
    build_args: Mapping       # name -> value (only args actually given)
    target_platform: Platform
    build_platform: Platform


class Expanded(NamedTuple):
    """An instruction after word expansion.

    ``lookups``: for each expanded word, in BuildKit's order, the variable names that were looked up
    and not found (BuildKit reports one UndefinedVar per word and name). ``matched``/``unmatched``
    are the unions over all words.
    """

    instruction: Instruction
    matched: frozenset = frozenset()
    unmatched: frozenset = frozenset()
    lookups: tuple = ()


class Step(NamedTuple):
    """One dispatched instruction: the expanded instruction and the states around it."""

    instruction: Instruction  # expanded
    before: StageState
    after: StageState
    undefined: tuple = ()     # UndefinedVar names, one entry per (word, name), BuildKit's order
    from_onbuild: bool = False


@dataclass(frozen=True, slots=True)
class ArgStep:
    """``dispatch_arg`` result: per definition, its value and the undefined names in its default."""

    instruction: ArgInstruction
    before: StageState
    after: StageState
    values: tuple             # of ArgValue, one per definition
    undefined: tuple          # of tuple[str, ...], one per definition


@dataclass(frozen=True, slots=True)
class ResolvedFrom:
    base_name: str            # expanded
    platform: Platform | None  # from --platform, None when not given
    base_match: ExpansionResult
    platform_match: ExpansionResult | None


# ----------------------------------------------------------------------------------------------
# Global scope


def builtin_args(build_platform: Platform, target_platform: Platform, build_args: Mapping | None = None,
                 target: str = "") -> Env:
    """The built-in platform args (BuildKit's ``defaultArgs``), each overridable by a build arg."""
    overrides = build_args or {}
    bp, tp = build_platform, target_platform
    values = (
        ("BUILDPLATFORM", bp.format()), ("BUILDOS", bp.os), ("BUILDOSVERSION", bp.os_version),
        ("BUILDARCH", bp.architecture), ("BUILDVARIANT", bp.variant),
        ("TARGETPLATFORM", tp.format_all()), ("TARGETOS", tp.os), ("TARGETOSVERSION", tp.os_version),
        ("TARGETARCH", tp.architecture), ("TARGETVARIANT", tp.variant), ("TARGETSTAGE", target or "default"),
    )
    env = Env()
    for key, value in values:
        override = overrides.get(key)
        env = env.set(key, override if override is not None else value)
    return env


def proxy_env(build_args: Mapping) -> tuple:
    """Environment a RUN gets from the predefined proxy build args (no ARG needed), as BuildKit sets it.

    Keys match case-insensitively; both spellings are set to the value (``HTTP_PROXY`` and
    ``http_proxy``). These never enter the expansion environment.
    """
    found: dict[str, str] = {}
    for key in sorted(k for k, v in build_args.items() if v is not None):
        lowered = key.lower()
        if lowered in ("http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"):
            found[lowered] = build_args[key]
    out = []
    for name in ("http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"):
        value = found.get(name)
        if value:
            out.extend(((name.upper(), value), (name, value)))
    return tuple(out)


def _given(build_args: Mapping | None) -> dict:
    return {k: v for k, v in (build_args or {}).items() if v is not None}


def evaluate_meta_args(meta_args: Iterable[ArgInstruction], base: Env, build_args: Mapping | None,
                       lexer: ShellLexer) -> GlobalArgs:
    """ARGs before the first FROM (BuildKit's ``buildMetaArgs``).

    Each value is the build arg when given (used as is), else the default expanded against the
    global args so far. Raises ExpansionError located at the ARG.
    """
    given = _given(build_args)
    env = base
    declared: list[ArgValue] = []
    for instruction in meta_args:
        for definition in instruction.args:
            value = definition.value
            if definition.key in given:
                value = given[definition.key]
            elif value is not None:
                value = _expand(lexer, value, env, instruction).result
            if value is not None:
                env = env.set(definition.key, value)
            declared.append(ArgValue(definition.key, value))
    return GlobalArgs(env, tuple(declared), base)


def require_stages(dockerfile: Dockerfile) -> None:
    """BuildKit refuses a Dockerfile with global ARGs only."""
    if not dockerfile.stages:
        raise DockerfileError("dockerfile contains no stages to build", filename=dockerfile.filename)


def make_context(dockerfile: Dockerfile, build_args: Mapping | None = None, *,
                 build_platform: Platform | None = None, target_platform: Platform | None = None,
                 target: str = "") -> EvalContext:
    """Built-in args, meta args and a lexer for ``dockerfile`` (errors located at the meta ARG)."""
    given = _given(build_args)
    bp = build_platform or host_platform()
    tp = target_platform or bp
    if not target and dockerfile.stages:
        target = dockerfile.stages[-1].name
    lexer = ShellLexer(dockerfile.escape)
    builtins = builtin_args(bp, tp, given, target)
    try:
        global_args = evaluate_meta_args(dockerfile.meta_args, builtins, given, lexer)
    except DockerfileError as err:
        raise err.with_source(dockerfile.filename, dockerfile.tree.source_lines)
    return EvalContext(lexer, global_args, given, tp, bp)


# ----------------------------------------------------------------------------------------------
# FROM


def _expand(lexer: ShellLexer, word: str, env: Mapping, instruction: Instruction | None) -> ExpansionResult:
    try:
        return lexer.process_word_with_matches(word, env)
    except DockerfileError as err:
        if instruction is not None:
            err.located(instruction.span)
        raise


def expand_base_name(stage: Stage, global_env: Mapping, lexer: ShellLexer) -> ExpansionResult:
    """Expand the FROM image with the global args (error located at the FROM)."""
    return _expand(lexer, stage.from_.base_name, global_env, stage.from_)


def check_base_name(stage: Stage, result: ExpansionResult) -> str:
    if result.result == "":
        raise DockerfileError(f"base name ({stage.from_.base_name}) should not be blank", stage.from_.span)
    return result.result


def expand_platform(stage: Stage, global_env: Mapping, lexer: ShellLexer) -> ExpansionResult | None:
    """Expand FROM ``--platform`` with the global args; None when the flag is not given."""
    value = stage.from_.platform
    if not value:
        return None
    try:
        return lexer.process_word_with_matches(value, global_env)
    except ExpansionError as err:
        # BuildKit wraps the error with the (partial) result, which is empty here.
        err.message = f"failed to process arguments for platform : {err.message}"
        err.args = (err.message,)
        raise err.located(stage.from_.span)


def parse_stage_platform(stage: Stage, result: ExpansionResult, global_env: Mapping) -> Platform:
    """Parse an expanded ``--platform`` value (BuildKit's errors, with "did you mean" hints)."""
    span = stage.from_.span
    options = list(global_env)
    if result.result == "":
        message = f"empty platform value from expression {stage.from_.platform}"
        raise DockerfileError(_suggest_any(message, result.unmatched, options), span)
    try:
        return parse_platform(result.result)
    except PlatformError as err:
        message = _suggest_any(str(err), result.unmatched, options)
        raise DockerfileError(f"failed to parse platform {stage.from_.platform}: {message}", span) from None


def resolve_from(stage: Stage, global_args: GlobalArgs, lexer: ShellLexer) -> ResolvedFrom:
    """FROM base name and platform, expanded and checked (BuildKit's ``buildDispatchStates``)."""
    base = expand_base_name(stage, global_args.env, lexer)
    check_base_name(stage, base)
    platform_match = expand_platform(stage, global_args.env, lexer)
    platform = parse_stage_platform(stage, platform_match, global_args.env) if platform_match else None
    return ResolvedFrom(base.result, platform, base, platform_match)


def suggest(value: str, options: Iterable[str]) -> str:
    """BuildKit's case-sensitive "did you mean" (``flags.suggest``), "" when nothing is close."""
    from .flags import suggest as closest

    return closest(value, list(options), True) or ""


def _suggest_any(message: str, names: Iterable[str], options: list[str]) -> str:
    for name in sorted(names):
        match = suggest(name, options)
        if match:
            return f"{message} (did you mean {match}?)"
    return message


# ----------------------------------------------------------------------------------------------
# Stages


def start_stage(platform: Platform, base: BaseImageConfig | Mapping | Iterable | None = None,
                parent: StageState | None = None) -> StageState:
    """The state at the start of a stage.

    Built on an earlier stage (``parent``): its env and args in scope are inherited, then its image
    env is applied again (so an ENV value wins over a same-named ARG of the parent, as in BuildKit).
    Built on an image: the image's env (``base``; None for ``scratch`` or when no image was
    pulled), plus ``PATH`` when missing (not on Windows).
    """
    if parent is not None:
        env = parent.env
        for key, value in parent.config_env:
            env = env.set(key, value)
        return StageState(env, parent.config_env, parent.args, parent.platform)
    config = BaseImageConfig.coerce(base)
    pairs: tuple = ()
    for key, value in (config.env if config else ()):
        pairs = _add_config_env(pairs, key, value)
    if platform.os != "windows" and not any(k == "PATH" for k, _ in pairs):
        pairs = pairs + (("PATH", DEFAULT_PATH_UNIX),)
    return StageState(Env(pairs), pairs, (), platform)


def undefined_names(unmatched: Iterable[str], state: StageState) -> tuple:
    """Names reported by UndefinedVar: not a build arg in scope and not a non-env BuildKit arg."""
    declared = state.arg_names
    return tuple(n for n in sorted(unmatched) if n not in declared and n not in NON_ENV_ARGS)


class _Words:
    """Expands the words of one instruction, recording lookups per word."""

    __slots__ = ("lexer", "env", "matched", "unmatched", "lookups")

    def __init__(self, lexer: ShellLexer, env: Mapping):
        self.lexer = lexer
        self.env = env
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()
        self.lookups: list[frozenset] = []

    def _record(self, result: ExpansionResult) -> str:
        if result.matched:
            self.matched |= result.matched
        if result.unmatched:
            self.unmatched |= result.unmatched
        self.lookups.append(result.unmatched)
        return result.result

    def word(self, text: str) -> str:
        return self._record(self.lexer.process_word_with_matches(text, self.env))

    def raw(self, text: str) -> str:
        """COPY/ADD heredoc bodies: a ``\\`` lexer that keeps quotes (BuildKit's ``ExpandRaw``)."""
        return self._record(_RAW_LEXER.process_word_with_matches(text, self.env))

    def many(self, texts: Iterable[str]) -> tuple:
        return tuple(self.word(t) for t in texts)


_RAW_LEXER = ShellLexer("\\", skip_process_quotes=True)


def _expand_pairs(words: _Words, pairs: tuple) -> tuple:
    out = []
    for pair in pairs:
        key = words.word(pair.key)
        value = words.word(pair.value)
        out.append(KeyValue(key, value, pair.legacy))
    return tuple(out)


def _expand_contents(words: _Words, contents: tuple) -> tuple:
    return tuple(replace(c, data=words.raw(c.data)) if c.expand else c for c in contents)


def expand_instruction(instruction: Instruction, env: Mapping, lexer: ShellLexer) -> Expanded:
    """Expand exactly the fields BuildKit expands, all against ``env`` (the state before it).

    FROM: image and ``--platform`` (pass the global args as ``env``). ARG: default values (not the
    keys). ENV/LABEL: keys and values. COPY: sources, dest, ``--chown``, ``--chmod``; ADD: those and
    ``--checksum``; heredoc sources of both only when their delimiter was unquoted. WORKDIR, USER,
    STOPSIGNAL: the value. VOLUME: each path. EXPOSE: each word, split on whitespace after
    expansion (no lookups are reported, as in BuildKit). RUN: only ``--mount`` values, returned
    parsed (``runmount.Mount``). Everything else is returned unchanged. Errors are located at the
    instruction.
    """
    words = _Words(lexer, env)
    try:
        new = _expand_fields(instruction, words, lexer, env)
    except DockerfileError as err:
        raise err.located(instruction.span)
    if new is instruction and not words.lookups:
        return Expanded(instruction)
    return Expanded(new, frozenset(words.matched), frozenset(words.unmatched), tuple(words.lookups))


def _changed(instruction, **fields):
    """``replace`` only when some field really changed (most words expand to themselves)."""
    for name, value in fields.items():
        if getattr(instruction, name) != value:
            return replace(instruction, **fields)
    return instruction


def _expand_fields(instruction: Instruction, words: _Words, lexer: ShellLexer, env: Mapping) -> Instruction:
    kind = type(instruction)
    if kind is EnvInstruction or kind is LabelInstruction:
        return _changed(instruction, pairs=_expand_pairs(words, instruction.pairs))
    if kind is CopyInstruction:
        chown = words.word(instruction.chown)
        chmod = words.word(instruction.chmod)
        sources = words.many(instruction.sources)
        dest = words.word(instruction.dest)
        contents = _expand_contents(words, instruction.contents)
        return _changed(instruction, chown=chown, chmod=chmod, sources=sources, dest=dest, contents=contents)
    if kind is AddInstruction:
        chown = words.word(instruction.chown)
        chmod = words.word(instruction.chmod)
        checksum = words.word(instruction.checksum)
        sources = words.many(instruction.sources)
        dest = words.word(instruction.dest)
        contents = _expand_contents(words, instruction.contents)
        return _changed(instruction, chown=chown, chmod=chmod, checksum=checksum, sources=sources, dest=dest,
                       contents=contents)
    if kind is WorkdirInstruction:
        return _changed(instruction, path=words.word(instruction.path))
    if kind is UserInstruction:
        return _changed(instruction, user=words.word(instruction.user))
    if kind is StopSignalInstruction:
        return _changed(instruction, signal=words.word(instruction.signal))
    if kind is VolumeInstruction:
        return _changed(instruction, volumes=words.many(instruction.volumes))
    if kind is ExposeInstruction:
        ports: list[str] = []
        for port in instruction.ports:
            ports.extend(lexer.process_words(port, env))
        return _changed(instruction, ports=tuple(ports))
    if kind is RunInstruction:
        if not instruction.mounts:
            return instruction
        mounts = []
        for value in instruction.mounts:
            mounts.append(parse_mount(value, words.word) if isinstance(value, str) else value)
        return _changed(instruction, mounts=tuple(mounts))
    if kind is ArgInstruction:
        args = tuple(replace(a, value=words.word(a.value)) if a.value is not None else a for a in instruction.args)
        return _changed(instruction, args=args)
    if kind is FromInstruction:
        base = words.word(instruction.base_name)
        platform = words.word(instruction.platform) if instruction.platform else ""
        return _changed(instruction, base_name=base, platform=platform)
    return instruction


def dispatch_arg(state: StageState, instruction: ArgInstruction, ctx: EvalContext) -> ArgStep:
    """An in-stage ARG (BuildKit's ``dispatchArg``).

    For each definition in turn: the build arg when given (not expanded); else its default expanded
    in the stage env *including the definitions before it in the same instruction*; else, with no
    default, the global value of the same name; else no value. A value becomes a stage env var
    (overriding an ENV of the same name for expansion and RUN, not in the image config).
    """
    env = state.env
    args = list(state.args)
    values, undefined = [], []
    for definition in instruction.args:
        key, value = definition.key, definition.value
        names: tuple = ()
        if key in ctx.build_args:
            value = ctx.build_args[key]
        elif value is not None:
            result = _expand(ctx.lexer, value, env, instruction)
            probe = StageState(env, state.config_env, tuple(args), state.platform)
            names = undefined_names(result.unmatched, probe)
            value = result.result
        else:
            value = ctx.global_args.env.get(key)
        if value is not None and key not in NON_ENV_ARGS:
            env = env.set(key, value)
        arg = ArgValue(key, value)
        args.append(arg)
        values.append(arg)
        undefined.append(names)
    after = StageState(env, state.config_env, tuple(args), state.platform)
    return ArgStep(instruction, state, after, tuple(values), tuple(undefined))


def dispatch(state: StageState, instruction: Instruction, ctx: EvalContext, *, from_onbuild: bool = False) -> Step:
    """Expand one instruction against the stage state and apply its effect on ARG/ENV.

    ARG goes through ``dispatch_arg``: the step's instruction carries the resolved values (None: no
    value) and its ``undefined`` is the concatenation over the definitions.
    """
    if type(instruction) is ArgInstruction:
        arg_step = dispatch_arg(state, instruction, ctx)
        undefined = tuple(n for names in arg_step.undefined for n in names)
        resolved = tuple(replace(d, value=v.value) for d, v in zip(instruction.args, arg_step.values))
        return Step(replace(instruction, args=resolved), state, arg_step.after, undefined, from_onbuild)
    expanded = expand_instruction(instruction, state.env, ctx.lexer)
    undefined: list[str] = []
    if type(instruction) is not FromInstruction and expanded.unmatched:
        for names in expanded.lookups:
            if names:
                undefined.extend(undefined_names(names, state))
    after = state
    new = expanded.instruction
    if type(new) is EnvInstruction:
        env = state.env
        for pair in new.pairs:
            env = env.set(pair.key, pair.value)
        config = _update_config_env(state.config_env, ((p.key, p.value) for p in new.pairs))
        after = StageState(env, config, state.args, state.platform)
    return Step(new, state, after, tuple(undefined), from_onbuild)


def parse_onbuild_triggers(expressions: Iterable[str], span: Span, filename: str = "Dockerfile") -> tuple:
    """Parse ONBUILD trigger expressions into instructions located at ``span`` (the FROM)."""
    from .syntax import parse_text

    out = []
    for expression in expressions:
        try:
            tree = parse_text(expression, filename)
            if len(tree.nodes) != 1:
                raise DockerfileError("onbuild trigger should be a single expression")
            node = tree.nodes[0]
            line = node.line._replace(start_line=span.line, end_line=span.end_line,
                                      segments=((0, span.line, 0),), comments=())
            node = node._replace(line=line)
            instruction = parse_instruction(node)
            if type(instruction) is FromInstruction:
                raise InstructionError("FROM isn't allowed as an ONBUILD trigger")
        except DockerfileError as err:
            err.source_lines = None
            raise err.located(span, override=True)
        out.append(instruction)
    return tuple(out)


# ----------------------------------------------------------------------------------------------
# EXPOSE ports (BuildKit's convert_expose.go)


@dataclass(frozen=True, slots=True)
class PortSpec:
    """One EXPOSE word split into ``[ip:][host:]container[/proto]`` (proto as written, or tcp)."""

    raw: str
    ip: str
    host_port: str
    container_port: str
    proto: str

    def ports(self) -> tuple:
        """``("80/tcp", ...)``: ranges expanded, proto lower-cased. Raises ValueError (BuildKit's text)."""
        ip = self.ip
        if ip.startswith("["):
            if not ip.endswith("]"):
                raise ValueError(f"invalid IP address {ip}: address {ip}: missing ']' in address")
            ip = ip[1:-1]
        if ip:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise ValueError("invalid IP address: " + ip) from None
        try:
            start, end = _port_range(self.container_port)
        except ValueError:
            raise ValueError("invalid containerPort: " + self.container_port) from None
        if self.host_port:
            try:
                host_start, host_end = _port_range(self.host_port)
            except ValueError:
                raise ValueError("invalid hostPort: " + self.host_port) from None
            if end - start != host_end - host_start and end != start:
                raise ValueError(f"invalid ranges specified for container and host Ports: "
                                 f"{self.container_port} and {self.host_port}")
        proto = self.proto.lower()
        return tuple(f"{p}/{proto}" for p in range(start, end + 1))


def _port_number(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(text)
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(text)
    return value


def _port_range(text: str) -> tuple[int, int]:
    if text == "":
        raise ValueError(text)
    start, sep, end = text.partition("-")
    first = _port_number(start)
    if not sep or start == end:
        return first, first
    last = _port_number(end)
    if last < first:
        raise ValueError(text)
    return first, last


def split_port_spec(raw: str) -> PortSpec:
    """Split one EXPOSE word; a bad protocol or missing port raises ValueError (BuildKit's text)."""
    parts = raw.split(":")
    if len(parts) == 1:
        ip, host, container = "", "", parts[0]
    elif len(parts) == 2:
        ip, host, container = "", parts[0], parts[1]
    else:
        ip, host, container = ":".join(parts[:-2]), parts[-2], parts[-1]
    port, _, proto = container.partition("/")
    if port == "":
        raise ValueError(f"invalid port: {go_quote(raw)}: no port specified")
    if proto.lower() == "":
        proto = "tcp"
    elif proto.lower() not in ("tcp", "udp", "sctp"):
        raise ValueError(f"invalid port: {go_quote(raw)}: invalid proto: {proto}")
    return PortSpec(raw, ip, host, port, proto)


def parse_expose_ports(ports: Iterable[str]) -> tuple:
    """Expanded EXPOSE words -> ``("80/tcp", ...)`` for the image config. Raises ValueError."""
    out: list[str] = []
    for raw in ports:
        out.extend(split_port_spec(raw).ports())
    return tuple(out)


# ----------------------------------------------------------------------------------------------
# Image references (distribution/reference ParseNormalizedNamed), paths


# Moved to builder.image.reference; these names stay for the callers of this module.
ImageReference = Reference


def parse_image_reference(text: str) -> Reference:
    """``reference.ParseNormalizedNamed``: raises ValueError with the library's messages."""
    try:
        return parse_normalized_named(text)
    except InvalidReference as err:
        raise ValueError(err.reason) from None


def is_abs_path(path: str, os_name: str = "linux") -> bool:
    """``system.IsAbs``: on Windows a drive letter is dropped and ``\\`` counts as ``/``."""
    if os_name == "windows":
        if len(path) >= 2 and path[1] == ":" and path[0].isalpha():
            path = path[2:]
        path = path.replace("\\", "/")
    return path.startswith("/")


# ----------------------------------------------------------------------------------------------
# Whole Dockerfile


@dataclass(frozen=True, slots=True)
class StageEvaluation:
    stage: Stage
    base_name: str            # expanded FROM image (or stage name)
    parent: int | None        # index of the stage this one is built on, if any
    platform: Platform
    initial: StageState
    steps: tuple              # of Step (ONBUILD triggers of the parent first)
    final: StageState


@dataclass(frozen=True, slots=True)
class Evaluation:
    context: EvalContext
    froms: tuple              # of ResolvedFrom, per stage
    stages: tuple             # of StageEvaluation


BaseImages = Callable[[str], "BaseImageConfig | Mapping | None"] | Mapping | None


def base_config_for(base_images: BaseImages, name: str) -> BaseImageConfig | None:
    """Look up a base image config: a callable ``name -> config``, a dict ``name -> config``."""
    if base_images is None:
        return None
    if callable(base_images):
        return BaseImageConfig.coerce(base_images(name))
    return BaseImageConfig.coerce(base_images.get(name))


def evaluate_dockerfile(dockerfile: Dockerfile, build_args: Mapping | None = None, *,
                        base_images: BaseImages = None, build_platform: Platform | None = None,
                        target_platform: Platform | None = None, target: str = "") -> Evaluation:
    """Resolve every FROM, then walk every stage in order (no lint, no I/O).

    ``base_images`` gives the config of a pulled base image by its expanded name (None/absent: no
    env but PATH). Errors are DockerfileErrors located at the instruction, with the source attached.
    """
    from ..perf import gc_paused

    with gc_paused():
        return _evaluate(dockerfile, build_args, base_images, build_platform, target_platform, target)


def _evaluate(dockerfile, build_args, base_images, build_platform, target_platform, target) -> Evaluation:
    require_stages(dockerfile)
    ctx = make_context(dockerfile, build_args, build_platform=build_platform,
                       target_platform=target_platform, target=target)
    try:
        froms = tuple(resolve_from(stage, ctx.global_args, ctx.lexer) for stage in dockerfile.stages)
        by_name: dict[str, int] = {}
        finals: list[StageState] = []
        results: list[StageEvaluation] = []
        for stage, resolved in zip(dockerfile.stages, froms):
            parent = by_name.get(resolved.base_name)
            if stage.name:
                by_name[stage.name] = stage.index
            triggers: tuple = ()
            if parent is not None:
                state = start_stage(finals[parent].platform, parent=finals[parent])
                parent_stage = dockerfile.stages[parent]
                expressions = [i.expression for i in parent_stage.instructions if type(i) is OnbuildInstruction]
                triggers = parse_onbuild_triggers(expressions, stage.from_.span, dockerfile.filename)
            else:
                platform = resolved.platform or ctx.target_platform
                config = None if resolved.base_name == "scratch" else base_config_for(base_images, resolved.base_name)
                state = start_stage(platform, config)
                if config is not None and config.onbuild:
                    triggers = parse_onbuild_triggers(config.onbuild, stage.from_.span, dockerfile.filename)
            initial = state
            steps = []
            for instruction in triggers:
                step = dispatch(state, instruction, ctx, from_onbuild=True)
                steps.append(step)
                state = step.after
            for instruction in stage.instructions:
                step = dispatch(state, instruction, ctx)
                steps.append(step)
                state = step.after
            finals.append(state)
            results.append(StageEvaluation(stage, resolved.base_name, parent, state.platform, initial,
                                           tuple(steps), state))
    except DockerfileError as err:
        raise err.with_source(dockerfile.filename, dockerfile.tree.source_lines)
    return Evaluation(ctx, froms, tuple(results))
