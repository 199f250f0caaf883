"""BuildKit's own parser test data, run through our parser layer.

``$PYBUILD_CONFORMANCE_DIR/frontend/dockerfile/parser/`` (default: ``../shared/conformance/buildkit``
next to the repository) holds, verbatim from ``moby/buildkit``:

* ``testfiles/<case>/{Dockerfile,result}``: ``result`` is ``Node.Dump()`` of the parsed file plus a
  newline per instruction (BuildKit's ``TestParseCases``); ours must match byte for byte.
* ``testfiles-negative/<case>/Dockerfile``: must fail (``TestParseErrorCases``); we also pin BuildKit's
  message and where the error points.
* ``testfile-line/Dockerfile``: instruction start/end lines (``TestParseIncludesLineNumbers``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.dockerfile.dump import dump_tree
from builder.dockerfile.syntax import parse_bytes
from builder.errors import DockerfileError

_DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "conformance" / "buildkit"
CONFORMANCE = Path(os.environ.get("PYBUILD_CONFORMANCE_DIR", _DEFAULT))
PARSER_DIR = CONFORMANCE / "frontend" / "dockerfile" / "parser"


def _cases(sub: str) -> list[str]:
    directory = PARSER_DIR / sub
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if (p / "Dockerfile").is_file())


POSITIVE = _cases("testfiles")
NEGATIVE = _cases("testfiles-negative")

needs_data = pytest.mark.skipif(not POSITIVE, reason=f"BuildKit parser test data not found in {PARSER_DIR}")


@needs_data
def test_the_whole_set_is_there():
    assert len(POSITIVE) == 33
    assert NEGATIVE == ["empty_dockerfile", "env_no_value", "only_comments", "shykes-nested-json"]


@needs_data
@pytest.mark.parametrize("case", POSITIVE)
def test_dump_matches_buildkit(case):
    directory = PARSER_DIR / "testfiles" / case
    tree = parse_bytes((directory / "Dockerfile").read_bytes())
    expected = (directory / "result").read_bytes()
    assert dump_tree(tree).encode("utf-8", "surrogateescape") == expected


@needs_data
@pytest.mark.parametrize("case", POSITIVE)
def test_line_numbers_are_ordered_and_inside_the_file(case):
    data = (PARSER_DIR / "testfiles" / case / "Dockerfile").read_bytes()
    tree = parse_bytes(data)
    n_lines = len(data.split(b"\n")) - (1 if data.endswith(b"\n") else 0)
    previous_end = 0
    for node in tree.nodes:
        assert previous_end < node.start_line <= node.end_line <= n_lines
        previous_end = node.end_line


NEGATIVE_EXPECTED = {
    # case: (message, line the error points at)
    "empty_dockerfile": ("file with no instructions", 1),
    "only_comments": ("file with no instructions", 3),
    "env_no_value": ("ENV must have two arguments", 3),
    "shykes-nested-json": ("when using JSON array syntax, arrays must be comprised of strings only", 1),
}


@needs_data
@pytest.mark.parametrize("case", NEGATIVE)
def test_negative_cases_fail_like_buildkit(case):
    data = (PARSER_DIR / "testfiles-negative" / case / "Dockerfile").read_bytes()
    with pytest.raises(DockerfileError) as info:
        parse_bytes(data)
    message, line = NEGATIVE_EXPECTED[case]
    assert info.value.message == message
    assert info.value.span is not None
    assert info.value.span.line == line


@needs_data
def test_line_numbers_like_buildkit():
    tree = parse_bytes((PARSER_DIR / "testfile-line" / "Dockerfile").read_bytes())
    assert [(n.start_line, n.end_line) for n in tree.nodes] == [(5, 5), (11, 12), (17, 31)]
    assert [n.keyword for n in tree.nodes] == ["from", "env", "run"]
    # the escape directive on line 1 is upper-case and still a directive
    assert [(d.name, d.value, d.line) for d in tree.directives] == [("escape", "\\", 1)]
    # the RUN has empty lines inside its continuation: BuildKit warns (NoEmptyContinuation)
    assert [line for _, line in tree.warnings] == [31]
