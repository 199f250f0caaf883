"""The no-op rebuild memo: an identical rebuild is answered without the engine, and nothing stale is
ever answered (context changes, new wildcard matches, a moved base tag, a removed image)."""

from __future__ import annotations

import os

from image_fixtures import ok, pb
from test_build_engine import store, write_context  # noqa: F401  (store: fixture)

NOOP = "#0 CACHED (nothing changed since the last identical build)"
DOCKERFILE = "FROM busybox\nCOPY app.txt /app/\nCOPY conf/*.conf /conf/\nRUN cat /app/app.txt > /out.txt\n"


def _build(store, ctx, *args, env=None):
    result = pb(store, "build", "--progress", "plain", "-t", "memo:1", *args, str(ctx), env=env)
    ok(result)
    return result.stderr.decode()


def _image(stderr: str) -> str:
    return [line.split()[2] for line in stderr.splitlines() if line.startswith("writing image ")][-1]


def _context(tmp_path):
    ctx = write_context(tmp_path / "ctx", DOCKERFILE)
    (ctx / "app.txt").write_text("one\n")
    (ctx / "conf").mkdir()
    (ctx / "conf" / "a.conf").write_text("a\n")
    return ctx


def test_identical_rebuild_is_answered_from_the_memo(tmp_path, store):
    ctx = _context(tmp_path)
    first = _build(store, ctx)
    assert NOOP not in first
    second = _build(store, ctx)
    assert NOOP in second and _image(second) == _image(first)
    assert "#2 " not in second  # no step was even planned


def test_every_change_falls_back_to_a_real_build(tmp_path, store):
    ctx = _context(tmp_path)
    base = _image(_build(store, ctx))
    (ctx / "app.txt").write_text("two\n")                       # a COPY source changes
    changed = _build(store, ctx)
    assert NOOP not in changed and _image(changed) != base
    assert NOOP in _build(store, ctx)
    (ctx / "conf" / "b.conf").write_text("b\n")                 # a new wildcard match
    widened = _build(store, ctx)
    assert NOOP not in widened and "CACHED" in widened
    assert NOOP in _build(store, ctx)
    assert NOOP not in _build(store, ctx, "--build-arg", "X=1")  # another request
    ok(pb(store, "rmi", "memo:1"))                               # the image is gone
    assert NOOP not in _build(store, ctx)


def test_a_moved_base_tag_or_a_new_tag_is_not_answered_from_the_memo(tmp_path, store, busybox_tar):
    ctx = _context(tmp_path)
    _build(store, ctx)
    assert NOOP in _build(store, ctx)
    ok(pb(store, "import", str(busybox_tar), "busybox:latest", "--change", "ENV MOVED=1"))
    assert NOOP not in _build(store, ctx)
    result = pb(store, "build", "--progress", "plain", "-t", "memo:1", "-t", "memo:other", str(ctx))
    assert NOOP not in result.stderr.decode()  # a tag that must move goes through the store's locks
    ok(result)
    assert NOOP in _build(store, ctx, "-t", "memo:other")


def test_memo_is_off_with_debug_or_when_asked(tmp_path, store):
    ctx = _context(tmp_path)
    _build(store, ctx)
    assert NOOP not in _build(store, ctx, env={"PYBUILD_NO_MEMO": "1"})
    assert NOOP not in pb(store, "--debug", "build", "-t", "memo:1", str(ctx)).stderr.decode()
