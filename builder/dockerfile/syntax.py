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


class PrepassLexer(Lexer):
    """Feeds the pre-pass's pieces to the grammar as tokens (one logical line after another)."""

    def __init__(self, lexer_conf):
        pass

    def lex(self, data: PrepassResult, *_):
        for directive in data.directives:
            yield Token("DIRECTIVE", directive)
        for line in data.lines:
            yield Token("LINE", line)
            yield from _command_tokens(line.command)
            for doc in line.heredocs:
                yield Token("HEREDOC", doc)


def _command_tokens(command: Command):
    form = command.form
    yield Token(_KEYWORD_TOKENS[form], command)
    for flag in command.flags:
        yield Token("FLAG", flag)
    args = command.args
    if form == "exec_or_shell" or form == "exec_or_words":
        if command.json:
            yield Token("JSON", args)
        elif form == "exec_or_shell":
            if args:
                yield Token("TEXT", args[0])
        else:
            for word in args:
                yield Token("WORD", word)
    elif form == "words" or form == "names":
        for word in args:
            yield Token("WORD", word)
    elif form == "string":
        if args:
            yield Token("TEXT", args[0])
    elif form == FORM_PAIRS:
        if args:
            if args[0].sep:
                for pair in args:
                    yield Token("PAIR", pair)
            else:
                yield Token("LEGACY_PAIR", args[0])
    elif form == "healthcheck":
        if args:
            yield Token("HC_TYPE", args[0])
            if command.json:
                yield Token("JSON", args[1:])
            elif len(args) > 1:
                yield Token("TEXT", args[1])
    elif form == "subcommand":
        if command.sub is not None:
            yield from _command_tokens(command.sub)


class _Partial(NamedTuple):
    """A command before its instruction line is known (the rule callbacks run bottom-up)."""

    command: Command
    flags: tuple
    shape: str
    args: tuple
    sub: "_Partial | None"


def _split(children):
    """(keyword token, flags, remaining children) of a command rule."""
    keyword = children[0]
    if len(children) > 1 and type(children[1]) is list:
        return keyword.value, tuple(children[1]), children[2:]
    return keyword.value, (), children[1:]


class SyntaxBuilder(Transformer):
    """Grammar rules -> syntax nodes. Runs inside the LALR parser (no parse tree is built)."""

    def start(self, children):
        return [c for c in children if type(c) is SyntaxNode]

    def directive(self, children):
        return children[0]

    def flags(self, children):
        return [t.value for t in children]  # a list, so _split can tell flags from an argument form

    def exec_form(self, children):
        return (EXEC, tuple(children[0].value))

    def shell_form(self, children):
        return (SHELL, (children[0].value,))

    def heredoc(self, children):
        return children[0].value

    def exec_or_shell(self, children):
        command, flags, rest = _split(children)
        if rest:
            shape, args = rest[0]
            return _Partial(command, flags, shape, args, None)
        return _Partial(command, flags, NONE, (), None)

    def exec_or_words(self, children):
        command, flags, rest = _split(children)
        if rest and type(rest[0]) is tuple:
            shape, args = rest[0]
            return _Partial(command, flags, shape, args, None)
        return _Partial(command, flags, WORDS if rest else NONE, tuple(t.value for t in rest), None)

    def words_command(self, children):
        command, flags, rest = _split(children)
        return _Partial(command, flags, WORDS if rest else NONE, tuple(t.value for t in rest), None)

    names_command = words_command

    def string_command(self, children):
        command, flags, rest = _split(children)
        return _Partial(command, flags, SHELL if rest else NONE, tuple(t.value for t in rest), None)

    def pairs_command(self, children):
        command, flags, rest = _split(children)
        if not rest:
            return _Partial(command, flags, NONE, (), None)
        shape = LEGACY_PAIR if rest[0].type == "LEGACY_PAIR" else PAIRS
        return _Partial(command, flags, shape, tuple(t.value for t in rest), None)

    def healthcheck_command(self, children):
        command, flags, rest = _split(children)
        if not rest:
            return _Partial(command, flags, NONE, (), None)
        type_word = rest[0].value
        if len(rest) > 1:
            shape, args = rest[1]
            return _Partial(command, flags, shape, (type_word,) + args, None)
        return _Partial(command, flags, WORDS, (type_word,), None)

    def onbuild_command(self, children):
        command, flags, rest = _split(children)
        sub = rest[0] if rest else None
        return _Partial(command, flags, NONE, (), sub)

    def unknown_command(self, children):
        command, flags, _ = _split(children)
        return _Partial(command, flags, NONE, (), None)

    def instruction(self, children):
        line = children[0].value
        return _node(children[1], tuple(children[2:]), line)


def _node(partial: _Partial, heredocs: tuple, line: LogicalLine) -> SyntaxNode:
    command = partial.command
    sub = _node(partial.sub, (), line) if partial.sub is not None else None
    return SyntaxNode(command.keyword.lower(), command.keyword, command.keyword_offset, partial.flags,
                      partial.shape, partial.args, sub, heredocs, line)


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
