"""Differential tests: our parser layer against BuildKit's own Go parser.

The oracle is the PyPI package ``dockerfile`` (asottile/dockerfile 3.4.0), a cgo wrapper around the
parser of BuildKit **v0.12.5** (``moby/buildkit@v0.12.5``, Go 1.20). ``dockerfile.parse_string`` returns
one ``Command`` per instruction (``cmd``, ``sub_cmd``, ``json``, ``original``, ``start_line``,
``end_line``, ``flags``, ``value``, ``heredocs``) or raises ``dockerfile.GoParseError``.

A seeded generator (``random.Random(seed)``, deterministic) writes varied Dockerfiles: BOM, CRLF, parser
directives and directive look-alikes, the backtick escape, continuations (trailing blanks after the
escape, a doubled escape at the end of a line, continuation at EOF, comment, empty and blank lines inside
a continuation), heredocs (``<<EOF``, ``<<-EOF``, quoted and partly quoted delimiters, fd prefixes,
several per line, in RUN/COPY/ADD and ONBUILD), JSON and broken JSON, flags with quotes and ``--``,
ENV/LABEL in both forms, ARG, HEALTHCHECK variants, ONBUILD, unknown instructions, unicode and odd
whitespace. A second source is BuildKit's own parser testfiles, randomly mutated. For each file both
parsers must agree on success or failure (and on the error message); on success, per instruction, on the
keyword, ONBUILD's sub-keyword, the JSON flag, the flags, the values, the start and end lines, the
original text and the heredocs (name, fd, content). A disagreement is accepted only when
``skip_reason`` explains it by one of the known differences below (continuations can join generated
words into such constructs); the tests cap how many files may be explained away.

We follow current BuildKit (dockerfile frontend 1.26, ``moby/buildkit`` HEAD in the mirror), not 0.12.5.
Differences between the two parsers, each confirmed by reading both versions of
``frontend/dockerfile/parser/{parser,line_parsers,split_command,directives}.go`` and
``frontend/dockerfile/shell/lex.go`` (``git diff v0.12.5 HEAD``), and how this module deals with them:

1. ENV/LABEL separators: current BuildKit appends a third node per pair (``"="``, or ``""`` for the
   legacy ``ENV k v`` form; ``newKeyValueNode(key, value, sep)``); 0.12.5 has key/value only. We drop
   our separators before comparing.
2. ``# check=`` directive: unknown to 0.12.5 (``validDirectives`` had syntax and escape only), so there a
   ``# check=...`` line ends directive scanning, and a later ``# escape=`` is a plain comment. The
   generator never writes ``check`` directives; ``test_check_directive_is_a_version_difference`` pins both
   behaviours.
3. Directive prefix: current BuildKit cuts the ``#`` and then trims ``unicode.IsSpace`` (so ``#\\v`` or
   ``#\\u00a0`` before the key is fine); 0.12.5 matched ``^#\\s*key`` with RE2's ``\\s`` = ``[\\t\\n\\f\\r ]``.
   The generator only writes spaces and tabs there (mutations may not);
   ``test_directive_prefix_whitespace_difference``.
4. JSON exec form: 0.12.5 decoded with ``json.NewDecoder(...).Decode`` (the first JSON value; trailing
   text ignored: ``RUN ["a"] b`` was exec form ``a``), current BuildKit uses ``json.Unmarshal`` (trailing
   text makes it invalid JSON, hence shell form ``["a"] b``). The generator avoids it where it can;
   ``test_json_trailing_data_difference`` pins both.
5. Flag escapes: 0.12.5's ``extractBuilderFlags`` always used ``\\`` as the escape character inside
   flags; current BuildKit uses the file's escape token (``d.escapeToken``). The generator writes escape
   characters inside flags only in files without a backtick escape directive;
   ``test_flag_escape_follows_escape_directive``.
6. Heredoc detection lexer: current ``shell.Lex`` keeps blanks after ``<<`` in the same word
   (``processPossibleHeredoc``) and the heredoc regexp allows them (``<<(-?)\\s*``), so ``RUN cat << EOF``
   opens a heredoc; 0.12.5 did not. Current ``shell.Lex`` also knows ``${a#p}``, ``${a%p}``, ``${a/p/r}``;
   0.12.5 failed on them, and since ``heredocsFromLine`` ignores lexer errors, such a line had no
   heredocs at all. The generator writes neither in heredoc-capable instructions;
   ``test_heredoc_lexer_differences`` pins both.

Deliberate differences from BuildKit itself (current and old), and artefacts of the wrapper:

* Go's ``extractBuilderFlags`` walks the line byte by byte (``rune(line[pos])``), so non-ASCII text inside
  ``--flags`` is mangled (each UTF-8 byte becomes one Latin-1 rune; bytes 0x85 and 0xA0 even count as
  blanks). Our text handling is Unicode-based: flags keep their characters (word boundaries are the same:
  only ASCII blanks end a flag word, ``test_only_ascii_blanks_end_a_flag_word``). The generator writes
  no non-ASCII inside flags; files where continuations put some there are explained away. A Unicode
  blank right before the first flag is fine: Go sees a non-space byte and stops looking for flags, as we
  do (a regression case).
* ``parseHealthConfig`` also finds the end of the type word by bytes. We follow it byte for byte; when
  the cut falls inside a character, Go's result is not valid UTF-8 and the wrapper cannot return it
  (``UnicodeDecodeError``); such a file is accepted if our values hold undecodable bytes too.
* The wrapper passes strings through C (``C.CString``/``PyUnicode_FromString``): a NUL ends a string
  (we cut ours the same way before comparing), an empty ``cmd``/``original`` comes back as ``None``.
* The wrapper loses what ONBUILD's trigger carries beyond its keyword and values: flags are the outer
  ONBUILD's, heredocs are read from the trigger node (always empty), and for ``ONBUILD ONBUILD x`` the
  value is the inner ONBUILD's child holder (``("",)``). ``original`` of a heredoc instruction is the
  line followed by ``"\\n" + content + name + "\\n"`` per heredoc (built by the wrapper).
* Error locations are not compared (the wrapper gives the message only); error messages are compared
  except for the over-long-line case (BuildKit reports what its scanner failure caused first).
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import pytest

from builder.dockerfile import words as w
from builder.dockerfile.dump import dump_tree
from builder.dockerfile.syntax import LEGACY_PAIR, NONE, PAIRS, parse_text
from builder.errors import DockerfileError

dockerfile = pytest.importorskip("dockerfile")

# How many generated files per test run (override with PYBUILD_DIFF_CASES); seeds are fixed.
N_CASES = int(os.environ.get("PYBUILD_DIFF_CASES", "600"))
N_HEREDOC_CASES = int(os.environ.get("PYBUILD_DIFF_HEREDOC_CASES", "400"))
N_MUTATIONS = int(os.environ.get("PYBUILD_DIFF_MUTATIONS", "600"))

_KNOWN = frozenset(("add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
                    "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume",
                    "workdir"))


# --------------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------------

PLAIN_WORDS = ["a", "foo", "bar.txt", "/usr/local/bin/", "x=y", "1", "8080", "8080/tcp", "ubuntu:22.04",
               "alpine@sha256:abc", "$HOME", "${VAR}", "${VAR:-def}", "${VAR:+alt}", "$1", "&&", "||",
               "|", ";", ">", "2>&1", "a#b", "#c", "#", "[", "]", "[a]", "{}", "=", "a=", "=b", "a==b",
               "-", "-x", "--x", "--", "---", "é", "日本語", "😀", "naïve", "Ünïcödé=ü", "a,b", "*.go",
               "..", "~", "%", "@", "!", "a:b:c", "tab\there"]
QUOTED_WORDS = ['"quoted word"', "'single q'", '""', "''", '"a b=c"', "'it''s'", '"esc \\" q"',
                '"unterminated', "'unterminated", '"$VAR x"', "'$VAR'", '"é ü"', 'a"b c"d', "a'b c'd",
                '"#not comment"', '"["', '"--flag"']
UNICODE_SPACES = ["\u00a0", "\u3000", "\u2003", "\u0085", "\u2028"]
ODD_BLANKS = ["\v", "\f", "\r"]


def _escape_words(e: str) -> list[str]:
    return [f"a{e} b", f"{e}\"", f"{e}'", f"x{e}{e}y", f"{e}$HOME", f"end{e}{e}", f"{e}n", f"{e}{e}"]


class Gen:
    """Builds one Dockerfile. Tracks the escape character the file really uses (from directives)."""

    def __init__(self, seed: int, heredocs: bool = False):
        self.r = random.Random(seed)
        self.heredocs = heredocs
        self.escape = "\\"
        self.backtick_directive = False  # a backtick escape directive was written (effective or not)
        self.eol = "\n"
        self.out: list[str] = []

    # -- small helpers -------------------------------------------------------------------------
    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def pick(self, seq):
        return seq[self.r.randrange(len(seq))]

    def newline(self) -> str:
        if self.chance(0.05):
            return self.pick(["\n", "\r\n", "\r\r\n", "\n\r", "\r"])
        return self.eol

    def sep(self) -> str:
        """Blanks between words."""
        x = self.r.random()
        if x < 0.75:
            return " "
        if x < 0.85:
            return self.pick(["  ", "\t", " \t "])
        if x < 0.93:
            return self.pick(ODD_BLANKS)
        return self.pick(UNICODE_SPACES)

    def word(self, heredoc_capable: bool = False) -> str:
        x = self.r.random()
        if x < 0.6:
            return self.pick(PLAIN_WORDS)
        if x < 0.8:
            return self.pick(QUOTED_WORDS)
        if x < 0.9:
            return self.pick(_escape_words(self.escape if self.chance(0.8) else self.pick("\\`")))
        if not heredoc_capable and self.chance(0.5):
            return self.pick(["<<", "<< EOF", "<<EOF", "${a#b}", "${a%b}", "${a/b/c}"])
        return self.pick(["`", "\\", "\\\\", "a\\", "a`", "\"'\"", "'\"'", "x\u200by", "\u00e9\u0301"])

    def words(self, n: int, heredoc_capable: bool = False) -> list[str]:
        return [self.word(heredoc_capable) for _ in range(n)]

    def join(self, parts: list[str]) -> list[str]:
        """Interleave words with separators; returns the token list (separators included)."""
        out: list[str] = []
        for i, p in enumerate(parts):
            if i:
                out.append(self.sep())
            out.append(p)
        return out

    def keyword(self, name: str) -> str:
        x = self.r.random()
        if x < 0.8:
            return name.upper()
        if x < 0.9:
            return name.lower()
        return "".join(c.upper() if self.chance(0.5) else c.lower() for c in name)

    # -- flags ---------------------------------------------------------------------------------
    def flag(self) -> str:
        base = self.pick(["--from=build", "--chown=1000:1000", "--chmod=755", "--link", "--link=false",
                          "--mount=type=cache,target=/root/.cache", "--network=none",
                          "--platform=$BUILDPLATFORM", "--interval=5s", "--timeout=3s", "--retries=3",
                          "--x", "--parents", "--exclude=*.md", "--start-period=0s", "---triple",
                          "--=", "--a=", "--A_B-c.d=1"])
        x = self.r.random()
        if x < 0.55:
            return base
        if x < 0.8:
            return self.pick(['--mount="type=secret,id=a b"', "--x='a b'", '--"quoted"', '--a"b c"d',
                              '--empty=""', "--''", "--\"\"", "--a='it'\"s\"", '--q="unterminated',
                              "--s='unterminated", "--p=#notcomment", "--json=[\"a\"]"])
        if not self.backtick_directive:
            # Escapes inside flags: 0.12.5 always used "\" there (see the module docstring, item 5).
            return self.pick(["--a=b\\ c", "--a=\\'", '--a="x\\"y"', "--a=\\\\", "--a=\\", "--a\\=b",
                              "--'a\\'b'"])
        return base

    def flags(self) -> list[str]:
        n = self.pick([0, 0, 1, 1, 2, 3])
        out: list[str] = []
        for i in range(n):
            out.append(self.flag())
            out.append(self.pick([" ", " ", "  ", "\t"]))
        if n and self.chance(0.1):
            out.append("--")
            out.append(self.pick([" ", "", "  "]))
        if out and self.chance(0.05):
            out.insert(0, self.pick(UNICODE_SPACES))  # Go stops looking for flags at a non-ASCII byte
        return out

    # -- JSON ------------------------------------------------------------------------------------
    def json_text(self) -> str:
        items = self.r.sample(["echo", "hello world", "é", "日本", "a\"b", "back\\slash", "", "--x",
                               "<<EOF", "${X}", "tab\tin", "new\nline", "😀", "[", "'"], self.pick([0, 1, 2, 3]))
        x = self.r.random()
        if x < 0.5:
            text = json.dumps(items, ensure_ascii=self.chance(0.3))
            if self.chance(0.3):
                text = text.replace(", ", self.pick([",", " , ", ",\t", ",  "]))
            if self.chance(0.2):
                text = text.replace("[", self.pick(["[ ", "[\t"]), 1)
            return text
        if x < 0.6:
            return self.pick(['["\\u00e9"]', '["\\ud800"]', '["\\ud83d\\ude00"]', '["a\\/b"]',
                              '["\\t\\n\\r\\b\\f"]', '["\\u0041\\u0042"]', '[ ]', "[]"])
        if x < 0.7:  # not strings: an error
            return self.pick(['["a", 1]', "[null]", '[true, "a"]', '[["nested"]]', '["a", {"b": 1}]',
                              "[1.5e3]", '[ "echo", [ "nested json" ] ]'])
        # broken JSON: shell form / whitespace-split words, never a valid array followed by text
        return self.pick(["['single', 'quotes']", '["unterminated', '["a",]', '["a" "b"]', "[",
                          '[a, b]', '{"a": "b"}', '"[a]"', '["a\\x"]', '[NaN]', '[Infinity]',
                          '["tab\there"]', '["a",\n"b"]', '[\'a\']', '[-]', '["é'])

    # -- instructions ------------------------------------------------------------------------------
    def instruction(self, depth: int = 0) -> tuple[list[str], list[tuple[str, str, bool]]]:
        """One instruction as tokens (joined later, maybe with continuations), and its heredocs."""
        kinds = ["from", "run", "run", "cmd", "entrypoint", "shell", "copy", "add", "volume", "env",
                 "label", "arg", "expose", "workdir", "user", "stopsignal", "maintainer", "healthcheck",
                 "onbuild", "unknown"]
        kind = self.pick(kinds)
        if depth and kind == "onbuild" and self.chance(0.7):
            kind = "run"
        heredocs: list[tuple[str, str, bool]] = []
        kw = self.keyword(kind) if kind != "unknown" else self.pick(
            ["FOO", "frm", "RUN2", "ÉCHO", "#notacomment", "copy.", "x", "Ｒｕｎ", "run\u00a0x"])
        toks = [kw]
        if kind != "unknown" and self.chance(0.95):
            toks.append(self.sep() if self.chance(0.9) else self.pick(["", "  ", "\t"]))
        else:
            toks.append(self.pick([" ", ""]))
        if kind in ("run", "cmd", "entrypoint", "shell"):
            toks += self.flags()
            if self.chance(0.35):
                toks.append(self.json_text())
            elif self.heredocs and kind == "run" and self.chance(0.6):
                toks += self.heredoc_tokens(heredocs)
            else:
                toks += self.join(self.words(self.r.randrange(0, 5), heredoc_capable=kind == "run"))
        elif kind in ("copy", "add", "volume"):
            toks += self.flags()
            if self.chance(0.3):
                toks.append(self.json_text())
            elif self.heredocs and kind != "volume" and self.chance(0.6):
                toks += self.heredoc_tokens(heredocs)
                toks += [self.sep(), self.pick(["/dest/", "/d", "."])]
            else:
                toks += self.join(self.words(self.r.randrange(0, 4), heredoc_capable=kind != "volume"))
        elif kind in ("env", "label"):
            if self.chance(0.1):
                toks += self.flags()
            x = self.r.random()
            if x < 0.55:
                pairs = []
                for _ in range(self.r.randrange(1, 4)):
                    k = self.pick(["a", "KEY", "x.y", '"q k"', "é", "k\\ k", "_", "a-b", "A1"])
                    v = self.pick(["1", "", "value", '"two words"', "'single'", "$HOME", "a=b", "é",
                                   "x\\ y", '""', "[x]", "#h", "a\\"])
                    pairs.append(f"{k}={v}")
                toks += self.join(pairs)
            elif x < 0.85:
                toks += self.join([self.pick(["a", "PATH", "é", "k"])] + self.words(self.r.randrange(1, 4)))
            else:
                toks += self.pick([["a"], ["a=b", " ", "c"], ["=x"], [], ['"a b"'], ["a=b", " ", "c=d", " ", "e"]])
        elif kind == "arg":
            toks += self.join(self.pick([["a"], ["a=b"], ["a", "b=c"], ['"a b"'], [], ["a='x y'"],
                                         ["=", "x"], ["a=b", "c"], self.words(2)]))
        elif kind in ("from", "expose"):
            toks += self.flags()
            toks += self.join(self.words(self.r.randrange(0, 4)))
        elif kind in ("workdir", "user", "stopsignal", "maintainer"):
            toks += self.flags()
            toks += self.join(self.words(self.r.randrange(0, 3)))
        elif kind == "healthcheck":
            toks += self.flags()
            typ = self.pick(["CMD", "NONE", "cmd", "CMD-SHELL", "X", ""])
            if typ:
                toks.append(typ)
                if self.chance(0.75):
                    toks.append(self.pick([" ", "  ", "\t", " \t"]))
                    if self.chance(0.4):
                        toks.append(self.json_text())
                    else:
                        toks += self.join(self.words(self.r.randrange(0, 4)))
        elif kind == "onbuild":
            toks += self.flags() if self.chance(0.2) else []
            if self.chance(0.9):
                sub, sub_docs = self.instruction(depth + 1)
                toks += sub
                heredocs += sub_docs
        else:  # unknown
            toks += self.join(self.words(self.r.randrange(0, 3)))
        return toks, heredocs

    def heredoc_tokens(self, heredocs: list) -> list[str]:
        toks: list[str] = []
        if self.chance(0.3):
            toks += [self.pick(["cat", "bash", "python3", "sh -c"]), " "]
        for i in range(self.pick([1, 1, 1, 2, 2, 3])):
            if i:
                toks.append(self.pick([" ", "  ", "\t"]))
            name = self.pick(["EOF", "END", "FILE1", "file.txt", "X", "e-o_f", "é", "EOF2", "$EOF", "-"])
            chomp = self.chance(0.3)
            x = self.r.random()
            if x < 0.6:
                word, real = name, name
            elif x < 0.75:
                word, real = f"'{name}'", name
            elif x < 0.85:
                word, real = f'"{name}"', name
            elif x < 0.92:
                word, real = f"{name[:-1]}'{name[-1]}'", name
            else:
                word, real = f"{name}\\'x", f"{name}'x"
            fd = self.pick(["", "", "", "3", "0"])
            toks.append(f"{fd}<<{'-' if chomp else ''}{word}")
            heredocs.append((real, chomp, self.chance(0.03)))  # (terminator, chomp, leave unterminated)
            if self.chance(0.2):
                toks += [" ", self.pick(["> /out", "| cat", "&& echo", "'<<NOT'", '"<<NOT"', "x<<Y"])]
        return toks

    def heredoc_body(self, name: str, chomp: bool, unterminated: bool) -> list[str]:
        lines = []
        for _ in range(self.pick([0, 1, 1, 2, 3, 4])):
            lines.append(self.pick(["echo hello", "\techo tab", "# comment", "", "  ", "RUN not an instruction",
                                    "$VAR ${VAR}", "line with \\", "`", f"{name}x", f" {name}", f"x{name}",
                                    "\t\tdeep", "<<EOF", "é ü 日本", "'\"", "\\", "FROM x"]))
        if not unterminated:
            lines.append(("\t" * self.pick([0, 1, 2]) if chomp else "") + name)
        return lines

    # -- physical layout ---------------------------------------------------------------------------
    def render(self, toks: list[str], heredocs: list, last: bool) -> str:
        """Lay tokens out on physical lines, with continuations, comments and blank lines inside."""
        e = self.escape
        lines: list[str] = []
        current = ""
        if self.chance(0.15):
            current = self.pick(["  ", "\t", " \t", "\u00a0"])  # leading blanks of an instruction
        for i, tok in enumerate(toks):
            if i and self.chance(0.12):
                # continue on the next line
                current += e + self.pick(["", "", "", " ", "\t", "  \t"])
                lines.append(current)
                while self.chance(0.25):
                    lines.append(self.pick(["# comment inside", "   # indented comment", "#", "",
                                            "   ", "\t", "#" + e, e, "  " + e, e + " "]))
                current = self.pick(["", "", "  ", "\t", "    "])
            current += tok
        if self.chance(0.04):
            current += e + e  # a doubled escape: not a continuation
        if last and self.chance(0.15):
            current += e + self.pick(["", " "])  # continuation at EOF
            lines.append(current)
            return self._emit(lines, final_newline=self.chance(0.5))
        lines.append(current)
        for name, chomp, unterminated in heredocs:
            lines += self.heredoc_body(name, chomp, unterminated)
        return self._emit(lines, final_newline=not last or self.chance(0.7))

    def _emit(self, lines: list[str], final_newline: bool) -> str:
        out = []
        for i, line in enumerate(lines):
            out.append(line)
            if i < len(lines) - 1 or final_newline:
                out.append(self.newline())
        return "".join(out)

    def directives(self) -> list[str]:
        out: list[str] = []
        scanning = True
        for _ in range(self.pick([0, 0, 0, 1, 1, 1, 2, 3])):
            x = self.r.random()
            if x < 0.3:
                line = self.pick(["# syntax=docker/dockerfile:1", "#syntax = docker/dockerfile:1.4 opts",
                                  "# SYNTAX=x", "#\tsyntax=y  ", "  # syntax=z"])  # twice: an error
            elif x < 0.6:
                valid, invalid = ["`", "`", "\\", "`  ", "` \t"], ["x", "``", ""]
                value = self.pick(invalid if self.chance(0.1) else valid)
                line = self.pick(["# escape=", "#escape = ", "# ESCAPE=", "#\tEscape=\t", " # escape="]) + value
                if "`" in value:
                    self.backtick_directive = True
                if scanning and value.strip() in ("`", "\\"):
                    self.escape = value.strip()
            elif x < 0.8:
                line = self.pick(["# foo=bar", "# syntax", "#", "# comment", "// syntax=x", "#!/bin/sh",
                                  "# escape", "#escape:`", "## escape=`", "# 1escape=`", "# es-cape=`"])
                scanning = False
            else:
                line = ""
                scanning = False
            out.append(line)
        return out

    def dockerfile(self) -> str:
        r = self.r
        self.eol = "\r\n" if self.chance(0.15) else "\n"
        parts: list[str] = []
        if self.chance(0.1):
            parts.append("\ufeff")
        for line in self.directives():
            parts.append(line + self.newline())
        n = r.randrange(0, 9)
        for i in range(n):
            while self.chance(0.2):
                parts.append(self.pick(["", "# a comment", "  # indented", "\t", "#", "# escape=`",
                                        "   ", "#" + self.escape, self.escape, " " + self.escape + " "])
                             + self.newline())
            toks, docs = self.instruction()
            parts.append(self.render(toks, docs, last=i == n - 1))
        if self.chance(0.1):
            parts.append(self.pick(["# trailing comment", "", "\n\n", "  "]))
        return "".join(parts)


def generate(seed: int, heredocs: bool = False) -> str:
    return Gen(seed, heredocs).dockerfile()


# --------------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------------

def _values(node) -> tuple:
    if node.shape in (PAIRS, LEGACY_PAIR):
        vals = node.values()
        return tuple(v for i, v in enumerate(vals) if i % 3 != 2)  # 0.12.5 has no separator nodes
    if node.keyword not in _KNOWN and node.shape == NONE:
        return ("",)  # BuildKit's parseIgnore gives unknown instructions one empty node
    if node.subcommand is not None:
        return ("",)  # ONBUILD ONBUILD x: the wrapper lists the inner ONBUILD's (empty) child holder
    return tuple(node.values())


def _c(s: str) -> str:
    """What a Go string looks like after the wrapper's C.CString: cut at the first NUL."""
    return s.partition("\0")[0]


def ours(text: str):
    try:
        tree = parse_text(text)
    except DockerfileError as err:
        return ("error", err.message)
    out = []
    for node in tree.nodes:
        target = node.subcommand if node.subcommand is not None else node
        if node.subcommand is None and node.heredocs:
            original = node.original + "\n" + "".join(h.content + h.name + "\n" for h in node.heredocs)
            docs = tuple((_c(h.name), h.fd, _c(h.content)) for h in node.heredocs)
        else:
            original, docs = node.original, ()
        out.append({
            "cmd": _c(node.keyword_text) or None,
            "sub_cmd": _c(node.subcommand.keyword_text) or None if node.subcommand is not None else None,
            "json": target.is_json,
            "flags": tuple(_c(f.text) for f in node.flags),
            "value": tuple(_c(v) for v in _values(target)),
            "lines": (node.start_line, node.end_line),
            "original": _c(original) or None,
            "heredocs": docs,
        })
    return ("ok", out)


def theirs(text: str):
    try:
        cmds = dockerfile.parse_string(text)
    except dockerfile.GoParseError as err:
        return ("error", str(err))
    except UnicodeDecodeError as err:  # Go produced invalid UTF-8 (bytes cut inside a character)
        return ("unrepresentable", str(err))
    return ("ok", [{
        "cmd": c.cmd,
        "sub_cmd": c.sub_cmd,
        "json": c.json,
        "flags": tuple(c.flags),
        "value": tuple(c.value),
        "lines": (c.start_line, c.end_line),
        "original": c.original,
        "heredocs": tuple((h.name, h.file_descriptor, h.content) for h in c.heredocs),
    } for c in cmds])


_JSON_PREFIX = json.JSONDecoder()


def _json_prefix_then_text(rest: str) -> bool:
    """Does ``rest`` start with a JSON value followed by more text (0.12.5 took the value)?"""
    rest = rest.lstrip(w.GO_SPACE_CHARS)
    if not rest.startswith("["):
        return False
    try:
        _, end = _JSON_PREFIX.raw_decode(rest)
    except (ValueError, RecursionError):
        return False
    return bool(rest[end:].strip(w.GO_SPACE_CHARS))


# Blanks after "<<", and the ${a#p} ${a%p} ${a/p/r} forms 0.12.5's lexer failed on.
_HEREDOC_LEXER_CHANGES = re.compile(r"<<[ \t\r]|\$\{[^}]*[#%/]")
# A directive-looking line with a blank after "#" that RE2's \s does not know.
_DIRECTIVE_PREFIX = re.compile("^\ufeff?[ \t]*#[ \t\r\f]*[\v" + w.GO_SPACE_CHARS[6:] + "]", re.M)


def skip_reason(text: str) -> str | None:
    """Why this file cannot be compared with 0.12.5 (a known difference; see the module docstring)."""
    if _DIRECTIVE_PREFIX.search(text):
        return "directive prefix blanks (item 3)"
    try:
        tree = parse_text(text)
    except DockerfileError:
        # No tree to look at: check the lines for what could have made 0.12.5 succeed or fail differently.
        if _HEREDOC_LEXER_CHANGES.search(text) or re.search("<<[\\\\`][ \t]*\r?\n", text):
            return "heredoc detection lexer (item 6)"
        backtick = re.search(r"(?im)^\ufeff?[ \t]*#[ \t]*escape[ \t]*=[ \t]*`", text) is not None
        for line in text.split("\n"):
            flag_part = line.partition("--")[2]
            if backtick and ("\\" in flag_part or "`" in flag_part):
                return "escape characters inside flags with a backtick escape (item 5)"
            if not flag_part.isascii():
                return "non-ASCII inside flags (Go mangles bytes)"
            for i in [m.start() for m in re.finditer(r"\[", line)]:
                if _json_prefix_then_text(line[i:]):
                    return "JSON followed by text (item 4)"
        return None
    for node in tree.nodes:
        commands = [node.line.command]
        if commands[0].sub is not None:
            commands.append(commands[0].sub)
        for command in commands:
            # the text extractBuilderFlags looked at (flags, or a "--" word it dropped)
            region = node.line.text[command.keyword_offset + len(command.keyword):command.args_offset]
            if "--" in region:
                if not region.isascii():
                    return "non-ASCII inside flags (Go mangles bytes)"
                if tree.escape == "`" and ("\\" in region or "`" in region):
                    return "escape characters inside flags with a backtick escape (item 5)"
            if command.keyword.lower() in ("run", "copy", "add") and _HEREDOC_LEXER_CHANGES.search(node.line.text):
                return "heredoc detection lexer (item 6)"
            if command.json or command.form not in ("exec_or_shell", "exec_or_words", "healthcheck"):
                continue
            rest = node.line.text[command.args_offset:]
            if command.form == "healthcheck":
                rest = node.line.text[command.args[1].offset:] if len(command.args) > 1 else ""
            if _json_prefix_then_text(rest):
                return "JSON followed by text (item 4)"
    return None


def _has_undecodable(nodes) -> bool:
    return any("\udc80" <= ch <= "\udcff" for n in nodes for v in n["value"] for ch in v)


def compare(text: str) -> str | None:
    """None if both parsers agree, else a description of the first disagreement."""
    a, b = ours(text), theirs(text)
    if b[0] == "unrepresentable" and a[0] == "ok" and _has_undecodable(a[1]):
        return None  # both cut a character in two (HEALTHCHECK's type word); the wrapper cannot say more
    if a[0] != b[0]:
        return f"ours={a[0]}:{a[1] if a[0] == 'error' else ''} go={b[0]}:{b[1] if b[0] != 'ok' else ''}"
    if a[0] == "error":
        if a[1] != b[1] and "max allowed size" not in a[1] + b[1]:
            return f"error messages differ: ours={a[1]!r} go={b[1]!r}"
        return None
    if len(a[1]) != len(b[1]):
        return f"instruction count: ours={len(a[1])} go={len(b[1])}"
    for i, (x, y) in enumerate(zip(a[1], b[1])):
        for key in x:
            if x[key] != y[key]:
                return f"instruction {i} {key}: ours={x[key]!r} go={y[key]!r}"
    return None


def run_seeds(seeds, heredocs: bool) -> tuple[list[str], int]:
    failures, skipped = [], 0
    for seed in seeds:
        text = generate(seed, heredocs)
        problem = compare(text)
        if problem is not None and skip_reason(text) is not None:
            skipped += 1  # a disagreement explained by a known difference
        elif problem is not None:
            failures.append(f"seed {seed}: {problem}\n    {text!r}")
    return failures, skipped


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------

def test_generator_is_deterministic():
    assert generate(7) == generate(7)
    assert generate(7, True) == generate(7, True)
    assert len({generate(s) for s in range(50)}) > 45


@pytest.mark.parametrize("chunk", range(8))
def test_generated_dockerfiles(chunk):
    seeds = range(chunk, N_CASES, 8)
    failures, skipped = run_seeds(seeds, heredocs=False)
    assert not failures, "\n".join(failures[:5])
    assert skipped <= len(seeds) // 5, f"too many files skipped as version-sensitive: {skipped}"


@pytest.mark.parametrize("chunk", range(4))
def test_generated_dockerfiles_with_heredocs(chunk):
    seeds = range(100_000 + chunk, 100_000 + N_HEREDOC_CASES, 4)
    failures, skipped = run_seeds(seeds, heredocs=True)
    assert not failures, "\n".join(failures[:5])
    assert skipped <= len(seeds) // 5, f"too many files skipped as version-sensitive: {skipped}"


_CONFORMANCE = Path(os.environ.get(
    "PYBUILD_CONFORMANCE_DIR", Path(__file__).resolve().parent.parent.parent / "shared" / "conformance" / "buildkit"))
_TESTFILES = _CONFORMANCE / "frontend" / "dockerfile" / "parser" / "testfiles"
_INJECT = ["\\", "`", '"', "'", "<<", "<<EOF\n", "<<-EOF\n", "[", "]", "#", "--", "\n", "\r", "\ufeff", "é",
           "\u00a0", "\u3000", " ", "\t", "=", "\\\n", "`\n", "# escape=`\n", "EOF\n", "{", "$", "${a}",
           "\n#\n", "\\\\\n", "\\ \n", "\n\n", "ONBUILD ", "--x ", '"]', "\\\t\n"]


def mutate(r: random.Random, text: str) -> str:
    """Insert, delete, duplicate characters and lines; inject Dockerfile-meaningful snippets."""
    for _ in range(r.randrange(1, 6)):
        lines = text.split("\n")
        op = r.randrange(6)
        pos = r.randrange(len(text) + 1)
        if op == 0:
            text = text[:pos] + r.choice(_INJECT) + text[pos:]
        elif op == 1:
            text = text[:pos] + text[pos + 1:]
        elif op == 2:
            lines.insert(r.randrange(len(lines)), lines[r.randrange(len(lines))])
            text = "\n".join(lines)
        elif op == 3 and len(lines) > 1:
            del lines[r.randrange(len(lines))]
            text = "\n".join(lines)
        elif op == 4:
            text = text[:pos] + text[pos - 1:pos] * 2 + text[pos:]
        else:
            text = text[:pos] + r.choice(_INJECT) + r.choice(_INJECT) + text[pos:]
    return text


@pytest.mark.skipif(not _TESTFILES.is_dir(), reason="BuildKit parser test data not found")
def test_mutated_buildkit_testfiles():
    originals = [(d / "Dockerfile").read_bytes().decode("utf-8") for d in sorted(_TESTFILES.iterdir())]
    failures, skipped = [], 0
    for seed in range(N_MUTATIONS):
        r = random.Random(seed)
        text = mutate(r, r.choice(originals))
        problem = compare(text)
        if problem is not None and skip_reason(text) is not None:
            skipped += 1
        elif problem is not None:
            failures.append(f"mutation {seed}: {problem}\n    {text!r}")
    assert not failures, "\n".join(failures[:5])
    assert skipped <= N_MUTATIONS // 10


def test_generator_covers_the_interesting_features():
    texts = [generate(s) for s in range(N_CASES)] + [generate(100_000 + s, True) for s in range(N_HEREDOC_CASES)]
    joined = "".join(texts)
    for needle in ("\ufeff", "\r\n", "# escape=`", "\\ \n", "\\\n", "\\\\\n", "<<-", "<<'", "3<<", "[\"",
                   "--mount", "-- ", "ONBUILD", "HEALTHCHECK", "ENV", "LABEL", "ARG", "\u00a0", "😀"):
        assert needle in joined, needle
    outcomes = [theirs(t)[0] for t in texts]
    assert 0.1 < outcomes.count("error") / len(outcomes) < 0.6


# Minimised disagreements found by the generator, fixed in the parser layer: keep them as regressions.
REGRESSIONS = [
    # A Unicode space before the first flag: Go's extractBuilderFlags looks at bytes, sees a non-space
    # byte that is not "-" and stops: no flags (we skipped the Unicode space and took "--x" as a flag).
    "RUN \u00a0--x y\n",
    "COPY \u3000--from=a b c\n",
    # Over-long lines: bufio.Scanner's limit counts the line's bytes with its "\r" (only "\n" is the
    # separator): 65535 characters + "\r\n" is too long. (The last two are boundary checks.)
    "FROM a\nRUN " + "x" * 65531 + "\r\n",
    "FROM a\nRUN " + "x" * 65530 + "\r\n",
    "FROM a\nRUN " + "x" * 65532,
    "FROM a\nRUN " + "x" * 65531 + "\n",
    # An empty JSON array is still the exec form (json attribute set, no values).
    "RUN []\nVOLUME []\nCMD --x []\nONBUILD ENTRYPOINT []\n",
    "HEALTHCHECK CMD []\n",
    # A JSON array holding a non-string is an error in every exec-or-words instruction too.
    'COPY ["a", 1]\n',
    'ONBUILD VOLUME [["a"]]\n',
    # HEALTHCHECK's type word ends at a byte Go's unicode.IsSpace accepts: U+3000 is no such byte.
    "HEALTHCHECK CMD\u3000curl x\n",
    "HEALTHCHECK CMD \u3000curl x\n",
]


@pytest.mark.parametrize("text", REGRESSIONS, ids=range(len(REGRESSIONS)))
def test_regressions(text):
    assert compare(text) is None


def test_only_ascii_blanks_end_a_flag_word():
    # U+3000 is the bytes E3 80 80, none a space for Go's byte-wise test: the flag goes on (Go then
    # mangles the bytes of the character, which we do not), and the argument is the same.
    text = "FROM a\nRUN --x\u3000--y z\n"
    node = parse_text(text).nodes[1]
    assert [f.text for f in node.flags] == ["--x\u3000--y"] and node.values() == ["z"]
    go = theirs(text)[1][1]
    assert go["flags"] == ("--x\u00e3\u0080\u0080--y",) and go["value"] == ("z",)


# --------------------------------------------------------------------------------------------------
# Version differences, pinned on both sides
# --------------------------------------------------------------------------------------------------

def test_env_label_separators_are_dropped_for_0_12_5():
    text = "FROM a\nENV a=b c=d\nLABEL k v w\n"
    assert theirs(text)[1][1]["value"] == ("a", "b", "c", "d")
    assert dump_tree(parse_text(text)).splitlines()[1:] == ['(env "a" "b" "=" "c" "d" "=")',
                                                             '(label "k" "v w" "")']


def test_check_directive_is_a_version_difference():
    text = "# check=skip=all\n# escape=`\nFROM a\nRUN b `\nc\n"
    tree = parse_text(text)
    assert [d.name for d in tree.directives] == ["check", "escape"]
    assert [n.values() for n in tree.nodes] == [["a"], ["b c"]]
    # 0.12.5: "check" is no directive, so scanning stops there and the backtick is literal.
    go = theirs(text)[1]
    assert [c["value"] for c in go] == [("a",), ("b `",), ("",)]
    # Without the check line both agree.
    assert compare(text.split("\n", 1)[1]) is None


def test_directive_prefix_whitespace_difference():
    text = "#\vescape=`\nFROM a\nRUN b `\nc\n"
    assert parse_text(text).escape == "`"  # current: TrimLeftFunc(unicode.IsSpace) after "#"
    assert [c["value"] for c in theirs(text)[1]] == [("a",), ("b `",), ("",)]  # 0.12.5: ^#\s* (no \v)
    assert compare(text.replace("\v", "\t")) is None


def test_json_trailing_data_difference():
    text = 'RUN ["a"] b\nCMD []]\n'
    assert skip_reason(text) is not None
    assert [n.values() for n in parse_text(text).nodes] == [['["a"] b'], ["[]]"]]
    go = theirs(text)[1]
    assert [(c["json"], c["value"]) for c in go] == [(True, ("a",)), (True, ())]


def test_flag_escape_follows_escape_directive():
    text = "# escape=`\nCOPY --chown=a`b --x=c\\d e f\n"
    assert [f.text for f in parse_text(text).nodes[0].flags] == ["--chown=ab", "--x=c\\d"]
    assert theirs(text)[1][0]["flags"] == ("--chown=a`b", "--x=cd")
    assert compare("COPY --chown=a\\b --x=c`d e f\n") is None


def test_heredoc_lexer_differences():
    spaced = "FROM a\nRUN cat << EOF\nbody\nEOF\n"
    node = parse_text(spaced).nodes[1]
    assert [(h.name, h.content) for h in node.heredocs] == [("EOF", "body\n")]
    assert len(theirs(spaced)[1]) == 4  # 0.12.5: no heredoc, "body" and "EOF" are instructions
    modifier = "FROM a\nRUN <<EOF ${a#b}\nx\nEOF\n"
    assert [h.name for h in parse_text(modifier).nodes[1].heredocs] == ["EOF"]
    assert len(theirs(modifier)[1]) == 4
    assert compare("FROM a\nRUN cat <<EOF ${a:-b}\nbody\nEOF\n") is None
