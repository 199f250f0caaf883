"""BuildKit's own word-expansion case files, run against builder.dockerfile.expand.

The files come from BuildKit's ``frontend/dockerfile/shell`` directory and are read exactly the
way ``lex_test.go`` reads them (TestShellParser4EnvVars, TestShellParser4Words).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.dockerfile.expand import ShellLexer
from builder.errors import ExpansionError

_REPO = Path(__file__).resolve().parents[1]
CASE_DIR = Path(os.environ.get("PYBUILD_CONFORMANCE_DIR",
                               _REPO.parent / "shared" / "conformance" / "buildkit"))
SHELL_DIR = CASE_DIR / "frontend" / "dockerfile" / "shell"

# Go's strings.TrimSpace / unicode.IsSpace (Python's strip() also removes U+001C..U+001F).
_GO_SPACE = ("\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
             + "\u2028\u2029\u202f\u205f\u3000")

# lex_test.go: EnvsFromSlice([]string{"PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="})
ENV_VAR_TEST_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _lines(name: str) -> list[str] | None:
    path = SHELL_DIR / name
    if not path.is_file():
        return None
    # bufio.ScanLines: split on \n, drop one trailing \r.
    text = path.read_bytes().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _missing(name: str, arity: int):
    """A case that fails: the case files are part of the suite, not optional."""
    return pytest.param(*([None] * arity), id=f"{name}-missing")


def _require(source) -> None:
    if source is None:
        pytest.fail(f"BuildKit case file not found under {SHELL_DIR} (set PYBUILD_CONFORMANCE_DIR)")


def _env_var_cases():
    lines = _lines("envVarTest")
    if lines is None:
        return [_missing("envVarTest", 2)]
    cases = []
    for lineno, line in enumerate(lines, 1):
        if line.startswith("#"):
            continue
        line = line.strip(_GO_SPACE)
        if not line:
            continue
        fields = line.split("|")
        assert len(fields) == 3, f"envVarTest line {lineno}: {line!r}"
        platform, source, expected = (f.strip(_GO_SPACE) for f in fields)
        assert platform in ("W", "A", "U"), f"envVarTest line {lineno}: bad platform {platform!r}"
        if platform == "W":
            continue  # Windows-only (case-insensitive env): not a platform pybuild builds for
        cases.append(pytest.param(source, expected, id=f"envVarTest:L{lineno}:{platform}"))
    return cases


def _words_cases():
    lines = _lines("wordsTest")
    if lines is None:
        return [_missing("wordsTest", 3)]
    cases = []
    env: dict[str, str] = {}
    for lineno, line in enumerate(lines, 1):
        if line.startswith("#"):
            continue
        if line.startswith("ENV "):
            key, _, value = line[3:].lstrip(" ").partition("=")
            env[key] = value
            continue
        fields = line.split("|")
        assert len(fields) == 2, f"wordsTest line {lineno}: should be exactly one | in {line!r}"
        source = fields[0].strip(_GO_SPACE)
        expected = fields[1].lstrip(" ").split(",")
        cases.append(pytest.param(source, expected, dict(env), id=f"wordsTest:L{lineno}"))
    return cases


@pytest.mark.parametrize("source,expected", _env_var_cases())
def test_env_var_case(source, expected):
    _require(source)
    lexer = ShellLexer("\\")
    if expected == "error":
        with pytest.raises(ExpansionError):
            lexer.process_word(source, ENV_VAR_TEST_ENV)
    else:
        assert lexer.process_word(source, ENV_VAR_TEST_ENV) == expected


@pytest.mark.parametrize("source,expected,env", _words_cases())
def test_words_case(source, expected, env):
    _require(source)
    # lex_test.go also declares a RawQuotes+SkipUnsetEnv pass, but it re-scans the already
    # exhausted file and so runs no case; only the plain lexer is checked, as in BuildKit.
    lexer = ShellLexer("\\")
    try:
        result = lexer.process_words(source, env)
    except ExpansionError:
        result = ["error"]
    assert result == expected
