"""The parse cache: typed Dockerfiles pickled under <root>/cache/parse/, keyed by content and code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.build import parsecache
from builder.dockerfile.instructions import parse_dockerfile
from builder.errors import DockerfileError

REPO = Path(__file__).resolve().parents[1]
HELLO = (REPO / "examples" / "hello" / "Dockerfile").read_bytes()


def same(a, b) -> bool:
    """Two typed Dockerfiles are the same parse (instructions compare without their nodes, so the
    syntax trees are compared too)."""
    return (a.stages == b.stages and a.meta_args == b.meta_args and a.directives == b.directives
            and a.escape == b.escape and a.frontend == b.frontend and a.syntax == b.syntax
            and a.tree.nodes == b.tree.nodes and a.tree.source_lines == b.tree.source_lines
            and a.filename == b.filename)


def entries(root: Path) -> list[str]:
    directory = Path(parsecache.cache_dir(root))
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_miss_then_hit(tmp_path):
    first = parsecache.parse_cached(HELLO, root=tmp_path)
    key = parsecache.cache_key(HELLO)
    assert entries(tmp_path) == [f"{key}.pickle"]             # no temp file left behind
    second = parsecache.parse_cached(HELLO, root=tmp_path)
    assert second is not first and same(second, first) and same(second, parse_dockerfile(HELLO))


def test_hit_takes_the_callers_filename(tmp_path):
    parsecache.parse_cached(HELLO, root=tmp_path, filename="one/Dockerfile")
    again = parsecache.parse_cached(HELLO, root=tmp_path, filename="two/Dockerfile")
    assert again.filename == again.tree.filename == "two/Dockerfile"
    assert len(entries(tmp_path)) == 1


def test_key_follows_bytes_and_the_syntax_build_arg():
    key = parsecache.cache_key(HELLO)
    assert parsecache.cache_key(HELLO + b"\n") != key
    assert parsecache.cache_key(HELLO, {"OTHER": "x"}) == key
    assert parsecache.cache_key(HELLO, {"BUILDKIT_SYNTAX": "docker/dockerfile:1.7"}) != key
    assert len(key) == 64


def test_key_follows_the_code(tmp_path, monkeypatch):
    key = parsecache.cache_key(HELLO)
    grammar = tmp_path / "dockerfile.lark"
    grammar.write_bytes(Path(parsecache._GRAMMAR).read_bytes() + b"\n// changed\n")
    monkeypatch.setattr(parsecache, "_GRAMMAR", str(grammar))
    monkeypatch.setattr(parsecache, "_fingerprint", None)
    assert parsecache.cache_key(HELLO) != key
    monkeypatch.setattr(parsecache, "_fingerprint", None)
    monkeypatch.setattr("builder.__version__", "99.0")
    grammar.write_bytes(Path(parsecache._GRAMMAR).read_bytes())
    assert parsecache.cache_key(HELLO) != key


def test_unreadable_entry_is_a_miss_and_is_replaced(tmp_path):
    parsecache.parse_cached(HELLO, root=tmp_path)
    path = Path(parsecache.cache_dir(tmp_path)) / f"{parsecache.cache_key(HELLO)}.pickle"
    path.write_bytes(path.read_bytes()[:100])
    assert parsecache.load(tmp_path, parsecache.cache_key(HELLO)) is None
    assert same(parsecache.parse_cached(HELLO, root=tmp_path), parse_dockerfile(HELLO))
    assert parsecache.load(tmp_path, parsecache.cache_key(HELLO)) is not None


def test_parse_errors_are_not_cached(tmp_path):
    with pytest.raises(DockerfileError):
        parsecache.parse_cached(b"FROM busybox\nNOPE x\n", root=tmp_path)
    assert entries(tmp_path) == []


def test_unwritable_cache_still_parses(tmp_path):
    blocker = tmp_path / "root"
    blocker.write_text("not a directory")
    assert same(parsecache.parse_cached(HELLO, root=blocker), parse_dockerfile(HELLO))


_CHILD = """
import json, sys, time
from builder.build.parsecache import parse_cached
t = time.perf_counter()
df = parse_cached(open(sys.argv[1], "rb").read(), root=sys.argv[2], filename=sys.argv[1])
ms = (time.perf_counter() - t) * 1000
print(json.dumps({"lark": sorted(m for m in sys.modules if m == "lark" or m.startswith("lark.")),
                  "grammar": "builder.dockerfile.grammar" in sys.modules, "stages": len(df.stages), "ms": ms}))
"""


def _child(root: Path) -> dict:
    path = str(REPO / "examples" / "hello" / "Dockerfile")
    out = subprocess.run([sys.executable, "-c", _CHILD, path, str(root)], capture_output=True, check=True,
                         timeout=120, cwd=REPO, env=dict(os.environ)).stdout
    return json.loads(out)


def test_loading_a_cached_parse_does_not_import_lark(tmp_path):
    miss = _child(tmp_path)          # a fresh interpreter that parses: Lark is loaded
    assert miss["lark"] and miss["grammar"]
    hit = _child(tmp_path)           # a fresh interpreter that finds the pickle: no Lark at all
    assert hit["lark"] == [] and not hit["grammar"] and hit["stages"] == miss["stages"] == 1
