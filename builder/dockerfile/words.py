"""Character-level helpers that reproduce how BuildKit's parser splits an instruction line.

BuildKit's parser uses Go's ``unicode.IsSpace`` in some places and the narrower ``[\\t\\v\\f\\r ]`` in
others, keeps quotes in words, and strips them from flags. These rules decide what a Dockerfile
means, so they live here, small and exact, for the pre-pass lexer to use. Every function returns
source offsets with its words so that errors can point at the exact span.
"""

from __future__ import annotations

import json
import re

from ..errors import DockerfileSyntaxError
from ..gotext import go_quote  # noqa: F401  (re-exported: the parser layer quotes like Go)

# Go's unicode.IsSpace: ASCII \t \n \v \f \r and space, U+0085, U+00A0, and categories Z*.
GO_SPACE_CHARS = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_GO_SPACE = frozenset(GO_SPACE_CHARS)
# What ends a flag word for BuildKit's extractBuilderFlags, which looks at bytes (``rune(line[pos])``):
# the ASCII blanks. (Bytes 0x85 and 0xA0 inside a UTF-8 character count too; we do not mangle.)
_FLAG_SPACE = frozenset("\t\n\v\f\r ")
# BuildKit's reWhitespace, used to split the keyword and whitespace-delimited argument lists.
SPLIT_WS = re.compile(r"[\t\v\f\r ]+")
_GO_WORD_RUN = re.compile("[^" + GO_SPACE_CHARS.replace("\n", "\\n") + "]+")
_QUOTE_OR_ESCAPE = re.compile(r"['\"\\`]")

NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


def is_go_space(ch: str) -> bool:
    return ch in _GO_SPACE


def go_trim_space(text: str) -> tuple[str, int]:
    """``strings.TrimSpace``; also returns how many characters were cut on the left."""
    stripped = text.lstrip(GO_SPACE_CHARS)
    left = len(text) - len(stripped)
    return stripped.rstrip(GO_SPACE_CHARS), left


def split_command(line: str) -> tuple[str, int, str, int]:
    """Split a logical line into (keyword, keyword offset, rest, rest offset).

    Mirrors ``reWhitespace.Split(strings.TrimSpace(line), 2)``.
    """
    body, left = go_trim_space(line)
    m = SPLIT_WS.search(body)
    if m is None:
        return body, left, "", left + len(body)
    return body[: m.start()], left, body[m.end():], left + m.end()


_NOT_PLAIN = re.compile(r"[^\t\x20-\x7e]|['\"\\\\`]")


def split_head(text: str, escape: str) -> tuple[str, int, list[tuple[str, int]], str, int]:
    """``split_command`` + ``extract_flags`` + trimming, in one step.

    Returns (keyword, keyword offset, [(flag, offset)], arguments, arguments offset). Lines of plain
    ASCII with no quotes and no escape characters (most lines) take a fast path built on str.split,
    where Go's notion of a blank is just space and tab.
    """
    if _NOT_PLAIN.search(text) is None:
        words = text.split()
        if not words:
            return "", 0, [], "", len(text)
        keyword = words[0]
        pos = text.find(keyword)
        kw_off = pos
        pos += len(keyword)
        flags: list[tuple[str, int]] = []
        count = len(words)
        i = 1
        while i < count and words[i].startswith("--"):
            word = words[i]
            at = text.find(word, pos)
            pos = at + len(word)
            i += 1
            if word == "--":
                break
            flags.append((word, at))
        rest = text[pos:]
        stripped = rest.lstrip(" \t")
        rest_off = pos + len(rest) - len(stripped)
        return keyword, kw_off, flags, stripped.rstrip(" \t"), rest_off
    keyword, kw_off, rest, rest_off = split_command(text)
    flags = []
    if rest:
        raw_flags, rest, consumed = extract_flags(rest, escape)
        flags = [(f, rest_off + o) for f, o in raw_flags]
        rest_off += consumed
        rest, left = go_trim_space(rest)
        rest_off += left
    return keyword, kw_off, flags, rest, rest_off


def extract_flags(rest: str, escape: str) -> tuple[list[tuple[str, int]], str, int]:
    """Take the leading ``--flag`` words off ``rest``.

    Returns ([(flag, offset)], remaining text, offset of the remaining text). Quotes are removed and
    the escape character escapes the next character inside flags; a bare ``--`` ends the flags.
    BuildKit walks this text byte by byte, so only ASCII blanks separate flags (``_FLAG_SPACE``).
    """
    flags: list[tuple[str, int]] = []
    n = len(rest)
    pos = 0
    while True:
        while pos < n and rest[pos] in _FLAG_SPACE:
            pos += 1
        if pos >= n:
            return flags, "", n
        if not rest.startswith("--", pos):
            return flags, rest[pos:], pos
        start = pos
        chars: list[str] = []
        blank_ok = False
        quote = ""
        while pos < n:
            ch = rest[pos]
            if quote:
                if ch == quote:
                    quote = ""
                    pos += 1
                    continue
                if ch == escape:
                    if pos + 1 == n:
                        quote = ""
                        pos += 1
                        continue
                    pos += 1
                    ch = rest[pos]
                chars.append(ch)
                pos += 1
                continue
            if ch in _FLAG_SPACE:
                break
            if ch == "'" or ch == '"':
                quote = ch
                blank_ok = True
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = rest[pos]
            chars.append(ch)
            pos += 1
        word = "".join(chars)
        if word == "--":
            # A bare "--" ends the flags; BuildKit returns the text right after it, spaces included.
            return flags, rest[pos:], pos
        if blank_ok or word:
            flags.append((word, start))


def parse_words(rest: str, escape: str) -> list[tuple[str, int]]:
    """BuildKit's ``parseWords``: split on unicode spaces, keeping quotes and escapes in each word."""
    if _QUOTE_OR_ESCAPE.search(rest) is None:
        return [(m.group(), m.start()) for m in _GO_WORD_RUN.finditer(rest)]
    words: list[tuple[str, int]] = []
    n = len(rest)
    pos = 0
    while pos < n:
        while pos < n and rest[pos] in _GO_SPACE:
            pos += 1
        if pos >= n:
            break
        start = pos
        chars: list[str] = []
        blank_ok = False
        quote = ""
        while pos < n:
            ch = rest[pos]
            if quote:
                if ch == quote:
                    quote = ""
                if ch == escape and quote != "'":
                    if pos + 1 == n:
                        pos += 1
                        quote = ""
                        continue
                    chars.append(ch)
                    pos += 1
                    ch = rest[pos]
                chars.append(ch)
                pos += 1
                continue
            if ch in _GO_SPACE:
                break
            if ch == "'" or ch == '"':
                quote = ch
                blank_ok = True
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                chars.append(ch)
                pos += 1
                ch = rest[pos]
            chars.append(ch)
            pos += 1
        if blank_ok or chars:
            words.append(("".join(chars), start))
    return words


def split_whitespace(rest: str) -> list[tuple[str, int]]:
    """``reWhitespace.Split(rest, -1)``: may yield empty words (leading unicode spaces, for instance)."""
    if not rest:
        return []
    out: list[tuple[str, int]] = []
    pos = 0
    for m in SPLIT_WS.finditer(rest):
        out.append((rest[pos:m.start()], pos))
        pos = m.end()
    out.append((rest[pos:], pos))
    return out


class NotStringArray(DockerfileSyntaxError):
    """Valid JSON array whose elements are not all strings (BuildKit rejects the instruction)."""


def _reject_constant(name: str):
    raise ValueError(name)


_decoder = json.JSONDecoder(parse_constant=_reject_constant)


def parse_json_array(rest: str) -> list[str] | None:
    """Parse an exec-form argument as Go's encoding/json would, or return None if it is not JSON.

    Raises ``NotStringArray`` for a valid JSON array holding anything but strings.
    """
    text = rest.lstrip(GO_SPACE_CHARS)
    if not text.startswith("["):
        return None
    try:
        value = _decoder.decode(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    for item in value:
        if not isinstance(item, str):
            raise NotStringArray(NOT_STRING_ARRAY)
    # Go replaces lone surrogates (from \\uD800-style escapes) with U+FFFD; Python keeps them.
    return [_fix_surrogates(s) for s in value]


def _fix_surrogates(s: str) -> str:
    if any("\ud800" <= c <= "\udfff" for c in s):
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in s)
    return s

