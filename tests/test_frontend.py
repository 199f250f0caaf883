"""``# syntax=``: pybuild is the docker/dockerfile 1.x frontend; other frontends are refused clearly."""

from __future__ import annotations

import pytest

from builder.dockerfile.frontend import BUILTIN, resolve_frontend
from builder.dockerfile.instructions import parse_dockerfile
from builder.errors import DockerfileError


@pytest.mark.parametrize("syntax, version, labs", [
    ("docker/dockerfile:1", "1", False),
    ("docker/dockerfile:1.7", "1.7", False),
    ("docker/dockerfile:1.14.1-labs", "1.14.1-labs", True),
    ("docker/dockerfile", "latest", False),
    ("docker.io/docker/dockerfile:1", "1", False),
    ("docker/dockerfile-upstream:master-labs", "master-labs", True),
    ("docker/dockerfile:1@sha256:" + "a" * 64, "1", False),
    ("docker/dockerfile:1.0-experimental", "1.0-experimental", False),
    ("docker/dockerfile:1 extra=args", "1", False),
])
def test_our_own_frontend_is_accepted_and_recorded(syntax, version, labs):
    frontend = resolve_frontend(syntax)
    assert (frontend.version, frontend.labs) == (version, labs)
    assert frontend.reference == syntax.split(" ")[0]


def test_no_directive_and_builtin():
    assert resolve_frontend(None) is BUILTIN
    assert resolve_frontend("dockerfile.v0").version == ""


@pytest.mark.parametrize("syntax", ["example.com/other:1", "docker/dockerfile:2", "tonistiigi/mylang",
                                    "docker/dockerfile:0.9", "Not A Ref"])
def test_other_frontends_are_refused(syntax):
    with pytest.raises(DockerfileError) as info:
        resolve_frontend(syntax, line=1)
    assert info.value.message.startswith('unsupported frontend "')
    assert info.value.span.line == 1


def test_buildkit_syntax_build_arg_overrides_the_directive():
    text = "# syntax=example.com/other:1\nFROM busybox\n"
    with pytest.raises(DockerfileError):
        parse_dockerfile(text)
    df = parse_dockerfile(text, build_args={"BUILDKIT_SYNTAX": "docker/dockerfile:1.7-labs"})
    assert df.syntax == "example.com/other:1"
    assert df.frontend.reference == "docker/dockerfile:1.7-labs" and df.frontend.labs


def test_directive_recorded_in_the_typed_dockerfile():
    df = parse_dockerfile("# syntax = docker/dockerfile:1\n# escape=`\nFROM busybox\n")
    assert df.syntax == "docker/dockerfile:1" and df.escape == "`"
    assert df.directives == (("syntax", "docker/dockerfile:1", 1), ("escape", "`", 2))
