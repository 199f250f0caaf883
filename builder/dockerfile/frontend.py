"""The ``# syntax=`` directive: which Dockerfile frontend a file asks for.

BuildKit pulls the frontend image a ``# syntax=`` line names and runs it. pybuild *is* the
docker/dockerfile 1.x frontend, so any reference to it (``docker/dockerfile:1``, ``:1.7-labs``,
``docker.io/docker/dockerfile-upstream:master``, a digest) is accepted and recorded; a reference to
any other frontend cannot be honoured and is a clear error. The ``BUILDKIT_SYNTAX`` build-arg
overrides the directive, as in BuildKit (``dockerfile.v0`` names the built-in frontend).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import DockerfileError, Span

_OUR_REPOSITORIES = ("docker/dockerfile", "docker/dockerfile-upstream")
_REF = re.compile(r"(?:(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)/)?"
                  r"(?P<repo>[a-z0-9._/-]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?\Z")
_VERSION = re.compile(r"(?P<major>[0-9]+)(?:\.[0-9]+){0,2}(?P<suffix>-.*)?\Z")


@dataclass(frozen=True, slots=True)
class Frontend:
    """The frontend a Dockerfile asked for (``reference`` is None when it did not ask)."""

    reference: str | None
    version: str          # the tag ("latest" when none; "" for the built-in dockerfile.v0)
    labs: bool            # a -labs frontend: labs-only features (RUN --device) are allowed


BUILTIN = Frontend(None, "", False)


def resolve_frontend(syntax: str | None, line: int = 0, build_args: dict | None = None) -> Frontend:
    """Check that the requested frontend is one pybuild implements (docker/dockerfile 1.x)."""
    override = (build_args or {}).get("BUILDKIT_SYNTAX")
    if override:
        syntax, line = override, 0
    if not syntax:
        return BUILTIN
    reference = syntax.split(" ", 1)[0].strip()
    if reference == "dockerfile.v0":
        return Frontend(reference, "", False)
    m = _REF.match(reference)
    repo = m.group("repo") if m else ""
    if repo.startswith("library/"):
        repo = repo[len("library/"):]
    if not m or repo not in _OUR_REPOSITORIES:
        raise _unsupported(reference, line, "pybuild is the docker/dockerfile 1.x frontend itself and cannot run other frontends")
    tag = m.group("tag") or "latest"
    labs = "labs" in tag
    if tag not in ("latest", "labs", "master", "master-labs", "mainline", "mainline-labs"):
        version = _VERSION.match(tag)
        if version is None or version.group("major") != "1":
            raise _unsupported(reference, line, "pybuild implements the docker/dockerfile 1.x syntax")
    return Frontend(reference, tag, labs)


def _unsupported(reference: str, line: int, why: str) -> DockerfileError:
    span = Span(line, 0) if line else None
    return DockerfileError(f'unsupported frontend "{reference}": {why}', span)
