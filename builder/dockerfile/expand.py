"""Dockerfile word expansion: quote removal, escapes and ``$var`` / ``${var…}`` substitution.

BuildKit expands instruction arguments with its own small shell-like lexer
(``frontend/dockerfile/shell/lex.go``), not with a real shell. Dockerfiles rely on its exact
behaviour, quirks included, so this module re-implements it: same results, same word
splitting, same error texts (``failed to process "<word>": <reason>``), raised as
:class:`builder.errors.ExpansionError`.

Behaviour kept on purpose because BuildKit has it:

* a leading U+FEFF in a word (or in a ``${a#…}`` pattern) is dropped, as Go's text/scanner does;
* ``${a`` at the end of input reports ``unsupported modifier (\\ufffd) in substitution``;
* :meth:`ShellLexer.process_words` loses the part of a word that precedes a ``${a<op>…}``
  form in the same word (BuildKit shares one word buffer with the nested lexer);
* ``${a//p/r}`` honours Go's ``$0``/``$$`` replacement templates, ``${a/p/r}`` does not;
* with ``skip_unset_env``, an unset ``${a//p/r}`` is written back as ``${a/p/r}``.

Known differences, both limited to pathological input: Python recursion replaces Go's growable
stacks, so ``${a:-${b:-…}}`` nested hundreds of levels deep is reported as an
:class:`ExpansionError`; and glob patterns run on Python's backtracking ``re`` rather than
Go's linear-time RE2 (same matches, but a pattern with many ``*`` against a long value can be slow).
"""

from __future__ import annotations

from typing import NamedTuple

import re
from collections.abc import Mapping
from functools import lru_cache

from builder.errors import ExpansionError
from builder.gotext import go_quote

__all__ = ["ExpansionResult", "ShellLexer", "expand_heredoc_body", "go_quote"]

# Go's unicode.IsSpace (Unicode White_Space); Python's str.isspace also accepts U+001C..U+001F.
_GO_SPACES = "\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_SPACE_RUN = re.compile(f"([{_GO_SPACES}]+)")
_HAS_SPACE = re.compile(f"[{_GO_SPACES}]").search
_SPACE_SPLIT = re.compile(f"[{_GO_SPACES}]+").split

_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_WORDISH = re.compile(r"\w+").match          # superset of Go name characters, trimmed below
_HEREDOC_BLANKS = " \t\r"
_BOM = "\ufeff"
_EOF_RUNE = "\ufffd"                         # what Go's string(scanner.EOF) prints as


class _LexError(Exception):
    """An expansion failure; ``reason`` is BuildKit's inner message (before wrapping)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ExpansionResult(NamedTuple):
    """Outcome of :meth:`ShellLexer.process_word_with_matches`.

    ``matched``: variable names looked up and found in the environment; ``unmatched``: names
    looked up but not set (input for the UndefinedVar lint).
    """

    result: str
    words: tuple[str, ...]
    matched: frozenset[str]
    unmatched: frozenset[str]


_EMPTY_RESULT = ExpansionResult("", (), frozenset(), frozenset())


class ShellLexer:
    """BuildKit's ``shell.Lex``: expands one Dockerfile word against an environment.

    ``escape`` is the Dockerfile escape character (a backslash or a backtick). The flags mirror Go's
    ``RawQuotes`` (keep quote characters in the output), ``RawEscapes`` (keep escape
    characters), ``SkipProcessQuotes`` (quotes are ordinary characters) and ``SkipUnsetEnv``
    (leave references to unset variables as written). A lexer holds no per-call state, so one
    instance may be shared.
    """

    __slots__ = ("escape", "raw_quotes", "raw_escapes", "skip_process_quotes", "skip_unset_env",
                 "_finders", "_dquote_find", "_fast_check", "_fast_words_check")

    def __init__(self, escape: str = "\\", *, raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_process_quotes: bool = False, skip_unset_env: bool = False):
        if not isinstance(escape, str) or len(escape) != 1:
            raise ValueError(f"escape must be a single character, not {escape!r}")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_process_quotes = skip_process_quotes
        self.skip_unset_env = skip_unset_env
        base = "$<" + escape + ("" if skip_process_quotes else "'\"")
        # One scanner per stop character: finds the next character that is not plain text.
        self._finders = {stop: re.compile(_char_class(base + (stop or ""))).search
                         for stop in (None, "}", "/")}
        self._dquote_find = re.compile(_char_class('"$' + escape)).search
        fast = "$" + escape + ("" if skip_process_quotes else "'\"")
        self._fast_check = re.compile(_char_class(fast)).search
        self._fast_words_check = re.compile(_char_class(fast + "<")).search

    def __repr__(self) -> str:
        flags = [name for name in ("raw_quotes", "raw_escapes", "skip_process_quotes", "skip_unset_env")
                 if getattr(self, name)]
        return f"ShellLexer(escape={self.escape!r}{''.join(', ' + f + '=True' for f in flags)})"

    # -- public API ---------------------------------------------------------------------------

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """Expand ``word`` as one word (inner whitespace kept); Go's ``ProcessWord``."""
        if self._fast_check(word) is None and not word.startswith(_BOM):
            return word
        return self._run(word, env, capture=False, words=None)[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """Expand ``word`` then split it on unquoted whitespace; Go's ``ProcessWords``."""
        if self._fast_words_check(word) is None and not word.startswith(_BOM):
            return [w for w in _SPACE_SPLIT(word) if w]
        words = _Words()
        self._run(word, env, capture=False, words=words)
        return words.finish()

    def process_word_with_matches(self, word: str, env: Mapping[str, str]) -> ExpansionResult:
        """Expand ``word`` and report which variable names were found / missing."""
        if self._fast_words_check(word) is None and not word.startswith(_BOM):
            if not word:
                return _EMPTY_RESULT
            split = (word,) if _HAS_SPACE(word) is None else tuple(filter(None, _SPACE_SPLIT(word)))
            return ExpansionResult(word, split, _NO_NAMES, _NO_NAMES)
        words = _Words()
        result, run = self._run(word, env, capture=True, words=words)
        return ExpansionResult(result, tuple(words.finish()), frozenset(run.matched),
                               frozenset(run.unmatched))

    # -- internals ----------------------------------------------------------------------------

    def _run(self, word: str, env: Mapping[str, str], *, capture: bool,
             words: _Words | None) -> tuple[str, _Run]:
        run = _Run(self, word, env, capture, words)
        try:
            return run.stop_on(None, self.raw_escapes, words), run
        except _LexError as exc:
            reason = exc.reason
        except RecursionError:
            reason = "variable substitutions nested too deeply"
        err = ExpansionError(f"failed to process {go_quote(word)}: {reason}")
        err.reason = reason  # type: ignore[attr-defined]
        err.word = word  # type: ignore[attr-defined]
        raise err


def _char_class(chars: str) -> str:
    return "[" + "".join(re.escape(c) for c in dict.fromkeys(chars)) + "]"


class _Words:
    """Go's ``wordsStruct``: splits expanded text into words on unquoted whitespace."""

    __slots__ = ("buf", "words", "in_word")

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_string(self, text: str) -> None:
        """Add expanded text; whitespace in it ends the current word."""
        if _HAS_SPACE(text) is None:
            if text:
                self.buf.append(text)
                self.in_word = True
            return
        buf = self.buf
        for i, part in enumerate(_SPACE_RUN.split(text)):
            if i & 1:
                if self.in_word and buf:
                    self.words.append("".join(buf))
                    buf.clear()
                    self.in_word = False
            elif part:
                buf.append(part)
                self.in_word = True

    def add_raw(self, text: str) -> None:
        """Add quoted or escaped text: whitespace in it does not split."""
        if text:
            self.buf.append(text)
        self.in_word = True

    def finish(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf.clear()
            self.in_word = False
        return self.words


class _Run:
    """State of one expansion: the input, a cursor into it, and the variable bookkeeping."""

    __slots__ = ("lex", "s", "n", "pos", "env", "capture", "matched", "unmatched", "top_words")

    def __init__(self, lex: ShellLexer, word: str, env: Mapping[str, str], capture: bool,
                 words: _Words | None):
        self.lex = lex
        self.s = word
        self.n = len(word)
        self.pos = 1 if word.startswith(_BOM) else 0  # Go's text/scanner skips a leading BOM
        self.env = env
        self.capture = capture
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()
        self.top_words = words

    def stop_on(self, stop: str | None, raw_esc: bool, words: _Words | None) -> str:
        """Lex until ``stop`` (consumed) or, when ``stop`` is None, until the end of input."""
        if stop is not None and self.top_words is not None:
            # BuildKit's nested lexer resets the word buffer it shares with the outer one.
            self.top_words.buf.clear()
        lex = self.lex
        s, n = self.s, self.n
        find = lex._finders[stop]
        esc = lex.escape
        quotes = not lex.skip_process_quotes
        out: list[str] = []
        while self.pos < n:
            pos = self.pos
            m = find(s, pos)
            j = m.start() if m is not None else n
            if j > pos:
                run = s[pos:j]
                out.append(run)
                if words is not None:
                    words.add_string(run)
                self.pos = pos = j
                if j == n:
                    break
            ch = s[j]
            if ch == stop:
                self.pos = j + 1
                return "".join(out)
            if ch == "$":
                tmp = self.dollar()
                out.append(tmp)
                if words is not None:
                    words.add_string(tmp)
                continue
            if ch == "<":
                tmp = self.possible_heredoc()
            elif quotes and ch == "'":
                tmp = self.single_quote()
            elif quotes and ch == '"':
                tmp = self.double_quote(raw_esc)
            else:  # the escape character
                self.pos = j + 1
                if raw_esc:
                    out.append(ch)
                    if words is not None:
                        words.add_raw(ch)
                if j + 1 >= n:
                    break
                tmp = s[j + 1]
                self.pos = j + 2
            out.append(tmp)
            if words is not None:
                words.add_raw(tmp)
        if stop is not None:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out)

    def single_quote(self) -> str:
        """``'…'``: everything literal up to the next single quote."""
        start = self.pos
        end = self.s.find("'", start + 1)
        if end < 0:
            self.pos = self.n
            raise _LexError("unexpected end of statement while looking for matching single-quote")
        self.pos = end + 1
        if self.lex.raw_quotes:
            return self.s[start:end + 1]
        return self.s[start + 1:end]

    def double_quote(self, raw_esc: bool) -> str:
        """``"…"``: ``$`` expands; the escape char escapes only ``"``, ``$`` and itself."""
        lex = self.lex
        s, n = self.s, self.n
        esc = lex.escape
        find = lex._dquote_find
        out: list[str] = []
        if lex.raw_quotes:
            out.append('"')
        self.pos += 1
        while True:
            pos = self.pos
            m = find(s, pos)
            j = m.start() if m is not None else n
            if j > pos:
                out.append(s[pos:j])
                self.pos = j
            if j >= n:
                raise _LexError("unexpected end of statement while looking for matching double-quote")
            ch = s[j]
            if ch == '"':
                self.pos = j + 1
                if lex.raw_quotes:
                    out.append('"')
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            # the escape character
            self.pos = j + 1
            if raw_esc:
                out.append(ch)
            if j + 1 >= n:
                continue  # reported as an unterminated quote on the next turn
            nxt = s[j + 1]
            if nxt == '"' or nxt == "$" or nxt == esc:
                self.pos = j + 2
                out.append(nxt)
            else:
                out.append(ch)

    def possible_heredoc(self) -> str:
        """``<`` or ``<<`` plus the blanks after it, kept as one unsplittable piece."""
        s, n = self.s, self.n
        i = self.pos + 1
        if i >= n or s[i] != "<":
            self.pos = i
            return "<"
        i += 1
        while i < n and s[i] in _HEREDOC_BLANKS:
            i += 1
        start, self.pos = self.pos, i
        return s[start:i]

    def name(self) -> str:
        """Read a variable name: digits only, one special parameter, or letters/digits/_."""
        s, n, i = self.s, self.n, self.pos
        if i >= n:
            return ""
        c = s[i]
        if c.isdecimal():
            j = i + 1
            while j < n and s[j].isdecimal():
                j += 1
            self.pos = j
            return s[i:j]
        if c in _SPECIAL_PARAMS:
            self.pos = i + 1
            return c
        m = _WORDISH(s, i)
        if m is None:
            return ""
        j = m.end()
        text = m.group()
        if not text.isascii():
            # \w also accepts numeric characters that Go's IsLetter/IsDigit reject ("²", "Ⅻ").
            for k, ch in enumerate(text):
                if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                    j = i + k
                    break
        self.pos = j
        return s[i:j]

    def get_env(self, name: str) -> str | None:
        value = self.env.get(name, _MISSING)
        if value is _MISSING:
            if self.capture:
                self.unmatched.add(name)
            return None
        if self.capture:
            self.matched.add(name)
        return value

    def _next(self) -> str | None:
        """Consume one character; None at end of input."""
        if self.pos >= self.n:
            return None
        ch = self.s[self.pos]
        self.pos += 1
        return ch

    def _nested(self, stop: str, raw_esc: bool, eof_reason: str) -> str:
        try:
            return self.stop_on(stop, raw_esc, None)
        except _LexError:
            if self.pos >= self.n:
                raise _LexError(eof_reason) from None
            raise

    def dollar(self) -> str:
        """Expand the ``$…`` form at the cursor."""
        s, n = self.s, self.n
        lex = self.lex
        self.pos += 1
        if self.pos >= n or s[self.pos] != "{":
            name = self.name()
            if not name:
                return "$"
            value = self.get_env(name)
            if value is None:
                return "$" + name if lex.skip_unset_env else ""
            return value

        self.pos += 1
        if self.pos >= n:
            raise _LexError("syntax error: missing '}'")
        if s[self.pos] in "{}:":
            raise _LexError("syntax error: bad substitution")
        name = self.name()
        ch = self._next()
        chs = _EOF_RUNE if ch is None else ch

        if ch == "}":
            value = self.get_env(name)
            if value is None:
                return "${" + name + "}" if lex.skip_unset_env else ""
            return value

        if ch == "/":
            return self._replace(name)

        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self._next()
            chs += _EOF_RUNE if ch is None else ch
        elif ch not in ("+", "-", "?", "#", "%"):
            raise _LexError(f"unsupported modifier ({chs}) in substitution")

        raw_esc = ch == "#" or ch == "%"
        if null_is_unset and raw_esc:
            raise _LexError(f"unsupported modifier ({chs}) in substitution")
        word = self._nested("}", raw_esc, "syntax error: missing '}'")

        value = self.get_env(name)
        if value is None and lex.skip_unset_env:
            return "${" + name + chs + word + "}"
        empty = value is None or (null_is_unset and value == "")
        if ch == "-":
            return word if empty else value  # type: ignore[return-value]
        if ch == "+":
            return "" if empty else word
        if ch == "?":
            if value is None:
                raise _LexError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _LexError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch == "%" or ch == "#":
            greedy = word[:1] == ch
            if greedy:
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value or "", greedy)
            return _trim_prefix(word, value or "", greedy)
        raise _LexError(f"unsupported modifier ({chs}) in substitution")

    def _replace(self, name: str) -> str:
        """``${name/pattern/replacement}`` and ``${name//pattern/replacement}``."""
        replace_all = self.pos < self.n and self.s[self.pos] == "/"
        if replace_all:
            self.pos += 1
        pattern = self._nested("/", True, "syntax error: missing '/' in ${}")
        replacement = self._nested("}", True, "syntax error: missing '}'")
        value = self.get_env(name)
        if value is None:
            if self.lex.skip_unset_env:
                return "${" + name + "/" + pattern + "/" + replacement + "}"
            value = ""
        try:
            regex = _shell_pattern_regex(pattern, True, False)
        except _LexError as exc:
            raise _LexError(f"invalid pattern ({pattern}) in substitution: {exc.reason}") from None
        if replace_all:
            return _go_replace_all(regex, value, replacement)
        m = regex.search(value)
        if m is not None:
            value = value[:m.start()] + replacement + value[m.end():]
        return value


_MISSING = object()
_NO_NAMES: frozenset[str] = frozenset()


# -- shell patterns (${a#p}, ${a%p}, ${a/p/r}) ------------------------------------------------

@lru_cache(maxsize=512)
def _shell_pattern_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """Compile a glob (``*``, ``?``, ``\\*``, ``\\?``, ``\\\\``; no ``[…]``) to a regex."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    n = len(pattern)
    i = 1 if pattern.startswith(_BOM) else 0  # Go scans the pattern with text/scanner too
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(star)
        elif c == "?":
            out.append(".")
        elif c == "\\":
            nxt = pattern[i] if i < n else None
            if nxt == "}" or nxt == "/":
                continue
            i += 1
            if nxt != "*" and nxt != "?" and nxt != "\\":
                raise _LexError(f"invalid escape '\\{_EOF_RUNE if nxt is None else nxt}'")
            out.append("\\" + nxt)
        else:
            out.append(re.escape(c))
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    try:
        regex = _shell_pattern_regex(pattern, greedy, True)
    except _LexError as exc:
        raise _LexError(f"invalid pattern ({pattern}) in substitution: {exc.reason}") from None
    m = regex.search(value)
    return value[m.end():] if m is not None else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern but keep each ``\\x`` escape pair in order (BuildKit's reversePattern)."""
    n = len(pattern)
    out = [""] * n
    last = n - 1
    i = 0
    while i <= last:
        tok = pattern[i]
        k = last - i
        if tok == "\\" and i != last:
            out[k - 1] = tok
            out[k] = pattern[i + 1]
            i += 2
        else:
            out[k] = tok
            i += 1
    return "".join(out)


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # The shortest/longest rightmost match is a leftmost match on the reversed strings.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def _go_replace_all(regex: re.Pattern[str], src: str, template: str) -> str:
    """Go's ``Regexp.ReplaceAllString``: Go's empty-match rule and ``$`` template expansion."""
    out: list[str] = []
    last_end = 0
    search_pos = 0
    end = len(src)
    expand = "$" in template
    while search_pos <= end:
        m = regex.search(src, search_pos)
        if m is None:
            break
        a0, a1 = m.span()
        out.append(src[last_end:a0])
        if a1 > last_end or a0 == 0:
            out.append(_go_expand(template, m.group()) if expand else template)
        last_end = a1
        if search_pos + 1 > a1:
            search_pos += 1
        else:
            search_pos = a1
    out.append(src[last_end:])
    return "".join(out)


def _go_expand(template: str, whole: str) -> str:
    """Expand a Go replacement template for a regex with no groups: ``$0``/``${0}`` only."""
    out: list[str] = []
    while template:
        before, sep, after = template.partition("$")
        if not sep:
            break
        out.append(before)
        template = after
        if template[:1] == "$":
            out.append("$")
            template = template[1:]
            continue
        brace = template[:1] == "{"
        body = template[1:] if brace else template
        k = 0
        while k < len(body) and (body[k].isalpha() or body[k].isdecimal() or body[k] == "_"):
            k += 1
        if k == 0 or (brace and body[k:k + 1] != "}"):
            out.append("$")  # malformed reference: the "$" stays literal
            continue
        name = body[:k]
        template = body[k + 1:] if brace else body[k:]
        if name == "0":
            out.append(whole)
    out.append(template)
    return "".join(out)


# -- helpers ----------------------------------------------------------------------------------

_HEREDOC_LEXER = ShellLexer("\\", skip_process_quotes=True)


def expand_heredoc_body(body: str, env: Mapping[str, str]) -> str:
    """Expand a COPY/ADD heredoc body whose delimiter was unquoted.

    As BuildKit's ``ExpandRaw``: always a ``\\``-escape lexer (whatever the Dockerfile's escape
    directive) with quote processing off, so quotes stay literal, ``$var``/``${…}`` expand and
    ``\\x`` becomes ``x``. Use ``ShellLexer("\\\\", skip_process_quotes=True)
    .process_word_with_matches`` when the unmatched names are needed for linting.
    """
    return _HEREDOC_LEXER.process_word(body, env)
