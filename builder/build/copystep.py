"""One COPY or ADD instruction: its sources, in order, copied into the step's upper directory.

Sources are local paths of a tree (the build context, a named context, a stage or an image, see
``buildsources``), heredocs, and for ADD http(s) URLs and git repositories. The destination is
relative to WORKDIR; ``--chown`` names are looked up in the image's own /etc/passwd and /etc/group
(an unknown name gives 0, as BuildKit's file op does); ``--link`` writes the layer without looking
at the image below (destination directories are created 0755 in an empty tree, symlinks of the
image are not followed), which BuildKit skips when ``--chmod`` is given.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass

from . import gomatch
from .copyops import (
    TRANSFER,
    CopyError,
    CopyOptions,
    clean_source,
    copy_source,
    expand,
    not_found,
)
from .desttree import DestTree
from .sources import DirectoryTree, exists


def dest_path(dest: str, workdir: str) -> str:
    """BuildKit's ``pathRelativeToWorkingDir`` + ``cleanPath``: absolute, clean, trailing '/' kept."""
    slash = dest.endswith("/") or dest in ("", ".")
    joined = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest or ".")
    clean = posixpath.normpath("/" + joined)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    if slash and clean != "/":
        clean += "/"
    return clean


# ----------------------------------------------------------------------------------------------
# --chown


def _passwd_entry(text: str | None, name: str, field_count: int) -> list[str] | None:
    for line in (text or "").splitlines():
        fields = line.split(":")
        if len(fields) >= field_count and fields[0] == name and not line.startswith("#"):
            return fields
    return None


def _numeric(text: str) -> int | None:
    if text == "root":
        return 0
    if re.fullmatch(r"[+-]?[0-9]+", text):
        value = int(text)
        if -(1 << 31) <= value < (1 << 31):
            return value & 0xFFFFFFFF
    return None


def resolve_chown(chown: str, read_text) -> tuple[int, int]:
    """``user[:group]`` as BuildKit's ``readUser``: ids used as given (a bare id is also the gid), a
    user name gives its passwd uid and gid, a group name its gid; names not found give 0."""
    user, sep, group = chown.partition(":")
    uid = gid = 0
    number = _numeric(user)
    if number is not None:
        uid = gid = number
    else:
        entry = _passwd_entry(read_text("etc/passwd"), user, 4)
        if entry is not None:
            uid, gid = _numeric(entry[2]) or 0, _numeric(entry[3]) or 0
    if sep:
        number = _numeric(group)
        if number is not None:
            gid = number
        else:
            entry = _passwd_entry(read_text("etc/group"), group, 3)
            if entry is not None:
                gid = _numeric(entry[2]) or 0
    return uid, gid


# ----------------------------------------------------------------------------------------------
# patterns for --exclude and --parents (Docker's patternmatcher: '**', parent matches, '!')


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern
    negate: bool


class PathPatterns:
    """Docker-style path patterns: a path matches when it or one of its parents matches; the last
    matching pattern decides, ``!pattern`` re-includes."""

    def __init__(self, patterns):
        self.patterns = []
        for text in patterns:
            negate = text.startswith("!")
            body = posixpath.normpath(text[1:] if negate else text).lstrip("/")
            if body in ("", "."):
                continue
            self.patterns.append(_Pattern(re.compile(_pattern_regex(body), re.DOTALL), negate))
        self.has_exceptions = any(p.negate for p in self.patterns)

    def matches(self, rel: str) -> bool:
        parts = rel.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts))]
        result = False
        for pattern in self.patterns:
            hit = pattern.regex.fullmatch(rel) is not None or any(
                pattern.regex.fullmatch(prefix) is not None for prefix in prefixes)
            if hit:
                result = not pattern.negate
        return result


def _pattern_regex(pattern: str) -> str:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                if body.startswith("^"):
                    body = "^" + body[1:].replace("\\", "\\\\")
                else:
                    body = body.replace("\\", "\\\\")
                out.append(f"(?!/)[{body}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


# ----------------------------------------------------------------------------------------------
# the step


@dataclass
class CopyStep:
    """What a COPY/ADD needs from the executor."""

    instruction: object
    lowers: tuple
    upper: str
    workdir: str
    tree_for: object                 # name -> SourceTree ("" = the build context)
    staging: object                  # () -> a fresh empty directory in the store (removed by release)
    release: object                  # (directory) -> None


def run_copy(step: CopyStep) -> None:
    from . import addsources
    from .chmodspec import ChmodError, parse_chmod

    instruction = step.instruction
    is_add = type(instruction).__name__ == "AddInstruction"
    try:
        chmod = parse_chmod(instruction.chmod)
    except ChmodError as err:
        raise CopyError(err.message) from None
    link = bool(getattr(instruction, "link", False)) and not instruction.chmod
    image = DestTree(step.upper, step.lowers)
    dest = DestTree(step.upper, ()) if link else image
    chown = resolve_chown(instruction.chown, image.read_text) if instruction.chown else None
    target = dest_path(instruction.dest, step.workdir)
    excludes = PathPatterns(instruction.excludes) if getattr(instruction, "excludes", ()) else None
    checksum = getattr(instruction, "checksum", "") or ""
    unpack_flag = getattr(instruction, "unpack", None)
    parents = bool(getattr(instruction, "parents", False))
    if checksum:
        if not is_add:
            raise CopyError("checksum can't be specified for COPY")
        if len(instruction.sources) != 1:
            raise CopyError("checksum can't be specified for multiple sources")
    report = TRANSFER.get()

    def options(**more) -> CopyOptions:
        return CopyOptions(chown=chown, chmod=chmod, exclude=excludes, **more)

    for source in instruction.sources:
        git = addsources.parse_git(source)
        if git is not None:
            if not is_add:
                raise CopyError("source can't be a git ref for COPY")
            keep = instruction.keep_git_dir if instruction.keep_git_dir is not None else git.keep_git_dir
            if checksum and git.checksum and checksum != git.checksum:
                raise CopyError(f'checksum mismatch "{checksum}" != "{git.checksum}"')
            if checksum:
                git = type(git)(git.remote, git.ref, git.subdir, git.keep_git_dir, checksum)
            commit = addsources.resolve_commit(git)
            work = step.staging()
            try:
                repo = os.path.join(work, "repo")
                subdir = addsources.checkout(git, commit, repo, keep_git_dir=bool(keep))
                tree = DirectoryTree(repo, description=f"git repository {git.remote}", owners="reset")
                root = clean_source(subdir)
                if root and not exists(tree, root):
                    raise CopyError(f"subdir {subdir!r} not found in {git.remote}")
                copy_source(tree, root, dest, target, options())
            finally:
                step.release(work)
            continue
        if source.startswith(("http://", "https://")):
            if not is_add:
                raise CopyError("source can't be a URL for COPY")
            addsources.check_checksum_syntax(checksum)
            work = step.staging()
            try:
                path, _ = addsources.download(source, work, checksum=checksum, report=report)
                tree = DirectoryTree(work, description=source, owners="reset")
                name = os.path.basename(path)
                if unpack_flag and addsources.is_archive(path):
                    _extract_into(step, path, dest, target, chown)
                else:
                    copy_source(tree, name, dest, target, options(dir_contents=False, follow=False))
            finally:
                step.release(work)
            continue
        tree = step.tree_for(getattr(instruction, "from_", "") or "")
        if parents:
            _copy_parents(tree, source, dest, target, options)
            continue
        matches = expand(tree, source)
        if not matches and not gomatch.has_wildcards(clean_source(source)):
            raise not_found(clean_source(source))
        unpack = is_add if unpack_flag is None else unpack_flag
        for match in matches:
            if unpack and _archive_in(tree, match):
                from .copyops import follow_source

                real, _ = follow_source(tree, match)
                _extract_into(step, tree.host_path(real), dest, target, chown)
                continue
            copy_source(tree, match, dest, target, options())
    contents = getattr(instruction, "contents", ())
    if contents:
        work = step.staging()
        try:
            tree = DirectoryTree(work, description="inline document", owners="reset")
            for content in contents:
                name = content.path.lstrip("/")
                path = os.path.join(work, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as fh:
                    fh.write(content.data.encode("utf-8", "surrogateescape"))
                os.chmod(path, 0o644)
                copy_source(tree, name, dest, target, options(dir_contents=False, follow=False))
        finally:
            step.release(work)


def _archive_in(tree, match: str) -> bool:
    from .addsources import is_archive
    from .copyops import follow_source

    try:
        real, st = follow_source(tree, match)
    except CopyError:
        return False
    return stat.S_ISREG(st.st_mode) and is_archive(tree.host_path(real))


def _extract_into(step: CopyStep, archive: str, dest, target: str, chown) -> None:
    """An archive's contents into the destination directory (created 0755), owners as in the tar
    unless --chown."""
    from .addsources import extract

    work = step.staging()
    try:
        extract(archive, work)
        tree = DirectoryTree(work, description="archive", owners="keep")
        directory = target if target.endswith("/") else target + "/"
        copy_source(tree, "", dest, directory, CopyOptions(chown=chown))
    finally:
        step.release(work)


def _copy_parents(tree, source: str, dest, target: str, options) -> None:
    """``COPY --parents``: the source path (after a ``/./`` pivot, if any) kept below the destination."""
    parent, pivot, pattern = source.partition("/./")
    if not pivot:
        parent, pattern = "/", source
    pattern = posixpath.normpath("/" + pattern).lstrip("/")
    base = clean_source(parent)
    if not gomatch.has_wildcards(parent) and not gomatch.has_wildcards(pattern):
        required = posixpath.join(base, pattern) if base else pattern
        if not exists(tree, required):
            raise not_found(required)
    include = PathPatterns([pattern]) if pattern else None
    copy_source(tree, base, dest, target, options(include=include))
