"""Property tests of the parser layer: whatever the input, it fails only with a located DockerfileError.

Inputs: random text over a Dockerfile-flavoured alphabet, random token soups, random bytes, and real
Dockerfiles (BuildKit's parser testfiles) mutated by inserting, deleting and duplicating characters and
lines and by injecting escapes, backticks, quotes, ``<<``, ``[``, ``#``, ``--``, Unicode, ``\\r`` and
BOMs. Properties: ``parse_text``/``parse_bytes`` either return a tree that dumps, or raise a
``DockerfileError`` (nothing else) whose span starts and ends on a line of the file (1 for an empty
file), with a non-empty message.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.dockerfile.dump import dump_tree
from builder.dockerfile.syntax import parse_bytes, parse_text
from builder.errors import DockerfileError

_DEFAULT = Path(__file__).resolve().parent.parent.parent / "shared" / "conformance" / "buildkit"
CONFORMANCE = Path(os.environ.get("PYBUILD_CONFORMANCE_DIR", _DEFAULT))
TESTFILES = CONFORMANCE / "frontend" / "dockerfile" / "parser" / "testfiles"
REAL = ([(d / "Dockerfile").read_text(encoding="utf-8") for d in sorted(TESTFILES.iterdir())]
        if TESTFILES.is_dir() else ["FROM busybox\nRUN echo hi \\\n  there\nCMD [\"sh\"]\n"])

SETTINGS = settings(max_examples=int(os.environ.get("PYBUILD_PROPERTY_EXAMPLES", "600")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

CHARS = list("abcXYZ019 =-_./:$") + ["\\", "`", "'", '"', "<", "[", "]", "{", "}", ",", "#", "\n", "\r", "\t",
                                     "\v", "\f", "\ufeff", "é", "日", "😀", "\u00a0", "\u3000", "\u0085", "\x00"]
TOKENS = ["FROM ", "RUN ", "COPY ", "ADD ", "ENV ", "LABEL ", "ARG ", "CMD ", "ENTRYPOINT ", "SHELL ", "VOLUME ",
          "HEALTHCHECK ", "ONBUILD ", "EXPOSE ", "USER ", "WORKDIR ", "STOPSIGNAL ", "MAINTAINER ", "FOO ",
          "CMD ", "NONE", "# escape=`\n", "# escape=\\\n", "# syntax=x\n", "# check=skip=all\n", "#", "\n",
          "\r\n", "\\\n", "`\n", "\\ \n", "\\\\\n", "<<EOF", "<<-EOF", "<<'EOF'", '<<"E"', "3<<X", "EOF\n",
          "\tEOF\n", "X\n", "E\n", '["a", "b"]', "[", "]", '"', "'", "--from=a ", "--mount=type=cache ",
          "-- ", "--", "a=b ", "k v ", "=", "${a:-b}", "$x", " ", "\t", "é", "\u00a0", "\ufeff", "[1]",
          '["a",]', "{}", "\\", "`"]


def count_lines(text: str) -> int:
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def check(text: str):
    try:
        tree = parse_text(text)
    except DockerfileError as err:
        check_error(err, count_lines(text))
        return
    dump_tree(tree)
    n = max(count_lines(text), 1)
    for node in tree.nodes:
        assert 1 <= node.start_line <= node.end_line <= n


def check_error(err: DockerfileError, n_lines: int):
    assert err.message
    assert err.span is not None, f"no location: {err.message!r}"
    top = max(n_lines, 1)
    assert 1 <= err.span.line <= err.span.end_line <= top, (err.message, err.span, n_lines)


@SETTINGS
@given(st.text(alphabet=st.sampled_from(CHARS), max_size=200))
def test_random_text(text):
    check(text)


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS) | st.text(alphabet=st.sampled_from(CHARS), max_size=4), max_size=40)
       .map("".join))
def test_token_soup(text):
    check(text)


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes(data):
    try:
        tree = parse_bytes(data)
    except DockerfileError as err:
        n = data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)
        check_error(err, n)
        return
    dump_tree(tree)


INJECT = ["\\", "`", "'", '"', "<<", "<<EOF\n", "<<-EOF\n", "[", "]", "#", "--", "\n", "\r", "\ufeff", "é",
          "\u00a0", "\u3000", "😀", "\\\n", "`\n", "\\ \n", "# escape=`\n", "EOF\n", "\t", '["a"]', "=", "\x00"]


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(REAL))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 5))
        pos = draw(st.integers(0, len(text)))
        lines = text.split("\n")
        if op == 0:
            text = text[:pos] + draw(st.sampled_from(INJECT)) + text[pos:]
        elif op == 1:
            size = draw(st.integers(1, 5))
            text = text[:pos] + text[pos + size:]
        elif op == 2:
            text = text[:pos] + text[pos:pos + 1] * draw(st.integers(2, 4)) + text[pos + 1:]
        elif op == 3:
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(draw(st.integers(0, len(lines))), lines[i])
            text = "\n".join(lines)
        elif op == 4 and len(lines) > 1:
            del lines[draw(st.integers(0, len(lines) - 1))]
            text = "\n".join(lines)
        else:
            text = text[:pos] + draw(st.text(alphabet=st.sampled_from(CHARS), min_size=1, max_size=6)) + text[pos:]
    return text


@SETTINGS
@given(mutated())
def test_mutated_real_dockerfiles(text):
    check(text)


def test_known_edges():
    for text in ("", "\n", "\ufeff", "\\", "`", "#", "\r", "\x00", "RUN <<EOF", "RUN <<EOF\n", "ENV a",
                 "CMD [1]", "# escape=x", "# syntax=a\n# syntax=b", "RUN \\", "\\\n\\\n", "ONBUILD ONBUILD",
                 "HEALTHCHECK \u00e0 x", "HEALTHCHECK CMD\u00a0x", "RUN <<'EOF", "COPY <<EOF <<EOF2 /\nEOF\n",
                 "RUN " + "x" * 70000, "FROM a\n" + "#" * 70000 + "\n"):
        check(text)
