""".dockerignore rules against Docker's matcher (moby/patternmatcher, walked as fsutil walks a
context for BuildKit): single patterns, several patterns with exceptions, how the file is read,
which directories a walk may skip, and bad patterns."""

from __future__ import annotations

import os

import pytest

from builder.buildcontext.ignore import IgnoreFileError, IgnoreRules, go_clean


def rules(*patterns: str) -> IgnoreRules:
    """Rules as read from a .dockerignore holding these lines."""
    return IgnoreRules.parse("\n".join(patterns))


# (pattern, path, excluded?) — one pattern against one path, as patternmatcher answers
SINGLE = [
    # "**" in every position
    ("**", "file", True), ("**", "dir/file", True), ("**/", "file", True), ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True), ("dir/**", "dir/dir2/file", True), ("dir/**", "dir", False),
    ("**/dir", "dir", True), ("**/dir", "dir/file", True), ("**/dir", "a/b/dir/c", True),
    ("**/dir2/*", "dir/dir2/file", True), ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "file", True), ("**file", "dir/file", True), ("**file", "dir/xfile", True),
    ("**/file", "dir/dir/file", True), ("**/file", "dir/xfile", False),
    ("**/file*", "dir/dir/file.txt", True), ("**/file*txt", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True), ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True), ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True), ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False), ("a/*.txt", "a/file.txt", True), ("a/*.txt**", "a/file.txt", True),
    ("**/foo/bar", "foo/bar", True), ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False), ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True), ("**/.foo", "bar.foo", False),
    # anchoring at the root: no basename matching as in .gitignore
    ("foo", "foo", True), ("foo", "a/foo", False), ("foo", "foo/bar", True), ("/foo", "foo/bar", True),
    ("./foo", "foo", True), ("foo/", "foo/x", True), ("a/../foo", "foo", True), ("*.go", "a/b.go", False),
    # single-component wildcards and classes (Go's filepath.Match)
    ("*", "abc", True), ("*c", "abc", True), ("a*", "ab/c", True), ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False), ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True), ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True), ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True), ("ab[b-d]", "abc", True), ("ab[e-g]", "abc", False), ("ab[^c]", "abc", False),
    ("ab[^e-g]", "abc", True), ("a[b-d]e", "ace", True), ("a[b-d]e", "aae", False), ("a[^b-d]e", "aze", True),
    ("a\\*b", "a*b", True), ("a\\*b", "ab", False), ("a?b", "a\u263ab", True), ("a[^a]b", "a\u263ab", True),
    ("a???b", "a\u263ab", False), ("[a-\u03b6]*", "\u03b1", True), ("*[a-\u03b6]", "A", False),
    ("a?b", "a/b", False), ("a*b", "a/b", False), ("[\\]a]", "]", True), ("[\\-]", "-", True),
    ("[x\\-]", "-", True), ("[x\\-]", "z", False), ("[\\-x]", "x", True), ("*x", "xxx", True),
    (".*", ".foo", True), (".*", "foo", False), ("abc.def", "abcdef", False), ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False), ("a\\\\", "a\\", True),
    # regex metacharacters are plain characters
    ("a(b)c/def", "a(b)c/def", True), ("a(b)c/def", "a(b)c/xyz", False), ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("name", "name\n", False),
]


@pytest.mark.parametrize("pattern,path,excluded", SINGLE)
def test_single_pattern(pattern, path, excluded):
    assert rules(pattern).matches(path) is excluded
    assert rules(pattern).matches_or_parent_matches(path) is excluded


# (patterns, path, excluded?) — the last matching pattern wins; a matched directory covers its tree
MULTI = [
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["docs", "!docs/README.md"], "docs/other.md", True),
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["ba*", "Dockerfile", "!bay", ".dockerignore"], "bay", False),
    (["ba*", "Dockerfile", "!bay", ".dockerignore"], "baz", True),
    (["ba*", "Dockerfile", "!bay", ".dockerignore"], "Dockerfile", True),
    (["ba*", "Dockerfile", "!bay", ".dockerignore"], ".dockerignore", True),
    (["a", "!a/b", "a/b/c"], "a/b/c", True),
    (["a", "!a/b", "a/b/c"], "a/b/d", False),
    (["*", "!src", "src/*.tmp"], "src/x.tmp", True),
    (["*", "!src", "src/*.tmp"], "src/deep/x.tmp", False),
    ([".git", ".env", "node_modules"], ".git/objects/ab/cdef", True),
    ([".git", ".env", "node_modules"], ".gitignore", False),
    (["**/*.pyc", "!keep/**"], "keep/a/b.pyc", False),
]


@pytest.mark.parametrize("patterns,path,excluded", MULTI)
def test_several_patterns(patterns, path, excluded):
    assert rules(*patterns).matches(path) is excluded


def test_the_walk_and_the_check_differ_where_moby_s_matchers_do():
    """A pattern never evaluated for a parent (it could not change the answer there) is not inherited
    by the walk; MatchesOrParentMatches tries every parent again."""
    r = rules("a/b", "!a")
    assert r.matches("a/b") is True          # the walk: "!a" was skipped for "a", not carried to "a/b"
    assert r.matches_or_parent_matches("a/b") is False


def test_reading_the_file():
    text = ("\ufeff# a comment\n"
            "  # not a comment: a pattern\n"
            "\n"
            "   node_modules   \n"
            "/abs/path\r\n"
            "! spaced \n"
            "./dot/../cleaned//\n"
            "!/rooted\n")
    r = IgnoreRules.parse(text.encode())
    assert r.patterns == ("# not a comment: a pattern", "node_modules", "abs/path", "!spaced", "cleaned",
                          "!rooted")
    assert r.matches("node_modules/x") and r.matches("abs/path") and r.matches("cleaned/y")
    assert not r.matches("spaced") and not r.matches("abs")
    assert not IgnoreRules.parse("") and not IgnoreRules.parse("# only\n\n")


def test_root_and_odd_paths():
    r = rules("*")
    assert not r.matches("") and not r.matches(".") and not r.matches("/")
    assert r.matches("./x") and r.matches("/x/") and r.matches("x//y")
    assert not rules("a/../b").matches("a")


@pytest.mark.parametrize("pattern", ["[", "[^", "[^bc", "a[", "[]a]", "[-]", "[x-]", "[-x]", "[a-b-c]", "\\",
                                     "[Local-Only]", "!"])
def test_bad_patterns_are_errors(pattern):
    with pytest.raises(IgnoreFileError) as info:
        IgnoreRules.parse(pattern + "\n", source="ctx/.dockerignore")
    assert str(info.value).startswith("failed to parse ctx/.dockerignore: ")
    if pattern == "!":
        assert str(info.value).endswith('illegal exclusion pattern: "!"')


def test_prunable_follows_fsutil():
    plain = rules(".git", "node_modules", "*.log")
    assert plain.prunable(".git") and plain.prunable(".git/objects") and plain.prunable("node_modules")
    assert not plain.prunable("src") and not plain.prunable("")
    # a literal exception below: the directory must be walked
    keep = rules("docs", "!docs/README.md")
    assert not keep.prunable("docs") and keep.matches("docs") and not keep.matches("docs/README.md")
    # an exception elsewhere does not stop pruning
    other = rules("build", "!src/keep")
    assert other.prunable("build") and not other.prunable("src")
    # a wildcard in an exception: fsutil never prunes
    wild = rules("build", "!**/keep")
    assert not wild.prunable("build") and not wild.matches("build/x/keep")
    # "dir/*" and "dir/**" exceptions count as their literal directory
    star = rules("*", "!src/*")
    assert not star.prunable("src") and star.prunable("docs")


def _walk(root: str, r: IgnoreRules) -> set[str]:
    """What a BuildKit context transfer sends, the way fsutil walks: excluded paths left out, excluded
    directories sent only as parents of included paths, prunable directories never listed."""
    seen: set[str] = set()

    def visit(rel: str) -> bool:
        any_included = False
        for name in sorted(os.listdir(os.path.join(root, rel))):
            child = f"{rel}/{name}" if rel else name
            is_dir = os.path.isdir(os.path.join(root, child)) and not os.path.islink(os.path.join(root, child))
            if is_dir and r.prunable(child):
                continue
            included = not r.matches(child)
            below = visit(child) if is_dir else False
            if included or below:
                seen.add(child)
                any_included = True
        return any_included

    visit("")
    return seen


def test_a_walk_of_a_context(tmp_path):
    for rel in ["Dockerfile", ".env", ".git/HEAD", ".git/objects/ab/cd", "src/app.py", "src/app.pyc",
                "docs/README.md", "docs/guide.md", "node_modules/x/index.js", "keep/node_modules/y"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    r = IgnoreRules.parse(".git\n.env\n**/*.pyc\nnode_modules\ndocs\n!docs/README.md\n")
    assert _walk(str(tmp_path), r) == {"Dockerfile", "src", "src/app.py", "docs", "docs/README.md", "keep",
                                      "keep/node_modules", "keep/node_modules/y"}


def test_go_clean():
    assert [go_clean(p) for p in ["", "a//b/", "./a/../b", "/../x", "../../x", "a/..", "/"]] == \
        [".", "a/b", "b", "/x", "../../x", ".", "/"]
