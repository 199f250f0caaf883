"""The line pre-pass: Dockerfile text -> parser directives and logical instruction lines.

Line handling is where Dockerfile dialects differ most (BOM, the escape directive, continuations,
comment and empty lines inside continuations, heredoc bodies), so it is done here in plain Python,
step by step as BuildKit's parser does it, before the grammar sees anything. For each logical line
the pre-pass also cuts the text into the pieces the grammar is made of (keyword, flags, exec or
shell form, words, key/value pairs, an ONBUILD's nested instruction), since how an argument is cut
depends on the keyword, and remembers where every piece came from so errors can point at it.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from ..errors import DockerfileSyntaxError, Span
from . import words as w

MAX_LINE_BYTES = 64 * 1024 - 1
KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z", re.S)
_HEREDOC_WORD = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z", re.S)
_BOM = "\ufeff"

# How BuildKit's parser cuts the arguments of each instruction (its dispatch table).
FORM_EXEC_OR_SHELL = "exec_or_shell"  # RUN CMD ENTRYPOINT SHELL: JSON array, else the whole text
FORM_EXEC_OR_WORDS = "exec_or_words"  # ADD COPY VOLUME: JSON array, else whitespace-split words
FORM_WORDS = "words"                  # FROM EXPOSE: whitespace-split words
FORM_STRING = "string"                # MAINTAINER USER WORKDIR STOPSIGNAL: the whole text
FORM_NAMES = "names"                  # ARG: quoted words
FORM_PAIRS = "pairs"                  # ENV LABEL: key=value pairs, or the legacy "key value"
FORM_HEALTHCHECK = "healthcheck"      # a type word, then RUN-style arguments
FORM_SUBCOMMAND = "subcommand"        # ONBUILD: a nested instruction
FORM_IGNORED = "ignored"              # unknown keywords: BuildKit parses them with no arguments

DISPATCH = {
    "run": FORM_EXEC_OR_SHELL, "cmd": FORM_EXEC_OR_SHELL, "entrypoint": FORM_EXEC_OR_SHELL,
    "shell": FORM_EXEC_OR_SHELL, "add": FORM_EXEC_OR_WORDS, "copy": FORM_EXEC_OR_WORDS,
    "volume": FORM_EXEC_OR_WORDS, "from": FORM_WORDS, "expose": FORM_WORDS,
    "maintainer": FORM_STRING, "user": FORM_STRING, "workdir": FORM_STRING,
    "stopsignal": FORM_STRING, "arg": FORM_NAMES, "env": FORM_PAIRS, "label": FORM_PAIRS,
    "healthcheck": FORM_HEALTHCHECK, "onbuild": FORM_SUBCOMMAND,
}
HEREDOC_KEYWORDS = frozenset(("run", "copy", "add"))


class Directive(NamedTuple):
    name: str
    value: str
    line: int


class Heredoc(NamedTuple):
    name: str
    fd: int
    expand: bool
    chomp: bool
    content: str


class Word(NamedTuple):
    """A piece of an instruction line and its offset in the logical line."""

    text: str
    offset: int


class Pair(NamedTuple):
    key: str
    value: str
    sep: str  # "=" for key=value, "" for the legacy "key value" form
    offset: int


class Command(NamedTuple):
    """One instruction line cut into its pieces (nested once for ONBUILD)."""

    keyword: str          # as written
    keyword_offset: int
    flags: tuple          # of Word
    form: str             # one of the FORM_* names
    json: bool            # exec form
    args: tuple           # of Word (or Pair for FORM_PAIRS); a JSON array gives Words at the array's offset
    args_offset: int
    sub: "Command | None"  # ONBUILD's instruction; HEALTHCHECK keeps its type word as args[0]


class LogicalLine(NamedTuple):
    text: str
    start_line: int
    end_line: int
    segments: tuple         # (logical offset, physical line, physical column) where each piece starts
    comments: tuple         # comment lines right before the instruction (BuildKit's PrevComment)
    empty_continuation: bool
    command: Command
    heredocs: tuple

    def span_at(self, offset: int, length: int = 1) -> Span:
        """Map an offset in the logical line to a physical line and 1-based column span."""
        line, col = self.start_line, 1
        for seg_offset, seg_line, seg_col in self.segments:
            if seg_offset > offset:
                break
            line, col = seg_line, seg_col + (offset - seg_offset) + 1
        return Span(line, col, line, col + max(length, 1))

    @property
    def span(self) -> Span:
        return Span(self.start_line, 0, self.end_line, 0)


class PrepassResult(NamedTuple):
    directives: tuple
    lines: tuple
    escape: str
    warnings: tuple  # (message, line)
    source_lines: list


def _error(message: str, start: int, end: int | None = None) -> DockerfileSyntaxError:
    return DockerfileSyntaxError(message, Span(start, 0, end if end is not None else start, 0))


def cut_command(text: str, escape: str, base: int = 0) -> Command:
    """Cut one logical line into keyword, flags and arguments the way BuildKit's parser does."""
    keyword, kw_off, raw_flags, rest, rest_off = w.split_head(text, escape)
    flags = tuple(Word(f, base + o) for f, o in raw_flags) if raw_flags else ()
    args_offset = rest_off + base
    form = DISPATCH.get(keyword.lower(), FORM_IGNORED)
    is_json = False
    sub = None
    args: tuple = ()
    if form == FORM_EXEC_OR_SHELL:
        if rest:
            array = w.parse_json_array(rest)
            if array is not None:
                is_json = True
                args = tuple(Word(a, args_offset) for a in array)
            else:
                args = (Word(rest, args_offset),)
    elif form == FORM_EXEC_OR_WORDS:
        array = w.parse_json_array(rest)
        if array is not None:
            is_json = True
            args = tuple(Word(a, args_offset) for a in array)
        else:
            args = tuple(Word(t, args_offset + o) for t, o in w.split_whitespace(rest))
    elif form == FORM_WORDS:
        args = tuple(Word(t, args_offset + o) for t, o in w.split_whitespace(rest))
    elif form == FORM_STRING:
        if rest:
            args = (Word(rest, args_offset),)
    elif form == FORM_NAMES:
        args = tuple(Word(t, args_offset + o) for t, o in w.parse_words(rest, escape))
    elif form == FORM_PAIRS:
        args = _cut_pairs(keyword.upper(), rest, escape, args_offset)
    elif form == FORM_HEALTHCHECK:
        args, is_json = _cut_healthcheck(rest, escape, args_offset)
    elif form == FORM_SUBCOMMAND:
        if rest:
            sub = cut_command(rest, escape, args_offset)
    return Command(keyword, kw_off + base, flags, form, is_json, args, args_offset, sub)


def _cut_pairs(key: str, rest: str, escape: str, base: int) -> tuple:
    found = w.parse_words(rest, escape)
    if not found:
        return ()
    first = found[0][0]
    if "=" not in first:
        parts = w.SPLIT_WS.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise DockerfileSyntaxError(f"{key} must have two arguments")
        return (Pair(parts[0], parts[1], "", base),)
    pairs = []
    for text, offset in found:
        name, eq, value = text.partition("=")
        if not eq:
            escaped = w.go_quote(text)
            raise DockerfileSyntaxError(
                f"Syntax error - can't find = in {escaped}. Must be of the form: name=value",
                Span(0, base + offset + 1, 0, base + offset + 1 + len(text)))
        pairs.append(Pair(name, value, "=", base + offset))
    return tuple(pairs)


# BuildKit's parseHealthConfig finds the end of the type word by testing single bytes with
# unicode.IsSpace: ASCII blanks, and the bytes 0x85 and 0xA0 even inside a UTF-8 character.
_HEALTHCHECK_SPACE_BYTES = frozenset(b"\t\n\v\f\r \x85\xa0")


def _cut_healthcheck(rest: str, escape: str, base: int) -> tuple[tuple, bool]:
    data = rest.encode("utf-8", "surrogateescape")
    sep = 0
    n = len(data)
    while sep < n and data[sep] not in _HEALTHCHECK_SPACE_BYTES:
        sep += 1
    if sep == 0:
        return (), False
    nxt = sep
    while nxt < n and data[nxt] in _HEALTHCHECK_SPACE_BYTES:
        nxt += 1
    if n == len(rest):
        typ, cmd, cmd_offset = rest[:sep], rest[nxt:], base + nxt
    else:  # a cut inside a character leaves undecodable bytes (surrogateescape; dumped as \xNN like Go)
        typ = data[:sep].decode("utf-8", "surrogateescape")
        cmd = data[nxt:].decode("utf-8", "surrogateescape")
        cmd_offset = base + len(data[:nxt].decode("utf-8", "surrogateescape"))
    args = [Word(typ, base)]
    is_json = False
    if cmd:
        array = w.parse_json_array(cmd)
        if array is not None:
            is_json = True
            args.extend(Word(a, cmd_offset) for a in array)
        else:
            args.append(Word(cmd, cmd_offset))
    return tuple(args), is_json


class _DirectiveScanner:
    """BuildKit's DirectiveParser: directives are read only until the first line that is not one."""

    __slots__ = ("done", "seen", "found")

    def __init__(self):
        self.done = False
        self.seen: set[str] = set()
        self.found: list[Directive] = []

    def feed(self, line: str, lineno: int) -> Directive | None:
        if self.done:
            return None
        if not line.startswith("#"):
            self.done = True
            return None
        m = _DIRECTIVE.match(line[1:].lstrip(w.GO_SPACE_CHARS))
        if m is None:
            self.done = True
            return None
        name = m.group(1).lower()
        if name not in KNOWN_DIRECTIVES:
            self.done = True
            return None
        if name in self.seen:
            raise _error(f"only one {name} parser directive can be used", lineno)
        self.seen.add(name)
        directive = Directive(name, m.group(2), lineno)
        self.found.append(directive)
        return directive


def _continuation(escape: str) -> re.Pattern:
    e = re.escape(escape)
    return re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z", re.S)


_CONTINUATION = {"\\": _continuation("\\"), "`": _continuation("`")}


def _strip_continuation(text: str, escape: str) -> tuple[str, bool]:
    """Remove a trailing escape character; return (text, ends_here)."""
    if escape not in text:
        return text, True
    m = _CONTINUATION[escape].search(text)
    if m is None:
        return text, True
    return text[: m.start()] + (m.group(1) or ""), False


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
        return [line + "\n" for line in lines]
    last = lines.pop()
    return [line + "\n" for line in lines] + [last]


def _check_length(raw: str, lineno: int):
    # bufio.Scanner's limit: the line with its "\n" must fit in 64 KiB ("\r" counts like any byte).
    body = raw[:-1] if raw.endswith("\n") else raw
    if len(raw) > MAX_LINE_BYTES // 4 and len(body.encode("utf-8", "surrogateescape")) > MAX_LINE_BYTES:
        raise _error(f"dockerfile line greater than max allowed size of {MAX_LINE_BYTES}", lineno)


def decode(data: bytes) -> str:
    """Dockerfiles are UTF-8; undecodable bytes are kept (surrogateescape) so nothing is lost."""
    return data.decode("utf-8", "surrogateescape")


def prepass(text: str) -> PrepassResult:
    """Turn Dockerfile text into directives and logical lines (no instruction is interpreted yet)."""
    raw_lines = _split_lines(text)
    if raw_lines and raw_lines[0].startswith(_BOM):
        raw_lines[0] = raw_lines[0][1:]
    escape = "\\"
    directives = _DirectiveScanner()
    out: list[LogicalLine] = []
    warnings: list[tuple[str, int]] = []
    comments: list[str] = []
    total = len(raw_lines)
    i = 0
    space = w.GO_SPACE_CHARS
    long_line = MAX_LINE_BYTES // 4
    scanning_directives = True
    while i < total:
        raw = raw_lines[i]
        if len(raw) > long_line:
            _check_length(raw, i + 1)
        stripped_nl = raw.rstrip("\r\n")
        first = stripped_nl.lstrip(space)
        is_comment = first[:1] == "#"
        if is_comment:
            # BuildKit trims what follows the line's first character, leading blanks and all.
            comment = raw[1:].strip(space)
            if comment:
                comments.append(comment)
            else:
                comments = []
        if scanning_directives:
            directive = directives.feed(first, i + 1)
            scanning_directives = not directives.done
            if directive is not None:
                if comments:
                    comments.pop()
                if directive.name == "escape":
                    if directive.value not in ("\\", "`"):
                        raise _error(f"invalid escape token '{directive.value}' does not match ` or \\", i + 1)
                    escape = directive.value
        i += 1
        if is_comment or not first:
            continue
        start_line = i
        lead = len(stripped_nl) - len(first)
        if escape in first:
            piece, ends = _strip_continuation(first, escape)
        else:
            piece, ends = first, True
        empty_continuation = False
        if ends:
            logical = piece
            segments: tuple | list = ((0, start_line, lead),)
        else:
            pieces = [piece]
            segments = [(0, start_line, lead)]
            length = len(piece)
            while not ends and i < total:
                raw = raw_lines[i]
                if len(raw) > long_line:
                    _check_length(raw, i + 1)
                line = raw.rstrip("\r\n")
                if scanning_directives:
                    directives.feed(line, i + 1)
                    scanning_directives = not directives.done
                i += 1
                body = line.lstrip(space)
                if body[:1] == "#":
                    continue
                if not body:
                    empty_continuation = True
                    continue
                line, ends = _strip_continuation(line, escape)
                segments.append((length, i, 0))
                pieces.append(line)
                length += len(line)
            logical = "".join(pieces)
            segments = tuple(segments)
        if empty_continuation:
            warnings.append((f"Empty continuation line found in: {logical}", i))
        try:
            command = cut_command(logical, escape)
        except DockerfileSyntaxError as err:
            raise _relocate(err, logical, start_line, i, segments) from None
        heredocs: tuple = ()
        if "<<" in logical and _can_contain_heredoc(command):
            try:
                found = heredocs_from_line(logical)
            except DockerfileSyntaxError as err:
                raise err.located(Span(start_line, 0, i, 0)) from None
            bodies = []
            for doc in found:
                terminator = doc.name
                content: list[str] = []
                terminated = False
                while i < total:
                    body_line = raw_lines[i]
                    _check_length(body_line, i + 1)
                    i += 1
                    candidate = body_line.rstrip("\r\n")
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == terminator:
                        terminated = True
                        break
                    content.append(body_line)
                if not terminated:
                    raise _error("unterminated heredoc", start_line, i)
                bodies.append(doc._replace(content="".join(content)))
            heredocs = tuple(bodies)
        out.append(LogicalLine(logical, start_line, i, segments, tuple(comments) if comments else (),
                               empty_continuation, command, heredocs))
        if comments:
            comments = []
    if not out:
        raise _error("file with no instructions", max(total, 1))
    return PrepassResult(tuple(directives.found), tuple(out), escape, tuple(warnings), raw_lines)


def _relocate(err: DockerfileSyntaxError, logical: str, start: int, end: int, segments) -> DockerfileSyntaxError:
    """Turn an offset-only span (line 0) from ``cut_command`` into a physical location."""
    span = err.span
    if span is not None and span.line == 0 and span.column:
        tmp = LogicalLine(logical, start, end, tuple(segments), (), False, None, ())
        mapped = tmp.span_at(span.column - 1, span.end_column - span.column)
        err.span = Span(mapped.line, mapped.column, mapped.end_line, mapped.end_column)
        return err
    err.span = Span(start, 0, end, 0)
    return err


def _can_contain_heredoc(command: Command) -> bool:
    if command.form == FORM_SUBCOMMAND and command.sub is not None:
        command = command.sub
    return command.keyword.lower() in HEREDOC_KEYWORDS and not command.json


@functools.cache
def _heredoc_lexer(raw_quotes: bool, raw_escapes: bool):
    """BuildKit always lexes heredoc words with ``\\`` as the escape, whatever the directive says."""
    from .expand import ShellLexer

    return ShellLexer("\\", raw_quotes=raw_quotes, raw_escapes=raw_escapes, skip_unset_env=True)


def heredocs_from_line(line: str) -> list[Heredoc]:
    """Find the heredoc words (``<<EOF``, ``<<-"EOF"``, ``3<<EOF``) of an instruction line."""
    scanner = _heredoc_lexer(True, True)
    try:
        found = scanner.process_words(line, {})
    except DockerfileSyntaxError:
        found = []
    except Exception as exc:  # ExpansionError: BuildKit ignores errors of this first scan
        from ..errors import ExpansionError
        if not isinstance(exc, ExpansionError):
            raise
        found = []
    docs = []
    for word in found:
        doc = parse_heredoc_word(word)
        if doc is not None:
            docs.append(doc)
    return docs


def parse_heredoc_word(word: str) -> Heredoc | None:
    """Decide whether one shell word is a heredoc opener; quoted names disable expansion."""
    m = _HEREDOC_WORD.match(word)
    if m is None:
        return None
    fd_text, chomp, rest = m.groups()
    if not rest:
        return None
    from ..errors import ExpansionError

    try:
        names = _heredoc_lexer(False, False).process_words(rest, {})
        if len(names) != 1:
            return None
        raw_names = _heredoc_lexer(True, False).process_words(rest, {})
    except ExpansionError as err:
        raise DockerfileSyntaxError(err.message) from None
    if len(raw_names) != len(names):
        raise DockerfileSyntaxError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name, raw = names[0], raw_names[0]
    expand = (name.count("'") + name.count('"')) == (raw.count("'") + raw.count('"'))
    try:
        fd = int(fd_text) if fd_text else 0
    except ValueError:
        fd = 0
    if fd >= 2**64:
        fd = 0
    return Heredoc(name, fd, expand, chomp == "-", "")
