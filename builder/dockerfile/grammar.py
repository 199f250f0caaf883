"""Loads grammar/dockerfile.lark once per process, from Lark's on-disk cache when possible.

Building the LALR tables takes ~15 ms; Lark can pickle them, so later processes load them in a few
ms. The cache file lives in the user's cache directory and is keyed (by Lark) on the grammar text
and options, so an edited grammar never loads stale tables.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

GRAMMAR_PATH = Path(__file__).resolve().parents[2] / "grammar" / "dockerfile.lark"


def _cache_file() -> str | bool:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "pybuild")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return True  # Lark's default: a file in the temp directory
    return os.path.join(directory, "dockerfile-grammar.lark-cache")


@cache
def dockerfile_parser():
    """The Lark LALR parser for Dockerfile structure (tokens come from the pre-pass)."""
    from lark import Lark

    from .syntax import PrepassLexer, SyntaxBuilder

    return Lark(
        GRAMMAR_PATH.read_text(encoding="utf-8"),
        parser="lalr",
        lexer=PrepassLexer,
        transformer=SyntaxBuilder(),
        cache=_cache_file(),
        propagate_positions=False,
        maybe_placeholders=False,
    )
