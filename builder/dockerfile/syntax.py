"""The parser layer: Dockerfile text -> syntax tree (``SyntaxTree`` of ``SyntaxNode``).

The pre-pass (``prepass.py``) produces the pieces, the Lark grammar (``grammar.py``) puts them
together into these immutable nodes. The tree says nothing about whether an instruction is valid;
that is the instruction layer's job (``instructions.py``), as in BuildKit. This module does not
import Lark, so code that only reads syntax trees (a cached parse, for instance) stays cheap.
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import DockerfileError
from .prepass import Heredoc, LogicalLine, Word, decode, prepass

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


def parse_text(text: str, filename: str = "Dockerfile") -> SyntaxTree:
    """Parse Dockerfile text into a syntax tree; raises DockerfileError with a location."""
    from ..perf import gc_paused
    from .grammar import dockerfile_parser

    source_lines = None
    try:
        with gc_paused():
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
