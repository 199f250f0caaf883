"""The instruction layer: syntax tree -> typed instructions grouped in stages.

One frozen value per instruction, with every flag BuildKit's frontend declares, checked as BuildKit
checks them (``instructions/parse.go``): argument counts, flags, ONBUILD triggers, HEALTHCHECK forms,
heredoc sources, stage names, and "only ARG before the first FROM". Variables are *not* expanded
here: as in BuildKit that happens when a stage is built, against the stage's environment
(``expand_instruction`` does it, for exactly the instructions and fields BuildKit expands).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Callable

from ..errors import DockerfileError, InstructionError, Span
from . import flags as fl
from .prepass import parse_heredoc_word
from .frontend import Frontend
from .syntax import EXEC, SyntaxNode, SyntaxTree

INSTRUCTION_NAMES = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
                     "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
                     "WORKDIR")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*\Z")
_ONBUILD_PREFIX = re.compile(r"^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", re.I)


# ----------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: str
    legacy: bool = False  # written as "ENV key value" (BuildKit's NoDelim)


@dataclass(frozen=True, slots=True)
class ArgDefinition:
    key: str
    value: str | None   # None: declared without a default
    doc: str = ""       # from a "# KEY description" comment right above


@dataclass(frozen=True, slots=True)
class InlineFile:
    """A heredoc attached to RUN/CMD/ENTRYPOINT (its body, as written)."""

    name: str
    data: str
    chomp: bool
    expand: bool


@dataclass(frozen=True, slots=True)
class SourceContent:
    """A heredoc used as a COPY/ADD source: a file named after the delimiter."""

    path: str
    data: str
    expand: bool


@dataclass(frozen=True, slots=True)
class Instruction:
    """Base of every typed instruction; ``node`` is the syntax node it came from."""

    node: SyntaxNode = field(repr=False, compare=False)

    @property
    def keyword(self) -> str:
        return self.node.keyword.upper()

    @property
    def span(self) -> Span:
        return self.node.line.span

    @property
    def original(self) -> str:
        return self.node.original


@dataclass(frozen=True, slots=True)
class FromInstruction(Instruction):
    base_name: str
    stage_name: str           # lower-cased; "" when unnamed
    platform: str             # --platform value, unexpanded
    stage_name_as_written: str = ""


@dataclass(frozen=True, slots=True)
class RunInstruction(Instruction):
    command: tuple            # exec form argv, or one shell string
    prepend_shell: bool       # shell form
    files: tuple              # of InlineFile (heredocs)
    mounts: tuple             # raw --mount values, parsed at build time (see runmount.parse_mount)
    network: str              # default | none | host
    security: str             # sandbox | insecure
    devices: tuple            # raw --device values (labs-only feature; rejected when building)
    flags_used: frozenset = frozenset()


@dataclass(frozen=True, slots=True)
class CmdInstruction(Instruction):
    command: tuple
    prepend_shell: bool
    files: tuple = ()


@dataclass(frozen=True, slots=True)
class EntrypointInstruction(Instruction):
    command: tuple | None     # None: "ENTRYPOINT []" or no arguments (clears the entrypoint)
    prepend_shell: bool
    files: tuple = ()


@dataclass(frozen=True, slots=True)
class ShellInstruction(Instruction):
    shell: tuple


@dataclass(frozen=True, slots=True)
class EnvInstruction(Instruction):
    pairs: tuple              # of KeyValue


@dataclass(frozen=True, slots=True)
class LabelInstruction(Instruction):
    pairs: tuple              # of KeyValue


@dataclass(frozen=True, slots=True)
class MaintainerInstruction(Instruction):
    maintainer: str


@dataclass(frozen=True, slots=True)
class CopyInstruction(Instruction):
    sources: tuple            # paths / globs, unexpanded
    contents: tuple           # of SourceContent (heredoc sources)
    dest: str
    from_: str
    chown: str
    chmod: str
    link: bool
    parents: bool
    excludes: tuple


@dataclass(frozen=True, slots=True)
class AddInstruction(Instruction):
    sources: tuple
    contents: tuple
    dest: str
    chown: str
    chmod: str
    link: bool
    keep_git_dir: bool | None
    checksum: str
    unpack: bool | None
    excludes: tuple


@dataclass(frozen=True, slots=True)
class WorkdirInstruction(Instruction):
    path: str


@dataclass(frozen=True, slots=True)
class UserInstruction(Instruction):
    user: str


@dataclass(frozen=True, slots=True)
class VolumeInstruction(Instruction):
    volumes: tuple


@dataclass(frozen=True, slots=True)
class ExposeInstruction(Instruction):
    ports: tuple              # as written (sorted, as BuildKit sorts them); expanded at build time


@dataclass(frozen=True, slots=True)
class StopSignalInstruction(Instruction):
    signal: str


@dataclass(frozen=True, slots=True)
class ArgInstruction(Instruction):
    args: tuple               # of ArgDefinition


@dataclass(frozen=True, slots=True)
class HealthcheckInstruction(Instruction):
    test: tuple               # ("NONE",) | ("CMD", argv...) | ("CMD-SHELL", command)
    interval: int = 0         # nanoseconds; 0 = inherit/default
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True, slots=True)
class OnbuildInstruction(Instruction):
    expression: str           # the trigger, as written (heredoc bodies appended)
    trigger: str              # the trigger's keyword, upper-case


@dataclass(frozen=True, slots=True)
class Stage:
    """A build stage: its FROM and the instructions after it."""

    index: int
    name: str                 # lower-cased "AS" name, or "" when unnamed
    from_: FromInstruction
    instructions: tuple

    @property
    def base_name(self) -> str:
        return self.from_.base_name

    @property
    def platform(self) -> str:
        return self.from_.platform

    @property
    def display_name(self) -> str:
        return self.name or f"stage-{self.index}"


@dataclass(frozen=True, slots=True)
class Dockerfile:
    """A whole Dockerfile: directives, global (meta) ARGs and stages."""

    filename: str
    syntax: str | None         # the "# syntax=" directive, as written
    frontend: "Frontend"       # what it resolved to (always docker/dockerfile 1.x: pybuild itself)
    escape: str
    directives: tuple          # of (name, value, line)
    meta_args: tuple           # of ArgInstruction before the first FROM
    stages: tuple              # of Stage
    tree: SyntaxTree = field(repr=False, compare=False)

    def stage(self, name_or_index: str) -> Stage | None:
        key = name_or_index.lower()
        for stage in self.stages:
            if stage.name == key:
                return stage
        if key.isdigit() and int(key) < len(self.stages):
            return self.stages[int(key)]
        return None


# ----------------------------------------------------------------------------------------------
# Parsing, one function per instruction


def _error(message: str, node: SyntaxNode, *, span: Span | None = None, hint: str | None = None) -> InstructionError:
    return InstructionError(message, span or node.line.span, hint=hint)


def _args(node: SyntaxNode) -> list[str]:
    """BuildKit's ``nodeArgs``: argument strings (an ONBUILD gives its trigger keyword and arguments)."""
    if node.subcommand is not None:
        sub = node.subcommand
        return [sub.keyword_text] + _args(sub)
    return node.values()


def _command_line(node: SyntaxNode, args: list[str]) -> tuple:
    if not args:
        return ()
    if node.shape == EXEC:
        return tuple(args)
    return (" ".join(args),)


def _inline_files(node: SyntaxNode) -> tuple:
    if not node.heredocs:
        return ()
    return tuple(InlineFile(h.name, h.content, h.chomp, h.expand) for h in node.heredocs)


def _arg_span(node: SyntaxNode, index: int) -> Span | None:
    if index < len(node.args) and node.shape != EXEC:
        word = node.args[index]
        text = word.text if hasattr(word, "text") else word.key
        return node.line.span_at(word.offset, len(text))
    return None


def _key_values(node: SyntaxNode, args: list[str], keyword: str) -> tuple:
    if not args:
        raise _error(f"{keyword} requires at least one argument", node)
    if len(args) % 3:
        raise _error(f"Bad input to {keyword}, too many arguments", node)
    pairs = []
    for i in range(0, len(args), 3):
        if not args[i]:
            raise _error(f"{keyword} names can not be blank", node, span=_arg_span(node, i // 3))
        pairs.append(KeyValue(args[i], args[i + 1], args[i + 2] == ""))
    return tuple(pairs)


def _parse_env(node, args):
    fl.parse_flags(node, {})
    return EnvInstruction(node, _key_values(node, args, "ENV"))


def _parse_label(node, args):
    fl.parse_flags(node, {})
    return LabelInstruction(node, _key_values(node, args, "LABEL"))


def _parse_maintainer(node, args):
    if len(args) != 1:
        raise _error("MAINTAINER requires exactly one argument", node)
    fl.parse_flags(node, {})
    return MaintainerInstruction(node, args[0])


def _sources_and_dest(node: SyntaxNode, args: list[str], keyword: str):
    sources, dest = args[:-1], args[-1]
    if parse_heredoc_word(dest) is not None:
        raise _error(f"{keyword} cannot accept a heredoc as a destination", node,
                     span=_arg_span(node, len(args) - 1))
    bodies = {h.name: h for h in node.heredocs}
    paths, contents = [], []
    for src in sources:
        doc = parse_heredoc_word(src)
        if doc is None:
            paths.append(src)
            continue
        found = bodies.get(doc.name)
        data = found.content if found is not None else ""
        if doc.chomp:
            data = chomp_heredoc(data)
        contents.append(SourceContent(doc.name, data, doc.expand))
    return tuple(paths), tuple(contents), dest


def chomp_heredoc(data: str) -> str:
    """``<<-``: remove leading tabs from every line."""
    return re.sub(r"(?m)^\t+", "", data)


_COPY_FLAGS = {"chown": (fl.STRING, ""), "from": (fl.STRING, ""), "chmod": (fl.STRING, ""),
               "link": (fl.BOOL, "false"), "exclude": (fl.STRINGS, ()), "parents": (fl.BOOL, "false")}
_ADD_FLAGS = {"chown": (fl.STRING, ""), "chmod": (fl.STRING, ""), "link": (fl.BOOL, "false"),
              "keep-git-dir": (fl.BOOL, "false"), "checksum": (fl.STRING, ""), "unpack": (fl.BOOL, "false"),
              "exclude": (fl.STRINGS, ())}


def _parse_add(node, args):
    if len(args) < 2:
        raise _error("ADD requires at least two arguments, but only one was provided. Destination could not be determined", node)
    f = fl.parse_flags(node, _ADD_FLAGS)
    sources, contents, dest = _sources_and_dest(node, args, "ADD")
    return AddInstruction(node, sources, contents, dest, f.get("chown"), f.get("chmod"), f.is_true("link"),
                          f.optional_bool("keep-git-dir"), f.get("checksum"), f.optional_bool("unpack"),
                          f.get("exclude"))


def _parse_copy(node, args):
    if len(args) < 2:
        raise _error("COPY requires at least two arguments, but only one was provided. Destination could not be determined", node)
    f = fl.parse_flags(node, _COPY_FLAGS)
    sources, contents, dest = _sources_and_dest(node, args, "COPY")
    return CopyInstruction(node, sources, contents, dest, f.get("from"), f.get("chown"), f.get("chmod"),
                           f.is_true("link"), f.is_true("parents"), f.get("exclude"))


def _parse_from(node, args):
    name = ""
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise _error(f"invalid name for build stage: {_go_quote(args[2])}, name can't start with a number or contain symbols",
                         node, span=_arg_span(node, 2))
    elif len(args) != 1:
        raise _error("FROM requires either one or three arguments", node)
    f = fl.parse_flags(node, {"platform": (fl.STRING, "")})
    return FromInstruction(node, args[0], name, f.get("platform"), args[2] if name else "")


def _parse_onbuild(node, args):
    if not args:
        raise _error("ONBUILD requires at least one argument", node)
    fl.parse_flags(node, {})
    trigger = args[0].strip().upper()
    span = None
    if node.subcommand is not None:
        sub = node.subcommand
        span = node.line.span_at(sub.keyword_offset, len(sub.keyword_text))
    if trigger == "ONBUILD":
        raise _error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", node, span=span)
    if trigger in ("MAINTAINER", "FROM"):
        raise _error(f"{trigger} isn't allowed as an ONBUILD trigger", node, span=span)
    expression = _ONBUILD_PREFIX.sub("", node.original, count=1)
    for doc in node.heredocs:
        expression += "\n" + doc.content + doc.name
    return OnbuildInstruction(node, expression, trigger)


def _parse_workdir(node, args):
    if len(args) != 1:
        raise _error("WORKDIR requires exactly one argument", node)
    fl.parse_flags(node, {})
    return WorkdirInstruction(node, args[0])


_RUN_FLAGS = {"mount": (fl.STRINGS, ()), "network": (fl.STRING, "default"),
              "security": (fl.STRING, "sandbox"), "device": (fl.STRINGS, ())}


def _parse_run(node, args):
    f = fl.parse_flags(node, _RUN_FLAGS)
    if f.get("mount"):
        from .runmount import check_mount_from

        for flag in node.flags:
            if flag.text.startswith("--mount="):
                try:
                    check_mount_from(flag.text[len("--mount="):])
                except DockerfileError as err:
                    raise err.located(node.line.span_at(flag.offset, len(flag.text))) from None
    network = f.values["network"]
    if network not in ("default", "none", "host"):
        raise _error(f"invalid network mode {_go_quote(network)}", node, span=_flag_span(node, "network"))
    security = f.values["security"]
    if security not in ("sandbox", "insecure"):
        raise _error(f"security {_go_quote(security)} is not valid", node, span=_flag_span(node, "security"))
    for spec in f.get("device"):
        from .runmount import parse_device
        try:
            parse_device(spec)
        except DockerfileError as err:
            raise err.located(_flag_span(node, "device") or node.line.span) from None
    return RunInstruction(node, _command_line(node, args), node.shape != EXEC, _inline_files(node),
                          f.get("mount"), network, security, f.get("device"), f.used)


def _flag_span(node: SyntaxNode, name: str) -> Span | None:
    for flag in node.flags:
        if flag.text == f"--{name}" or flag.text.startswith(f"--{name}="):
            return node.line.span_at(flag.offset, len(flag.text))
    return None


def _parse_cmd(node, args):
    fl.parse_flags(node, {})
    return CmdInstruction(node, _command_line(node, args), node.shape != EXEC, _inline_files(node))


def _parse_entrypoint(node, args):
    fl.parse_flags(node, {})
    command = _command_line(node, args)
    return EntrypointInstruction(node, command or None, node.shape != EXEC, _inline_files(node))


_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> int:
    """Go's ``time.ParseDuration``, in nanoseconds. Raises ValueError with Go's message."""
    original = text
    if text in ("0", "+0", "-0"):
        return 0
    sign = 1
    if text[:1] in "+-" and text:
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if not text:
        raise ValueError(f'time: invalid duration "{original}"')
    total = 0
    pos = 0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None or m.group(1) in ("", "."):
            if m is None and re.match(r"[0-9.]+\Z", text[pos:]):
                raise ValueError(f'time: missing unit in duration "{original}"')
            if m is None and re.match(r"[0-9.]+", text[pos:]):
                unit = re.match(r"[0-9.]+([^0-9.]*)", text[pos:]).group(1)
                raise ValueError(f'time: unknown unit "{unit}" in duration "{original}"')
            raise ValueError(f'time: invalid duration "{original}"')
        number, unit = m.groups()
        whole, _, frac = number.partition(".")
        scale = _DURATION_UNITS[unit]
        value = int(whole or "0") * scale
        if frac:
            value += int(frac) * scale // (10 ** len(frac))
        total += value
        pos = m.end()
    if total > 2**63 - 1:
        raise ValueError(f'time: invalid duration "{original}"')
    return sign * total


def _interval(node, f, name: str) -> int:
    text = f.get(name)
    if not text:
        return 0
    try:
        value = parse_go_duration(text)
    except ValueError as err:
        raise _error(str(err), node, span=_flag_span(node, name)) from None
    if value == 0:
        return 0
    if value < 1_000_000:
        raise _error(f'Interval "{name}" cannot be less than 1ms', node, span=_flag_span(node, name))
    return value


_HEALTHCHECK_FLAGS = {"interval": (fl.STRING, ""), "timeout": (fl.STRING, ""), "start-period": (fl.STRING, ""),
                      "start-interval": (fl.STRING, ""), "retries": (fl.STRING, "")}


def _parse_healthcheck(node, args):
    if not args:
        raise _error("HEALTHCHECK requires at least one argument", node)
    kind = args[0].upper()
    rest = args[1:]
    if kind == "NONE":
        if rest:
            raise _error("HEALTHCHECK NONE takes no arguments", node)
        return HealthcheckInstruction(node, ("NONE",))
    f = fl.parse_flags(node, _HEALTHCHECK_FLAGS)
    if kind != "CMD":
        raise _error(f"Unknown type {_go_quote(kind)} in HEALTHCHECK (try CMD)", node, span=_arg_span(node, 0))
    command = rest if node.shape == EXEC else ([" ".join(rest)] if rest else [])
    if not command:
        raise _error("Missing command after HEALTHCHECK CMD", node)
    test = ("CMD",) + tuple(command) if node.shape == EXEC else ("CMD-SHELL",) + tuple(command)
    retries = 0
    if f.get("retries"):
        text = f.get("retries")
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise _error(f'strconv.ParseInt: parsing {_go_quote(text)}: invalid syntax', node,
                         span=_flag_span(node, "retries"))
        retries = int(text)
        if not -(2**31) <= retries < 2**31:
            raise _error(f'strconv.ParseInt: parsing {_go_quote(text)}: value out of range', node,
                         span=_flag_span(node, "retries"))
        if retries < 0:
            raise _error(f"--retries cannot be negative ({retries})", node, span=_flag_span(node, "retries"))
    return HealthcheckInstruction(node, test, _interval(node, f, "interval"), _interval(node, f, "timeout"),
                                  _interval(node, f, "start-period"), _interval(node, f, "start-interval"),
                                  retries)


def _parse_expose(node, args):
    if not args:
        raise _error("EXPOSE requires at least one argument", node)
    fl.parse_flags(node, {})
    return ExposeInstruction(node, tuple(sorted(args)))


def _parse_user(node, args):
    if len(args) != 1:
        raise _error("USER requires exactly one argument", node)
    fl.parse_flags(node, {})
    return UserInstruction(node, args[0])


def _parse_volume(node, args):
    if not args:
        raise _error("VOLUME requires at least one argument", node)
    fl.parse_flags(node, {})
    volumes = []
    for value in args:
        value = value.strip(" \t\n\v\f\r\x85\xa0")
        if not value:
            raise _error("VOLUME specified can not be an empty string", node)
        volumes.append(value)
    return VolumeInstruction(node, tuple(volumes))


def _parse_stopsignal(node, args):
    # BuildKit never checks STOPSIGNAL's flags; the signal is validated when the image is built.
    if len(args) != 1:
        raise _error("STOPSIGNAL requires exactly one argument", node)
    return StopSignalInstruction(node, args[0])


def _parse_arg(node, args):
    # BuildKit never checks ARG's flags.
    if not args:
        raise _error("ARG requires at least one argument", node)
    comments = node.line.comments
    definitions = []
    for i, text in enumerate(args):
        key, eq, value = text.partition("=")
        if eq and not key:
            raise _error("ARG names can not be blank", node, span=_arg_span(node, i))
        definitions.append(ArgDefinition(key, value if eq else None, doc_comment(comments, key)))
    return ArgInstruction(node, tuple(definitions))


def _parse_shell(node, args):
    fl.parse_flags(node, {})
    shell = _command_line(node, args)
    if not shell:
        raise _error("SHELL requires at least one argument", node)
    if node.shape != EXEC:
        raise _error("SHELL requires the arguments to be in JSON form", node)
    return ShellInstruction(node, shell)


def doc_comment(comments, name: str) -> str:
    """A "# NAME description" comment right above a FROM or ARG documents NAME."""
    if not name:
        return ""
    prefix = name + " "
    for line in comments:
        if line.startswith(prefix):
            return line[len(prefix):]
    return ""


_PARSERS: dict[str, Callable] = {
    "env": _parse_env, "maintainer": _parse_maintainer, "label": _parse_label, "add": _parse_add,
    "copy": _parse_copy, "from": _parse_from, "onbuild": _parse_onbuild, "workdir": _parse_workdir,
    "run": _parse_run, "cmd": _parse_cmd, "healthcheck": _parse_healthcheck, "entrypoint": _parse_entrypoint,
    "expose": _parse_expose, "user": _parse_user, "volume": _parse_volume, "stopsignal": _parse_stopsignal,
    "arg": _parse_arg, "shell": _parse_shell,
}


def parse_instruction(node: SyntaxNode) -> Instruction:
    """One syntax node -> its typed instruction (raises InstructionError with a location)."""
    parser = _PARSERS.get(node.keyword)
    if parser is None:
        message, match = fl.with_suggestion(f"unknown instruction: {node.keyword_text}", node.keyword_text,
                                            INSTRUCTION_NAMES, False)
        raise _error(message, node, span=node.line.span_at(node.keyword_offset, len(node.keyword_text)),
                     hint=match)
    return parser(node, _args(node))


def _go_quote(text: str) -> str:
    from .words import go_quote

    return go_quote(text)


# ----------------------------------------------------------------------------------------------
# Whole files


def build_dockerfile(tree: SyntaxTree, build_args: dict | None = None) -> Dockerfile:
    """Group typed instructions into stages; only ARG may come before the first FROM.

    ``build_args`` matters only for ``BUILDKIT_SYNTAX``, which overrides the ``# syntax=`` directive.
    """
    from .frontend import resolve_frontend

    meta_args: list[ArgInstruction] = []
    stages: list[Stage] = []
    current: FromInstruction | None = None
    body: list[Instruction] = []
    syntax_line = next((d.line for d in tree.directives if d.name == "syntax"), 0)
    try:
        frontend = resolve_frontend(tree.directive("syntax"), syntax_line, build_args)
        for node in tree.nodes:
            instruction = parse_instruction(node)
            if type(instruction) is FromInstruction:
                if current is not None:
                    stages.append(Stage(len(stages), current.stage_name, current, tuple(body)))
                current, body = instruction, []
            elif current is None:
                if type(instruction) is ArgInstruction:
                    meta_args.append(instruction)
                else:
                    raise _error("no build stage in current context", node)
            else:
                body.append(instruction)
        if current is not None:
            stages.append(Stage(len(stages), current.stage_name, current, tuple(body)))
        _check_stage_references(stages)
    except DockerfileError as err:
        raise err.with_source(tree.filename, tree.source_lines)
    syntax = tree.directive("syntax")
    return Dockerfile(tree.filename, syntax, frontend, tree.escape,
                      tuple((d.name, d.value, d.line) for d in tree.directives),
                      tuple(meta_args), tuple(stages), tree)


def _check_stage_references(stages: list[Stage]) -> None:
    """``COPY --from`` and ``RUN --mount from=`` cannot use variables (BuildKit's rule)."""
    for stage in stages:
        for instruction in stage.instructions:
            if type(instruction) is CopyInstruction and "$" in instruction.from_:
                raise _error("variable expansion is not supported for --from, define a new stage with FROM "
                             "using ARG from global scope as a workaround", instruction.node,
                             span=_flag_span(instruction.node, "from"))


def parse_dockerfile(data: bytes | str, filename: str = "Dockerfile", build_args: dict | None = None) -> Dockerfile:
    """Dockerfile bytes or text -> typed ``Dockerfile`` (raises DockerfileError with a location)."""
    from ..perf import gc_paused
    from .syntax import parse_bytes, parse_text

    with gc_paused():
        tree = parse_bytes(data, filename) if isinstance(data, bytes) else parse_text(data, filename)
        return build_dockerfile(tree, build_args)


__all__ = [name for name in dir() if name.endswith("Instruction")] + [
    "Stage", "Dockerfile", "KeyValue", "ArgDefinition", "InlineFile", "SourceContent", "parse_instruction",
    "build_dockerfile", "parse_dockerfile", "parse_go_duration", "chomp_heredoc", "doc_comment", "replace",
]
