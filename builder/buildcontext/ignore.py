""".dockerignore rules with the semantics BuildKit gives them when it sends a build context.

A ``.dockerignore`` is read as moby's ``ignorefile.ReadAll`` reads it: a UTF-8 BOM dropped, lines
that *start* with ``#`` skipped (an indented ``#`` is a pattern), spaces trimmed, ``!`` for an
exception, each pattern path-cleaned and a leading ``/`` dropped (every pattern is anchored at the
context root; ``foo`` does not match ``a/foo``, ``**/foo`` does).

A pattern is matched as moby's ``patternmatcher`` does: ``*`` and ``?`` stop at ``/``, ``**`` spans
directories (``**/`` may match nothing), ``[...]`` classes and ``\\`` escapes as in Go's
``filepath.Match``; patterns without wildcards compare exactly, ``dir/**`` and ``**/x`` by prefix and
suffix. Every pattern is tried in order and the last one that matches wins. A pattern that matches a
directory matches everything below it.

Which of moby's matchers: BuildKit walks the context with fsutil, which uses
``MatchesUsingParentResults`` — a pattern that matched a parent directory counts as matching the
child, and a pattern is only evaluated against a path when it could change the answer so far. That
walk is what decides what enters the context, so ``matches`` gives exactly its answer. The
CopyIgnoredFile check uses ``MatchesOrParentMatches`` (``matches_or_parent_matches``). fsutil also
skips whole directories when no exception could re-include anything below them; ``prunable`` says
when, and ``matches`` agrees (nothing below a prunable directory is ever visible).

A directory that is excluded but not prunable is not itself part of the context; it appears only as
the parent of something below it that is included (with its own metadata), as fsutil sends it.

Not gitignore: no trailing-``/``-means-directory rule, no unanchored basenames; pathspec's
gitwildmatch would give different answers, so the matcher is written out here (standard library
and ``builder.errors`` only: the no-op rebuild memo may import this before anything else).
"""

from __future__ import annotations

import hashlib
import re
import warnings

from ..errors import UsageError

__all__ = ["IgnoreRules", "IgnoreFileError", "go_clean"]

# Go's strings.TrimSpace (unicode.IsSpace)
_SPACE = " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
         "\u2028\u2029\u202f\u205f\u3000"
_REGEX_ESCAPE = set(".+()|{}$")          # regex metacharacters that are plain in filepath.Match
_PATTERN_CHARS = set("*[]?^\\")          # what makes an exception more than a literal prefix (fsutil)

_EXACT, _PREFIX, _SUFFIX, _REGEX = "exact", "prefix", "suffix", "regex"


class IgnoreFileError(UsageError):
    """A pattern Docker rejects (``!`` alone, a malformed ``[`` class, a trailing ``\\``)."""


def go_clean(path: str) -> str:
    """Go's ``path.Clean``: the shortest equivalent slash path (``""`` -> ``"."``)."""
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    if rooted:
        return "/" + "/".join(out)
    return "/".join(out) or "."


def _trim(text: str) -> str:
    return text.strip(_SPACE)


def _read_lines(text: str) -> list[str]:
    """``ignorefile.ReadAll``: the patterns of an ignore file, ``!`` kept in front of exceptions."""
    patterns: list[str] = []
    if text.startswith("\ufeff"):
        text = text[1:]
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]                     # bufio.ScanLines drops a CR before the LF
        if line.startswith("#"):
            continue
        line = _trim(line)
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = _trim(line[1:])
        if line:
            line = go_clean(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        patterns.append("!" + line if invert else line)
    return patterns


def _check_class_char(pattern: str, i: int) -> int:
    """Go's ``getEsc``: one (possibly escaped) character of a ``[...]`` class; the index after it."""
    if i >= len(pattern) or pattern[i] in "-]":
        raise IgnoreFileError(f"syntax error in pattern {pattern!r}")
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise IgnoreFileError(f"syntax error in pattern {pattern!r}")
    i += 1
    if i >= len(pattern):
        raise IgnoreFileError(f"syntax error in pattern {pattern!r}")
    return i


def _validate(pattern: str) -> None:
    """What ``filepath.Match(pattern, ".")`` rejects (ErrBadPattern): a bad class, a trailing ``\\``."""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= len(pattern):
                raise IgnoreFileError(f"syntax error in pattern {pattern!r}")
            i += 2
        elif ch == "[":
            i += 1
            if i < len(pattern) and pattern[i] == "^":
                i += 1
            ranges = 0
            while True:
                if i < len(pattern) and pattern[i] == "]" and ranges > 0:
                    i += 1
                    break
                i = _check_class_char(pattern, i)
                if pattern[i] == "-":
                    i = _check_class_char(pattern, i + 1)
                ranges += 1
        else:
            i += 1


class _Pattern:
    """One compiled pattern (moby's ``Pattern``): match type, cleaned text, regex when needed."""

    __slots__ = ("text", "exclusion", "kind", "regex")

    def __init__(self, text: str, exclusion: bool):
        self.text = text
        self.exclusion = exclusion
        self.kind, self.regex = self._compile(text)

    @staticmethod
    def _compile(pattern: str):
        out = ["^"]
        kind = _EXACT
        i, n, index = 0, len(pattern), 0
        while i < n:
            ch = pattern[i]
            i += 1
            if ch == "*":
                if i < n and pattern[i] == "*":
                    i += 1
                    if i < n and pattern[i] == "/":
                        i += 1                       # "**/" is read as "**"
                    if i >= n:                       # "**" at the end: anything below
                        if kind == _EXACT:
                            kind = _PREFIX
                        else:
                            out.append(".*")
                            kind = _REGEX
                    else:
                        out.append("(.*/)?")
                        kind = _REGEX
                    if index == 0:
                        kind = _SUFFIX
                else:
                    out.append("[^/]*")
                    kind = _REGEX
            elif ch == "?":
                out.append("[^/]")
                kind = _REGEX
            elif ch in _REGEX_ESCAPE:
                out.append("\\" + ch)
            elif ch == "\\":
                if i < n:
                    out.append("\\" + pattern[i])
                    i += 1
                    kind = _REGEX
                else:
                    out.append("\\\\")
            elif ch in "[]":
                out.append(ch)
                kind = _REGEX
            else:
                out.append(ch)
            index += 1
        if kind != _REGEX:
            return kind, None
        out.append(r"\Z")                            # Go's "$": the very end, not before a newline
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")      # "possible nested set" on "[[": Go reads it plainly
                return kind, re.compile("".join(out))
        except re.error:
            raise IgnoreFileError(f"syntax error in pattern {pattern!r}") from None

    def match(self, path: str) -> bool:
        kind = self.kind
        if kind is _EXACT:
            return path == self.text
        if kind is _PREFIX:
            return path.startswith(self.text[:-2])
        if kind is _SUFFIX:
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix[:1] == "/" and path == suffix[1:])
        return self.regex.search(path) is not None

    def literal_prefix(self) -> str:
        """fsutil's ``patternWithoutTrailingGlob``: the pattern without a trailing ``/**`` or ``/*``."""
        text = self.text
        if text.endswith("/**"):
            text = text[:-3]
        if text.endswith("/*"):
            text = text[:-2]
        return text


def _clean_rel(rel: str) -> str:
    """A context-relative path as the walk names it: ``a/b`` (``''`` for the root)."""
    rel = rel.strip("/")
    if not rel or rel == ".":
        return ""
    if "//" in rel or rel.startswith("./") or "/./" in rel or rel.endswith("/.") or ".." in rel.split("/"):
        rel = go_clean(rel)
        return "" if rel in (".", "/") else rel.lstrip("/")
    return rel


class IgnoreRules:
    """The exclusion rules of one build context (see the module docstring for the semantics).

    ``patterns`` are the file's patterns after reading (``!`` kept on exceptions); ``source`` names
    the file they came from, for messages. Instances are immutable; answers are cached per directory
    so a walk of a large context costs one pattern pass per path.
    """

    def __init__(self, patterns=(), *, source: str | None = None):
        self.patterns = tuple(patterns)
        self.source = source
        compiled = []
        for raw in self.patterns:
            text = _trim(raw)
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise IgnoreFileError('illegal exclusion pattern: "!"')
                text = text[1:]
            _validate(text)
            compiled.append(_Pattern(text, exclusion))
        self._compiled = tuple(compiled)
        self.has_exclusions = any(p.exclusion for p in compiled)
        # fsutil prunes excluded directories only when every exception is a literal path (plus /* or /**)
        self._exception_prefixes = tuple(p.literal_prefix() + "/" for p in compiled if p.exclusion)
        self._prune_ok = not any(set(p.literal_prefix()) & _PATTERN_CHARS for p in compiled if p.exclusion)
        self._dir_infos: dict[str, tuple[bool, tuple[bool, ...]]] = {}
        self._prunable: dict[str, bool] = {}

    @classmethod
    def parse(cls, text: str | bytes, *, source: str | None = None) -> "IgnoreRules":
        """Rules from the text of a ``.dockerignore`` (bytes are read as UTF-8)."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "surrogateescape")
        try:
            return cls(_read_lines(text), source=source)
        except IgnoreFileError as err:
            where = source or ".dockerignore"
            raise IgnoreFileError(f"failed to parse {where}: {err}") from None

    def __bool__(self) -> bool:
        return bool(self._compiled)

    def __eq__(self, other) -> bool:
        return isinstance(other, IgnoreRules) and other.patterns == self.patterns

    def __hash__(self) -> int:
        return hash(self.patterns)

    def __repr__(self) -> str:
        return f"IgnoreRules({list(self.patterns)!r})"

    @property
    def digest(self) -> str:
        """sha256 over the patterns (for keys that must change when the rules do)."""
        return "sha256:" + hashlib.sha256("\n".join(self.patterns).encode("utf-8", "surrogateescape")).hexdigest()

    # -- the walk's answers ---------------------------------------------------------------------

    def _evaluate(self, path: str, parent: tuple[bool, ...] | None) -> tuple[bool, tuple[bool, ...]]:
        """moby's ``MatchesUsingParentResults`` for ``path`` given its parent directory's results."""
        matched = False
        results = []
        for i, pattern in enumerate(self._compiled):
            match = parent[i] if parent is not None else False
            if not match:
                if pattern.exclusion != matched:
                    results.append(False)
                    continue
                match = pattern.match(path)
                if not match and parent is None and "/" in path:
                    # no parent results: the parent directories are tried one by one
                    parts = path.split("/")[:-1]
                    for j in range(1, len(parts) + 1):
                        if pattern.match("/".join(parts[:j])):
                            match = True
                            break
            results.append(match)
            if match:
                matched = not pattern.exclusion
        return matched, tuple(results)

    def _dir_info(self, rel: str) -> tuple[bool, tuple[bool, ...]]:
        found = self._dir_infos.get(rel)
        if found is None:
            parent = rel.rpartition("/")[0]
            found = self._evaluate(rel, self._dir_info(parent)[1] if parent else None)
            self._dir_infos[rel] = found
        return found

    def matches(self, rel: str) -> bool:
        """True when ``rel`` (a '/'-separated path relative to the context) is excluded from it."""
        rel = _clean_rel(rel)
        if not rel or not self._compiled:
            return False
        parent = rel.rpartition("/")[0]
        if parent:
            parts = parent.split("/")
            for j in range(1, len(parts) + 1):
                if self.prunable("/".join(parts[:j])):
                    return True                      # the walk never goes below a pruned directory
            return self._evaluate(rel, self._dir_info(parent)[1])[0]
        return self._evaluate(rel, None)[0]

    def prunable(self, rel_dir: str) -> bool:
        """True when directory ``rel_dir`` and everything below it are excluded and no exception can
        re-include anything there: a walk may skip it without listing it (fsutil's SkipDir)."""
        rel_dir = _clean_rel(rel_dir)
        if not rel_dir or not self._compiled or not self._prune_ok:
            return False
        found = self._prunable.get(rel_dir)
        if found is None:
            parent = rel_dir.rpartition("/")[0]
            if parent and self.prunable(parent):
                found = True
            else:
                excluded = self._dir_info(rel_dir)[0]
                prefix = rel_dir + "/"
                found = excluded and not any(p.startswith(prefix) for p in self._exception_prefixes)
            self._prunable[rel_dir] = found
        return found

    def matches_or_parent_matches(self, path: str) -> bool:
        """moby's ``MatchesOrParentMatches`` method (what the CopyIgnoredFile check asks): each pattern
        is tried on the cleaned path and then on each of its parent directories, last match wins. No
        special case for ``.``: ``*`` matches it, as in moby."""
        if not self._compiled:
            return False
        path = go_clean(path)
        parent = go_clean(path.rpartition("/")[0] or ("/" if path.startswith("/") else ".")) if "/" in path else "."
        parents = parent.split("/") if parent != "." else []
        matched = False
        for pattern in self._compiled:
            if pattern.exclusion != matched:
                continue
            match = pattern.match(path)
            if not match:
                for j in range(1, len(parents) + 1):
                    if pattern.match("/".join(parents[:j])):
                        match = True
                        break
            if match:
                matched = not pattern.exclusion
        return matched

    def root_ignored(self) -> bool:
        """BuildKit's ``copySourceRootIgnored``: some pattern (not an exception) excludes every root entry."""
        return any(not p.exclusion and p.text in ("*", "**", "**/*") for p in self._compiled)
