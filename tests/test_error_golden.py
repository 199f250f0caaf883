"""Golden tests: every Dockerfile error a user can meet, exactly as the CLI prints it.

Each ``tests/fixtures/errors/<case>.Dockerfile`` is run through ``pybuild parse --format json`` (the
whole front end); its stderr must equal ``<case>.expected`` byte for byte, the exit code must be 1,
and no traceback may show. Messages use BuildKit's wording (parser.go, instructions/parse.go,
bflag.go). Set PYBUILD_UPDATE_GOLDEN=1 to rewrite the expected files after a deliberate change,
then review the diff.
"""

from __future__ import annotations

import os

import pytest

from helpers import FIXTURES, run_cli

CASES = sorted(p.stem for p in (FIXTURES / "errors").glob("*.Dockerfile"))


@pytest.mark.parametrize("case", CASES)
def test_error_output_is_golden(case):
    dockerfile = FIXTURES / "errors" / f"{case}.Dockerfile"
    expected_file = FIXTURES / "errors" / f"{case}.expected"
    result = run_cli("parse", "--format", "json", "-f", f"tests/fixtures/errors/{case}.Dockerfile")
    stderr = result.stderr.decode()
    assert result.returncode == 1, (result.returncode, stderr)
    assert "Traceback" not in stderr
    assert result.stdout == b""
    if os.environ.get("PYBUILD_UPDATE_GOLDEN") == "1":
        expected_file.write_text(stderr)
    assert stderr == expected_file.read_text(), dockerfile


def test_every_golden_case_names_file_and_line():
    for case in CASES:
        text = (FIXTURES / "errors" / f"{case}.expected").read_text()
        assert text.startswith(f"error: tests/fixtures/errors/{case}.Dockerfile:"), case


def test_debug_flag_shows_traceback():
    result = run_cli("--debug", "parse", "-f", "tests/fixtures/errors/unknown-instruction.Dockerfile")
    assert result.returncode != 0
    assert b"Traceback" in result.stderr
    assert b"InstructionError: unknown instruction: RUNN (did you mean RUN?)" in result.stderr


def test_missing_dockerfile_is_a_clear_error():
    result = run_cli("parse", "-f", "no/such/Dockerfile")
    assert result.returncode == 1
    assert result.stderr.decode() == "error: cannot read Dockerfile no/such/Dockerfile: No such file or directory\n"
