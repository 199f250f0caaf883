"""Shared helpers for the test suite: where things are, and running the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"


def conformance_dir() -> Path:
    """BuildKit's test data (PYBUILD_CONFORMANCE_DIR, default: the shared copy next to the repo)."""
    default = REPO.parent / "shared" / "conformance" / "buildkit"
    return Path(os.environ.get("PYBUILD_CONFORMANCE_DIR", default))


def run_cli(*args: str, input: bytes | None = None, cwd: str | Path | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``pybuild`` as a user would (a fresh interpreter), capturing text output."""
    full_env = dict(os.environ)
    full_env.pop("PYBUILD_DEBUG", None)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "builder.cli", *args], input=input, cwd=cwd or REPO,
                          env=full_env, capture_output=True, timeout=120)
