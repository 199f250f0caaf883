"""The parser layer: Dockerfile text -> syntax tree (``SyntaxTree`` of ``SyntaxNode``).

The pre-pass produces the pieces, ``PrepassLexer`` hands them to the Lark grammar as tokens, and
``SyntaxBuilder`` (run inline by the LALR parser, so no intermediate parse tree is built) turns each
grammar rule into an immutable node. The tree says nothing about whether an instruction is valid;
that is the instruction layer's job (``instructions.py``), as in BuildKit.
"""

from __future__ import annotations

from typing import NamedTuple

from lark import Token, Transformer
from lark.lexer import Lexer

from ..errors import DockerfileError
from .prepass import FORM_PAIRS, Command, Heredoc, LogicalLine, PrepassResult, Word, decode, prepass

# Argument shapes of a node.
EXEC = "exec"            # JSON array
SHELL = "shell"          # one string: the rest of the line
WORDS = "words"          # separate words
PAIRS = "pairs"          # key=value pairs
LEGACY_PAIR = "legacy"   # ENV/LABEL "key value"
NONE = "none"            # no arguments


class SyntaxNode(NamedTuple):
    """One instruction as written: keyword, flags and arguments, with where each came from."""

    keyword: str          # lower-case ("run")
    keyword_text: str     # as written ("Run")
    keyword_offset: int
    flags: tuple          # of Word
    shape: str            # EXEC, SHELL, WORDS, PAIRS, LEGACY_PAIR or NONE
    args: tuple           # of Word, or of Pair for PAIRS / LEGACY_PAIR
    subcommand: "SyntaxNode | None"   # ONBUILD's trigger; HEALTHCHECK's type word is args[0]
    heredocs: tuple       # of Heredoc
    line: LogicalLine     # text and source mapping (shared by an ONBUILD and its trigger)

    @property
    def start_line(self) -> int:
        return self.line.start_line

    @property
    def end_line(self) -> int:
        return self.line.end_line

    @property
    def original(self) -> str:
        return self.line.text

    @property
    def is_json(self) -> bool:
        return self.shape == EXEC

    def values(self) -> list[str]:
        """BuildKit's ``Next`` chain: the argument strings (key, value, separator for pairs)."""
        if self.shape in (PAIRS, LEGACY_PAIR):
            out: list[str] = []
            for pair in self.args:
                out.extend((pair.key, pair.value, pair.sep))
            return out
        return [a.text for a in self.args]


class SyntaxTree(NamedTuple):
    directives: tuple     # of Directive
    nodes: tuple          # of SyntaxNode
    escape: str
    warnings: tuple       # of (message, line)
    source_lines: list    # the physical lines, for error rendering
    filename: str

    def directive(self, name: str) -> str | None:
        for d in self.directives:
            if d.name == name:
                return d.value
        return None


_KEYWORD_TOKENS = {
    "exec_or_shell": "KW_EXEC_OR_SHELL", "exec_or_words": "KW_EXEC_OR_WORDS", "words": "KW_WORDS",
    "string": "KW_STRING", "names": "KW_NAMES", "pairs": "KW_PAIRS", "healthcheck": "KW_HEALTHCHECK",
    "subcommand": "KW_ONBUILD", "ignored": "KW_UNKNOWN",
}


def _token(kind: str, value) -> Token:
    """A token carrying a Python object (Token is a str subclass: skip the costly str(value))."""
    token = Token(kind, "")
    token.value = value
    return token


class PrepassLexer(Lexer):
    """Feeds the pre-pass's pieces to the grammar as tokens (one logical line after another)."""

    def __init__(self, lexer_conf):
        pass

    def lex(self, data: PrepassResult, *_):
        for directive in data.directives:
            yield _token("DIRECTIVE", directive)
        for line in data.lines:
            yield from _command_tokens(line.command, line)


def _command_tokens(command: Command, source):
    """Tokens of one command; the keyword token carries ``source`` (the LogicalLine, or the nested
    Command of an ONBUILD)."""
    form = command.form
    yield _token(_KEYWORD_TOKENS[form], source)
    if command.flags:
        yield _token("FLAGS", command.flags)
    args = command.args
    if not args:
        if form == "subcommand" and command.sub is not None:
            yield _token("SUBCOMMAND", None)
            yield from _command_tokens(command.sub, command.sub)
        elif command.json:
            yield _token("JSON", args)  # an empty array: still exec form (`ENTRYPOINT []`)
        return
    if command.json:
        if form == "healthcheck":
            yield _token("HC_TYPE", args[0])
            yield _token("JSON", args[1:])
        else:
            yield _token("JSON", args)
    elif form == "exec_or_shell" or form == "string":
        yield _token("TEXT", args[0])
    elif form == FORM_PAIRS:
        yield _token("PAIRS" if args[0].sep else "LEGACY_PAIR", args)
    elif form == "healthcheck":
        yield _token("HC_TYPE", args[0])
        if len(args) > 1:
            yield _token("TEXT", args[1])
    else:
        yield _token("WORDS", args)


class _Partial(NamedTuple):
    """An ONBUILD's trigger before its instruction line is known (rule callbacks run bottom-up)."""

    command: Command
    flags: tuple
    shape: str
    args: tuple
    sub: "_Partial | None"


_SHAPES = {"JSON": EXEC, "TEXT": SHELL, "WORDS": WORDS, "PAIRS": PAIRS, "LEGACY_PAIR": LEGACY_PAIR}


def _simple(children, sub=None):
    """keyword FLAGS? ARGS? -> a syntax node (or a partial one for an ONBUILD's trigger)."""
    source = children[0].value
    flags: tuple = ()
    shape, args = NONE, ()
    for token in children[1:]:
        kind = token.type
        if kind == "FLAGS":
            flags = token.value
        elif kind in _SHAPES:
            value = token.value
            shape, args = _SHAPES[kind], (value if type(value) is tuple else (value,))
    if type(source) is LogicalLine:
        return _node(source.command, flags, shape, args, sub, source)
    return _Partial(source, flags, shape, args, sub)


def _node(command: Command, flags, shape, args, sub, line: LogicalLine) -> SyntaxNode:
    if sub is not None:
        sub = _node(sub.command, sub.flags, sub.shape, sub.args, sub.sub, line)
        heredocs = line.heredocs
    else:
        heredocs = line.heredocs if command is line.command else ()
    return SyntaxNode(command.keyword.lower(), command.keyword, command.keyword_offset, flags, shape, args,
                      sub, heredocs, line)


class SyntaxBuilder(Transformer):
    """Grammar rules -> syntax nodes. Runs inside the LALR parser (no parse tree is built)."""

    def start(self, children):
        return [c for c in children if type(c) is SyntaxNode]

    def directive(self, children):
        return children[0].value

    exec_or_shell = exec_or_words = words_command = string_command = names_command = \
        pairs_command = unknown_command = staticmethod(_simple)

    def healthcheck_command(self, children):
        node = _simple([c for c in children if c.type != "HC_TYPE"])
        type_words = tuple(c.value for c in children if c.type == "HC_TYPE")
        if not type_words:
            return node
        return node._replace(shape=node.shape if node.shape != NONE else WORDS, args=type_words + node.args)

    def onbuild_command(self, children):
        sub = children[-1] if type(children[-1]) is _Partial else None
        head = [c for c in children if type(c) is Token and c.type != "SUBCOMMAND"]
        return _simple(head, sub)


def parse_text(text: str, filename: str = "Dockerfile") -> SyntaxTree:
    """Parse Dockerfile text into a syntax tree; raises DockerfileError with a location."""
    from .grammar import dockerfile_parser

    source_lines = None
    try:
        result = prepass(text)
        source_lines = result.source_lines
        nodes = dockerfile_parser().parse(result)
    except DockerfileError as err:
        if source_lines is None:
            source_lines = text.split("\n")
        raise err.with_source(filename, source_lines)
    return SyntaxTree(result.directives, tuple(nodes), result.escape, result.warnings,
                      result.source_lines, filename)


def parse_bytes(data: bytes, filename: str = "Dockerfile") -> SyntaxTree:
    return parse_text(decode(data), filename)


__all__ = ["SyntaxNode", "SyntaxTree", "parse_text", "parse_bytes", "Heredoc", "Word",
           "EXEC", "SHELL", "WORDS", "PAIRS", "LEGACY_PAIR", "NONE"]
