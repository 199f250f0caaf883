"""The Lark side of the parser layer: grammar/dockerfile.lark, fed by the pre-pass, builds syntax nodes.

``PrepassLexer`` hands the pre-pass's pieces to the grammar as tokens; ``SyntaxBuilder`` runs inline
in the LALR parser (no intermediate parse tree) and turns each rule into a ``SyntaxNode``.

The grammar is loaded once per process, from Lark's on-disk cache when possible: building the LALR
tables takes ~15 ms, loading the pickled tables a few ms. The cache file lives in the user's cache
directory and is keyed (by Lark) on the grammar text and options, so an edited grammar never loads
stale tables.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import NamedTuple

from lark import Token, Transformer
from lark.lexer import Lexer

from .prepass import FORM_PAIRS, Command, LogicalLine, PrepassResult
from .syntax import EXEC, LEGACY_PAIR, NONE, PAIRS, SHELL, WORDS, SyntaxNode

GRAMMAR_PATH = Path(__file__).resolve().parents[2] / "grammar" / "dockerfile.lark"


def _cache_file() -> str | bool:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "pybuild")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return True  # Lark's default: a file in the temp directory
    return os.path.join(directory, "dockerfile-grammar.lark-cache")


@cache
def dockerfile_parser():
    """The Lark LALR parser for Dockerfile structure (tokens come from the pre-pass)."""
    from lark import Lark

    return Lark(
        GRAMMAR_PATH.read_text(encoding="utf-8"),
        parser="lalr",
        lexer=PrepassLexer,
        transformer=SyntaxBuilder(),
        cache=_cache_file(),
        propagate_positions=False,
        maybe_placeholders=False,
    )


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
