"""The ``pybuild parse`` and ``pybuild check`` commands as a user runs them."""

from __future__ import annotations

import json

import pytest

from helpers import REPO, conformance_dir, run_cli

TESTFILES = conformance_dir() / "frontend" / "dockerfile" / "parser" / "testfiles"
CASES = sorted(p.name for p in TESTFILES.iterdir() if (p / "result").exists())


def test_there_are_33_buildkit_cases():
    assert len(CASES) == 33


@pytest.mark.parametrize("case", CASES)
def test_parse_buildkit_format_matches_buildkit(case):
    result = run_cli("parse", "--format", "buildkit", "-f", str(TESTFILES / case / "Dockerfile"))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == (TESTFILES / case / "result").read_bytes()


def test_parse_buildkit_format_accepts_what_only_the_instruction_layer_rejects():
    # BuildKit's parser testfiles include unknown instructions; the parser layer accepts them.
    result = run_cli("parse", "--format", "buildkit", "-f", "-", input=b"FROM x\nFOO bar\n")
    assert result.returncode == 0
    assert result.stdout == b'(from "x")\n(foo "")\n'
    typed = run_cli("parse", "--format", "json", "-f", "-", input=b"FROM x\nFOO bar\n")
    assert typed.returncode == 1
    assert b"unknown instruction: FOO" in typed.stderr


def test_parse_json_schema_of_the_example():
    result = run_cli("parse", "-f", "examples/hello/Dockerfile")
    assert result.returncode == 0, result.stderr.decode()
    doc = json.loads(result.stdout)
    assert doc["syntax"] == "docker/dockerfile:1"
    assert doc["escape"] == "\\"
    assert [d["name"] for d in doc["directives"]] == ["syntax"]
    assert doc["meta_args"][0]["args"] == [{"key": "VERSION", "value": "1.0", "doc": "the release to label the image with"}]
    (stage,) = doc["stages"]
    assert stage["name"] == "base" and stage["base_name"] == "busybox" and stage["index"] == 0
    kinds = [i["instruction"] for i in stage["instructions"]]
    assert kinds == ["ARG", "LABEL", "WORKDIR", "COPY", "ENV", "RUN", "EXPOSE", "HEALTHCHECK", "USER", "CMD"]
    copy = stage["instructions"][3]
    (content,) = copy["contents"]
    assert content["path"] == "EOF" and content["expand"] is False and content["data"].startswith("#!/bin/sh\n")
    assert copy["chmod"] == "755" and copy["dest"] == "/app/hello.sh" and copy["line"] == 10 and copy["end_line"] == 13
    env = stage["instructions"][4]
    assert env["pairs"] == [{"key": "GREETING", "value": '"hello world"', "legacy": False},
                            {"key": "VERSION", "value": "$VERSION", "legacy": False},
                            {"key": "PATH", "value": "/app:$PATH", "legacy": False}]
    run = stage["instructions"][5]
    assert run["mounts"] == [] and run["prepend_shell"] is True
    health = stage["instructions"][7]
    assert health["test"] == ["CMD", "/app/hello.sh"]
    assert health["interval"] == 30_000_000_000 and health["timeout"] == 3_000_000_000


def test_parse_reads_stdin():
    result = run_cli("parse", "--format", "buildkit", "-f", "-", input=b"FROM busybox\nRUN echo hi\n")
    assert result.returncode == 0
    assert result.stdout == b'(from "busybox")\n(run "echo hi")\n'


def test_line_longer_than_buildkit_allows_is_rejected(tmp_path):
    path = tmp_path / "Dockerfile"
    path.write_bytes(b"FROM busybox\nRUN echo " + b"x" * 70000 + b"\n")
    result = run_cli("parse", "-f", str(path))
    assert result.returncode == 1
    assert b"Dockerfile:2: dockerfile line greater than max allowed size of 65535" in result.stderr
    assert b"Traceback" not in result.stderr


def test_default_dockerfile_is_read_from_the_current_directory(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    result = run_cli("parse", "--format", "buildkit", cwd=tmp_path,
                     env={"PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b'(from "scratch")\n'


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith(b"pybuild, version ")
