"""Build checks: BuildKit's Dockerfile lint rules (``docker build --check``).

``run_checks(dockerfile, build_args)`` evaluates the Dockerfile the way BuildKit's lint request does
(every stage, in order; no base image is pulled, so InvalidBaseImagePlatform is not run) and returns
a :class:`CheckReport` of warnings with BuildKit's rule names, descriptions, URLs and messages.
CopyIgnoredFile runs when the build context's ``.dockerignore`` rules are given (``ignore=``).

Configuration, as in BuildKit: the ``# check=skip=<rules|all>;error=<bool>;experimental=<rules|all>``
parser directive, replaced as a whole by the ``BUILDKIT_DOCKERFILE_CHECK`` build arg; a ``# check=``
comment right above an instruction adds skipped/experimental rules for the rules that instruction
triggers. Experimental rules (InvalidDefinitionDescription) run only when enabled, and ``skip``
does not apply to them.

Rules run in BuildKit's order: the parser's empty-continuation warnings, then the rules checked
while instructions are parsed, stage names, keyword casing, global ARG defaults in FROM, each FROM,
then each stage's instructions. Warnings are reported sorted by line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..buildcontext.ignore import go_clean
from ..errors import DockerfileError, InvalidReference, Span
from ..image.platform import Platform, host_platform, parse_platform
from ..image.reference import parse_normalized_named
from .evaluate import (
    NON_ENV_ARGS, BaseImageConfig, EvalContext, StageState, builtin_args, check_base_name, dispatch,
    dispatch_arg, evaluate_meta_args, expand_base_name, expand_platform, is_abs_path, make_context,
    parse_onbuild_triggers, parse_stage_platform, require_stages, split_port_spec, start_stage, suggest,
)
from .instructions import (
    AddInstruction, ArgInstruction, CmdInstruction, CopyInstruction, Dockerfile, EntrypointInstruction,
    EnvInstruction, ExposeInstruction, FromInstruction, HealthcheckInstruction, Instruction, LabelInstruction,
    MaintainerInstruction, OnbuildInstruction, ShellInstruction, Stage, VolumeInstruction, WorkdirInstruction,
)
from .runmount import parse_bool
from .words import go_quote

__all__ = ["Rule", "RULES", "CheckConfig", "CheckConfigError", "CheckWarning", "CheckReport",
           "parse_check_options", "check_config", "run_checks"]

_URL = "https://docs.docker.com/go/dockerfile/rule/{}/"


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    description: str
    url: str = ""
    experimental: bool = False
    needs_image_or_context: bool = False


def _kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", name).lower()


def _rule(name: str, description: str, *, url: bool = True, **kw) -> Rule:
    return Rule(name, description, _URL.format(_kebab(name)) if url else "", **kw)


_RULE_LIST = (
    _rule("StageNameCasing", "Stage names should be lowercase"),
    _rule("FromAsCasing", "The 'as' keyword should match the case of the 'from' keyword"),
    _rule("NoEmptyContinuation", "Empty continuation lines will become errors in a future release"),
    _rule("ConsistentInstructionCasing",
          "All commands within the Dockerfile should use the same casing (either upper or lower)"),
    _rule("DuplicateStageName", "Stage names should be unique"),
    _rule("ReservedStageName", "Reserved words should not be used as stage names"),
    _rule("JSONArgsRecommended",
          "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals"),
    _rule("MaintainerDeprecated",
          "The MAINTAINER instruction is deprecated, use a label instead to define an image author"),
    _rule("UndefinedArgInFrom", "FROM command must use declared ARGs"),
    _rule("WorkdirRelativePath", "Relative workdir without an absolute workdir declared within the build can "
          "have unexpected results if the base image changes"),
    _rule("UndefinedVar", "Variables should be defined before their use"),
    _rule("MultipleInstructionsDisallowed",
          "Multiple instructions of the same type should not be used in the same stage"),
    _rule("LegacyKeyValueFormat", "Legacy key/value format with whitespace separator should not be used"),
    _rule("InvalidBaseImagePlatform", "Base image platform does not match expected target platform", url=False,
          needs_image_or_context=True),
    _rule("RedundantTargetPlatform", "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as "
          "this is the default behavior"),
    _rule("SecretsUsedInArgOrEnv", "Sensitive data should not be used in the ARG or ENV commands"),
    _rule("InvalidDefaultArgInFrom",
          "Default value for global ARG results in an empty or invalid base image name"),
    _rule("FromPlatformFlagConstDisallowed", "FROM --platform flag should not use a constant value"),
    _rule("CopyIgnoredFile", "Attempting to Copy file that is excluded by .dockerignore",
          needs_image_or_context=True),
    _rule("InvalidDefinitionDescription", "Comment for build stage or argument should follow the format: "
          "`# <arg/stage name> <description>`. If this is not intended to be a description comment, add an "
          "empty line or comment between the instruction and the comment.", experimental=True),
    _rule("ExposeProtoCasing", "Protocol in EXPOSE instruction should be lowercase"),
    _rule("ExposeInvalidFormat", "IP address and host-port mapping should not be used in EXPOSE instruction. "
          "This will become an error in a future release"),
)
RULES: dict[str, Rule] = {r.name: r for r in _RULE_LIST}
R = RULES

_SECRET_DENY = re.compile(r"(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)"
                          r"(?:_|$)", re.I)
_SECRET_ALLOW = re.compile(r"(?:_|^)(?:public|file|version)(?:_|$)", re.I)
_RESERVED_STAGE_NAMES = ("context", "scratch")


# ----------------------------------------------------------------------------------------------
# Configuration


class CheckConfigError(ValueError):
    """An invalid ``check`` option string (BuildKit's message)."""


@dataclass(frozen=True, slots=True)
class CheckConfig:
    skip_all: bool = False
    skip_rules: frozenset = frozenset()
    experimental_all: bool = False
    experimental_rules: frozenset = frozenset()
    error: bool = False

    def enabled(self, rule: Rule) -> bool:
        if rule.experimental:
            return self.experimental_all or rule.name in self.experimental_rules
        return not (self.skip_all or rule.name in self.skip_rules)

    def merged(self, other: "CheckConfig") -> "CheckConfig":
        """Add ``other``'s skipped and experimental rules (``error`` is not merged)."""
        return CheckConfig(self.skip_all or other.skip_all, self.skip_rules | other.skip_rules,
                           self.experimental_all or other.experimental_all,
                           self.experimental_rules | other.experimental_rules, self.error)

    def merged_from_comments(self, comments: Iterable[str]) -> "CheckConfig":
        """The first ``check=`` comment among ``comments`` merged in; an invalid one is ignored."""
        for comment in comments:
            m = _DIRECTIVE.match(comment.lstrip(_SPACES))
            if m is None or m.group(1).lower() != "check":
                continue
            try:
                other = parse_check_options(m.group(2).split(" ", 1)[0])
            except CheckConfigError:
                return self
            return self.merged(other)
        return self


_SPACES = "\t\n\v\f\r \x85\xa0"
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z", re.S)
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")


def _rule_list(value: str) -> frozenset:
    return frozenset(part.strip() for part in value.split(","))


def parse_check_options(text: str) -> CheckConfig:
    """``skip=<rules|all>;error=<bool>;experimental=<rules|all>`` (BuildKit's ``ParseLintOptions``)."""
    text = text.strip()
    if not text:
        return CheckConfig()
    skip_all = experimental_all = error = False
    skip: frozenset = frozenset()
    experimental: frozenset = frozenset()
    for part in text.split(";", 2):
        key, sep, value = part.partition("=")
        if not sep:
            raise CheckConfigError(f"invalid check option {go_quote(part)}")
        key = key.strip()
        if key == "skip":
            value = value.strip()
            if value == "all":
                skip_all = True
            else:
                skip = _rule_list(value)
        elif key == "experimental":
            value = value.strip()
            if value == "all":
                experimental_all = True
            else:
                experimental = _rule_list(value)
        elif key == "error":
            value = value.strip()
            try:
                error = parse_bool(value)
            except ValueError:
                raise CheckConfigError(f"failed to parse check option {go_quote(part)}: strconv.ParseBool: "
                                       f"parsing {go_quote(value)}: invalid syntax") from None
        else:
            raise CheckConfigError(f"invalid check option {go_quote(key)}")
    return CheckConfig(skip_all, skip, experimental_all, experimental, error)


def _check_directive(source_lines: list[str]) -> tuple[str, int] | None:
    """The ``check`` directive as BuildKit finds it: top lines only, a ``#!`` first line skipped."""
    lines = [line.rstrip("\n").rstrip("\r") for line in source_lines]
    start = 1 if lines and lines[0].startswith("#!") else 0
    seen: set[str] = set()
    for index in range(start, len(lines)):
        line = lines[index]
        if not line.startswith("#"):
            break
        m = _DIRECTIVE.match(line[1:].lstrip(_SPACES))
        if m is None:
            break
        name = m.group(1).lower()
        if name not in _KNOWN_DIRECTIVES or name in seen:
            break
        seen.add(name)
        if name == "check":
            return m.group(2).split(" ", 1)[0], index + 1
    return None


def check_config(dockerfile: Dockerfile, build_args: Mapping | None = None) -> CheckConfig:
    """The file-wide configuration: ``BUILDKIT_DOCKERFILE_CHECK`` if given, else the directive."""
    value = (build_args or {}).get("BUILDKIT_DOCKERFILE_CHECK")
    if value is not None:
        try:
            return parse_check_options(value)
        except CheckConfigError as err:
            raise DockerfileError(f"failed to parse build-arg:BUILDKIT_DOCKERFILE_CHECK: {err}",
                                  filename=dockerfile.filename) from None
    found = _check_directive(dockerfile.tree.source_lines)
    if found is None:
        return CheckConfig()
    text, line = found
    try:
        return parse_check_options(text)
    except CheckConfigError as err:
        error = DockerfileError(f"failed to parse check options: {err}", Span(line))
        raise error.with_source(dockerfile.filename, dockerfile.tree.source_lines) from None


# ----------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class CheckWarning:
    rule: str
    description: str
    url: str
    message: str
    file: str
    line: int
    end_line: int

    def to_json(self) -> dict:
        return {"rule": self.rule, "description": self.description, "url": self.url, "message": self.message,
                "file": self.file, "line": self.line, "end_line": self.end_line}


def _source_block(filename: str, lines: list[str], first: int, last: int) -> list[str]:
    """The excerpt BuildKit prints under a warning (errdefs ``Source.Print``)."""
    start, end = first, max(first, last)
    if start > len(lines) or start < 1:
        return []
    end = min(end, len(lines))
    pad = 4 if end == start else 2
    shown_start, p = start, 0
    while p < pad:
        if start > 1:
            start -= 1
            p += 1
        if end != len(lines):
            end += 1
            p += 1
        p += 1
    out = [f"{filename}:{shown_start}", "-" * 20]
    for number in range(start, end + 1):
        marker = ">>>" if first <= number <= max(first, last) else "   "
        out.append(f" {number:>3} | {marker} {lines[number - 1].rstrip(chr(13))}")
    out.append("-" * 20)
    return out


@dataclass(frozen=True)
class CheckReport:
    """Warnings (sorted by line), the file-wide config, and an error when one was collected."""

    filename: str
    warnings: tuple
    config: CheckConfig = CheckConfig()
    error: DockerfileError | None = None
    source: str = field(default="", repr=False)

    @property
    def lint_error(self) -> str | None:
        """BuildKit's build failure with ``error=true``: "lint violation found for rules: …"."""
        if not self.config.error or not self.warnings:
            return None
        rules = list(dict.fromkeys(w.rule for w in self.warnings))
        return "lint violation found for rules: " + ", ".join(rules)

    @property
    def exit_code(self) -> int:
        """1 when any check fired or evaluation failed, as ``docker build --check``."""
        return 1 if self.warnings or self.error is not None else 0

    def render(self) -> str:
        """Text like ``docker build --check`` prints."""
        lines = self.source.split("\n")
        out: list[str] = []
        count = len(self.warnings)
        if count == 1:
            out.append("Check complete, 1 warning has been found!")
        elif count > 1:
            out.append(f"Check complete, {count} warnings have been found!")
        for w in self.warnings:
            out.append("")
            out.append(f"WARNING: {w.rule}" + (f" - {w.url}" if w.url else ""))
            out.append(w.message)
            out.extend(_source_block(w.file, lines, w.line, w.end_line))
        if self.error is not None:
            if count:
                out.append("")
            out.append(f"ERROR: {self.error.message}")
            span = self.error.span
            if span is not None:
                out.extend(_source_block(self.filename, lines, span.line, span.end_line))
        elif self.lint_error:
            out.append("")
            out.append(f"ERROR: {self.lint_error}")
        elif not count:
            out.append("Check complete, no warnings found.")
        return "\n".join(out)

    def to_json(self) -> dict:
        """``{"file", "warnings": [{rule, description, url, message, file, line, end_line}], "error"}``."""
        error = None
        if self.error is not None:
            span = self.error.span
            error = {"message": self.error.message, "file": self.filename,
                     "line": span.line if span else None, "end_line": span.end_line if span else None}
        elif self.lint_error:
            error = {"message": self.lint_error, "file": self.filename, "line": None, "end_line": None}
        return {"file": self.filename, "warnings": [w.to_json() for w in self.warnings], "error": error}


# ----------------------------------------------------------------------------------------------
# The checker


@dataclass
class _ImageTracker:
    """Per-stage image facts the rules need (inherited by a stage built on another)."""

    shell: tuple = ()
    workdir_set: bool = False


BaseEnv = Mapping | BaseImageConfig | Callable | None


def _base_config(base_env: BaseEnv, name: str) -> BaseImageConfig | None:
    if base_env is None:
        return None
    if isinstance(base_env, BaseImageConfig):
        return base_env
    if callable(base_env):
        return BaseImageConfig.coerce(base_env(name))
    if all(isinstance(v, str) for v in base_env.values()):
        return BaseImageConfig.coerce(base_env)      # one env for every image
    return BaseImageConfig.coerce(base_env.get(name))


class _Checker:
    def __init__(self, dockerfile: Dockerfile, build_args: dict, config: CheckConfig, base_env: BaseEnv,
                 build_platform: Platform | None, target_platform: Platform | None, ignore=None):
        self.ignore = ignore if ignore and not ignore.has_exclusions else None   # see copy_ignored
        self.df = dockerfile
        self.build_args = build_args
        self.config = config
        self.base_env = base_env
        self.build_platform = build_platform or host_platform()
        self.target_platform = target_platform or self.build_platform
        self.warnings: list[CheckWarning] = []

    # -- reporting ----------------------------------------------------------------------------

    def warn(self, config: CheckConfig, rule: Rule, span: Span, message: str) -> None:
        if not config.enabled(rule):
            return
        self.warnings.append(CheckWarning(rule.name, rule.description, rule.url, message, self.df.filename,
                                          span.line, span.end_line))

    def report(self, error: DockerfileError | None = None) -> CheckReport:
        ordered = tuple(sorted(self.warnings, key=lambda w: w.line))
        return CheckReport(self.df.filename, ordered, self.config, error, "".join(self.df.tree.source_lines))

    # -- the walk -----------------------------------------------------------------------------

    def run(self) -> None:
        df, g = self.df, self.config
        for message, line in df.tree.warnings:
            if message.startswith("Empty continuation line"):
                self.warn(g, R["NoEmptyContinuation"], Span(line), "Empty continuation line")
        self.parse_time_rules()
        require_stages(df)
        self.stage_names()
        self.command_casing()
        self.default_args_in_from()
        ctx = make_context(df, self.build_args, build_platform=self.build_platform,
                           target_platform=self.target_platform)
        froms = [self.resolve_from(stage, ctx) for stage in df.stages]
        self.dispatch_stages(ctx, froms)

    def _instructions_in_order(self) -> Iterable[Instruction]:
        yield from self.df.meta_args
        for stage in self.df.stages:
            yield stage.from_
            yield from stage.instructions

    def parse_time_rules(self) -> None:
        g = self.config
        for instruction in self._instructions_in_order():
            kind = type(instruction)
            if kind not in (MaintainerInstruction, FromInstruction, ArgInstruction):
                continue
            node = instruction.node
            cfg = g.merged_from_comments(node.line.comments)
            span = instruction.span
            if kind is MaintainerInstruction:
                self.warn(cfg, R["MaintainerDeprecated"], span, "Maintainer instruction is deprecated in favor of "
                          "using label")
            elif kind is FromInstruction:
                written = instruction.stage_name_as_written
                if written and written != written.lower():
                    self.warn(cfg, R["StageNameCasing"], span, f"Stage name '{written}' should be lowercase")
                if len(node.args) >= 3:
                    keyword, as_word = node.keyword_text, node.args[1].text
                    if keyword in (keyword.lower(), keyword.upper()):
                        expected = as_word.lower() if keyword == keyword.lower() else as_word.upper()
                        if as_word != expected:
                            self.warn(cfg, R["FromAsCasing"], span,
                                      f"'{as_word}' and '{keyword}' keywords' casing do not match")
                if instruction.stage_name:
                    self.definition_description(cfg, "FROM", [instruction.stage_name], node.line.comments, span)
            else:
                keys = [a.key for a in instruction.args]
                self.definition_description(cfg, "ARG", keys, node.line.comments, span)

    def definition_description(self, cfg: CheckConfig, keyword: str, keys: list[str], comments, span: Span):
        if not comments or not keys:
            return
        if comments[-1].split(" ")[0] in keys:
            return
        example = keys[0] if len(keys) == 1 else "<arg_key>"
        self.warn(cfg, R["InvalidDefinitionDescription"], span,
                  f"Comment for {keyword} should follow the format: `# {example} <description>`")

    def stage_names(self) -> None:
        seen: set[str] = set()
        for stage in self.df.stages:
            if not stage.name:
                continue
            span = stage.from_.span
            if stage.name in _RESERVED_STAGE_NAMES:
                self.warn(self.config, R["ReservedStageName"], span,
                          f"Stage name should not use the same name as reserved stage {go_quote(stage.name)}")
            if stage.name in seen:
                self.warn(self.config, R["DuplicateStageName"], span,
                          f"Duplicate stage name {go_quote(stage.name)}, stage names should be unique")
            seen.add(stage.name)

    def command_casing(self) -> None:
        def consistent(word: str) -> bool:
            return word in (word.lower(), word.upper())

        entries: list[tuple[str, Span]] = []
        for stage in self.df.stages:
            entries.append((stage.from_.node.keyword_text, stage.from_.span))
            entries.extend((i.node.keyword_text, i.span) for i in stage.instructions)
        lower = sum(1 for word, _ in entries if consistent(word) and word == word.lower())
        upper = sum(1 for word, _ in entries if consistent(word) and word != word.lower())
        majority_lower = lower > upper
        for word, span in entries:
            if majority_lower and word.lower() != word:
                casing = "lowercase"
            elif not majority_lower and word.upper() != word:
                casing = "uppercase"
            else:
                continue
            self.warn(self.config, R["ConsistentInstructionCasing"], span,
                      f"Command '{word}' should match the case of the command majority ({casing})")

    def default_args_in_from(self) -> None:
        """InvalidDefaultArgInFrom: each FROM with the global ARG defaults only (no build args)."""
        from .expand import ShellLexer

        df = self.df
        lexer = ShellLexer(df.escape)
        target = df.stages[-1].name if df.stages else ""
        builtins = builtin_args(self.build_platform, self.target_platform, self.build_args, target)
        try:
            defaults = evaluate_meta_args(df.meta_args, builtins, None, lexer)
        except DockerfileError:
            return
        for stage in df.stages:
            try:
                result = lexer.process_word_with_matches(stage.base_name, defaults.env)
            except DockerfileError:
                return
            try:
                parse_normalized_named(result.result)
            except InvalidReference:
                self.warn(self.config, R["InvalidDefaultArgInFrom"], stage.from_.span,
                          f"Default value for ARG {stage.base_name} results in empty or invalid base image name")

    def undeclared_in_from(self, cfg: CheckConfig, unmatched, names: tuple, span: Span) -> None:
        for name in sorted(unmatched):
            if name in names:
                continue
            message = f"FROM argument '{name}' is not declared"
            match = suggest(name, names)
            if match:
                message += f" (did you mean {match}?)"
            self.warn(cfg, R["UndefinedArgInFrom"], span, message)

    def resolve_from(self, stage: Stage, ctx: EvalContext) -> tuple[str, Platform | None]:
        cfg = self.config.merged_from_comments(stage.from_.node.line.comments)
        span = stage.from_.span
        global_env = ctx.global_args.env
        names = ctx.global_args.names
        base = expand_base_name(stage, global_env, ctx.lexer)
        self.undeclared_in_from(cfg, base.unmatched, names, span)
        base_name = check_base_name(stage, base)
        match = expand_platform(stage, global_env, ctx.lexer)
        if match is None:
            return base_name, None
        self.undeclared_in_from(cfg, match.unmatched, names, span)
        if (len(match.matched) == 1 and not match.unmatched and "TARGETPLATFORM" in match.matched
                and match.result == global_env.get("TARGETPLATFORM")):
            self.warn(cfg, R["RedundantTargetPlatform"], span, f"Setting platform to predefined "
                      f"{stage.from_.platform} in FROM is redundant as this is the default behavior")
        if not match.matched and not match.unmatched:
            try:
                constant = parse_platform(match.result)
            except ValueError:
                constant = None
            if constant is not None and not (constant.os in stage.name or constant.architecture in stage.name):
                self.warn(cfg, R["FromPlatformFlagConstDisallowed"], span,
                          f"FROM --platform flag should not use constant value {go_quote(match.result)}")
        return base_name, parse_stage_platform(stage, match, global_env)

    def dispatch_stages(self, ctx: EvalContext, froms: list) -> None:
        df = self.df
        by_name: dict[str, int] = {}
        finals: list[tuple[StageState, _ImageTracker]] = []
        for stage, (base_name, platform) in zip(df.stages, froms):
            parent = by_name.get(base_name)
            if stage.name:
                by_name[stage.name] = stage.index
            span = stage.from_.span
            if parent is not None:
                parent_state, parent_tracker = finals[parent]
                state = start_stage(parent_state.platform, parent=parent_state)
                tracker = _ImageTracker(parent_tracker.shell, parent_tracker.workdir_set)
                expressions = [i.expression for i in df.stages[parent].instructions
                               if type(i) is OnbuildInstruction]
                triggers = parse_onbuild_triggers(expressions, span, df.filename)
            else:
                config = None if base_name == "scratch" else _base_config(self.base_env, base_name)
                state = start_stage(platform or ctx.target_platform, config)
                tracker = _ImageTracker(tuple(config.shell) if config else ())
                triggers = parse_onbuild_triggers(config.onbuild, span, df.filename) if config else ()
            used: dict[type, Span] = {}
            for instruction in triggers + stage.instructions:
                try:
                    state = self.dispatch_one(ctx, state, tracker, used, instruction)
                except DockerfileError as err:
                    raise err.located(instruction.span)
            finals.append((state, tracker))

    def dispatch_one(self, ctx: EvalContext, state: StageState, tracker: _ImageTracker, used: dict,
                     instruction: Instruction) -> StageState:
        cfg = self.config.merged_from_comments(instruction.node.line.comments)
        span = instruction.span
        kind = type(instruction)
        if kind is ArgInstruction:
            step = dispatch_arg(state, instruction, ctx)
            env = state.env
            for value, names in zip(step.values, step.undefined):
                self.secret(cfg, "ARG", value.key, span)
                self.undefined(cfg, names, env, span)
                if value.value is not None and value.key not in NON_ENV_ARGS:
                    env = env.set(value.key, value.value)
            return step.after
        step = dispatch(state, instruction, ctx)
        self.undefined(cfg, step.undefined, state.env, span)
        new = step.instruction
        keyword = instruction.node.keyword_text
        if self.ignore is not None and kind in (CopyInstruction, AddInstruction):
            self.copy_ignored(cfg, new, span)
        if kind is EnvInstruction:
            for pair in new.pairs:
                if pair.legacy:
                    self.legacy_key_value(cfg, keyword, span)
                self.secret(cfg, "ENV", pair.key, span)
        elif kind is LabelInstruction:
            for pair in new.pairs:
                if pair.legacy:
                    self.legacy_key_value(cfg, keyword, span)
        elif kind is WorkdirInstruction:
            if not tracker.workdir_set and not is_abs_path(new.path, state.platform.os):
                self.warn(cfg, R["WorkdirRelativePath"], span, f"Relative workdir {go_quote(new.path)} can have "
                          "unexpected results if the base image changes")
            tracker.workdir_set = True
        elif kind in (CmdInstruction, EntrypointInstruction, HealthcheckInstruction):
            previous = used.get(kind)
            if previous is not None:
                self.warn(cfg, R["MultipleInstructionsDisallowed"], previous, f"Multiple {keyword} instructions "
                          "should not be used in the same stage because only the last one will be used")
            used[kind] = span
            if kind is not HealthcheckInstruction and new.prepend_shell and not tracker.shell:
                self.warn(cfg, R["JSONArgsRecommended"], span, f"JSON arguments recommended for {keyword} to "
                          "prevent unintended behavior related to OS signals")
        elif kind is ShellInstruction:
            tracker.shell = tuple(new.shell)
        elif kind is ExposeInstruction:
            self.expose(cfg, new.ports, span)
        elif kind is VolumeInstruction:
            if any(v == "" for v in new.volumes):
                raise DockerfileError("VOLUME specified can not be an empty string", span)
        return step.after

    def copy_ignored(self, cfg: CheckConfig, new: Instruction, span: Span) -> None:
        """CopyIgnoredFile (BuildKit's ``validateCopySourcePath``): a local source the context's
        .dockerignore excludes. Not checked when the rules have exceptions (a directory may be
        excluded and a file in it re-included), for ``COPY --from``, or for ADD's URLs."""
        if type(new) is CopyInstruction:
            if new.from_:
                return
            command = "Copy"
        else:
            command = "Add"
        for source in new.sources:
            if command == "Add" and _is_remote_source(source):
                continue
            src = go_clean(source)
            if src in (".", "/") and not self.ignore.root_ignored():
                continue        # the context root itself, unless a pattern excludes every root entry
            if self.ignore.matches_or_parent_matches(src):
                self.warn(cfg, R["CopyIgnoredFile"], span,
                          f"Attempting to {command} file {go_quote(src)} that is excluded by .dockerignore")

    def undefined(self, cfg: CheckConfig, names: Iterable[str], env: Mapping, span: Span) -> None:
        options = list(env)
        for name in names:
            message = f"Usage of undefined variable '${name}'"
            match = suggest(name, options)
            if match:
                message += f" (did you mean ${match}?)"
            self.warn(cfg, R["UndefinedVar"], span, message)

    def secret(self, cfg: CheckConfig, keyword: str, key: str, span: Span) -> None:
        if _SECRET_DENY.search(key) and not _SECRET_ALLOW.search(key):
            self.warn(cfg, R["SecretsUsedInArgOrEnv"], span,
                      f"Do not use ARG or ENV instructions for sensitive data ({keyword} {go_quote(key)})")

    def legacy_key_value(self, cfg: CheckConfig, keyword: str, span: Span) -> None:
        self.warn(cfg, R["LegacyKeyValueFormat"], span,
                  f'"{keyword} key=value" should be used instead of legacy "{keyword} key value" format')

    def expose(self, cfg: CheckConfig, ports: tuple, span: Span) -> None:
        for raw in ports:
            try:
                spec = split_port_spec(raw)
            except ValueError as err:
                raise DockerfileError(str(err), span) from None
            if spec.proto != spec.proto.lower():
                self.warn(cfg, R["ExposeProtoCasing"], span,
                          f"Defined protocol '{raw}' in EXPOSE instruction should be lowercase")
            if spec.ip or spec.host_port:
                self.warn(cfg, R["ExposeInvalidFormat"], span, "EXPOSE instruction should not define an IP "
                          f"address or host-port mapping, found '{raw}'")
            try:
                spec.ports()
            except ValueError as err:
                raise DockerfileError(str(err), span) from None


def _is_remote_source(source: str) -> bool:
    from ..buildcontext.location import is_http_url, parse_git_ref

    return is_http_url(source) or parse_git_ref(source) is not None


def run_checks(dockerfile: Dockerfile, build_args: Mapping | None = None, base_env: BaseEnv = None, *,
               build_platform: Platform | None = None, target_platform: Platform | None = None,
               collect_errors: bool = False, ignore=None) -> CheckReport:
    """Run every rule that needs no base image on ``dockerfile`` (CopyIgnoredFile only with ``ignore``).

    ``build_args``: name -> value, or None for "not given". ``base_env``: the environment of base
    images, as one env dict for every image-based stage, a dict image name -> env/``BaseImageConfig``,
    a callable image name -> either, or a ``BaseImageConfig`` (None: no image, ``pybuild check``).
    ``ignore``: the build context's ``IgnoreRules`` (enables CopyIgnoredFile).

    An invalid check configuration, or an error found while evaluating (an expansion error, an
    empty base name, a bad platform or port), raises a DockerfileError located at the instruction;
    the warnings found before it are on the error as ``err.report``. With ``collect_errors`` the
    error is returned in ``report.error`` instead.
    """
    given = {k: v for k, v in (build_args or {}).items() if v is not None}
    config = check_config(dockerfile, given)
    checker = _Checker(dockerfile, given, config, base_env, build_platform, target_platform, ignore)
    try:
        checker.run()
    except DockerfileError as err:
        err.with_source(dockerfile.filename, dockerfile.tree.source_lines)
        if not collect_errors:
            err.report = checker.report()  # type: ignore[attr-defined]
            raise
        return checker.report(err)
    return checker.report()
