"""``pybuild builder prune``: build-cache entries and cache-mount directories go, as docker's
``builder prune`` reports it; what an image still uses stays unless ``-a``; ``--filter until=`` and
``--keep-storage`` keep the recent and the affordable; a cache mount in use is never removed."""

from __future__ import annotations

import os
import re

from image_fixtures import fails, ok, pb
from test_build_engine import build, new_store, step_states, write_context

DOCKERFILE = """\
FROM busybox
RUN echo kept > /kept
RUN --mount=type=cache,target=/c echo x >> /c/n; wc -l < /c/n > /count
"""


def _prune(root, *args: str) -> tuple[list[str], str]:
    out = ok(pb(root, "builder", "prune", "-f", *args))
    match = re.fullmatch(r"(?:Deleted build cache objects:\n((?:[0-9a-f]{64}(?::\d+)?\n)+)\n)?"
                         r"Total reclaimed space: ([0-9.]+[kMGT]?B)\n", out)
    assert match, out
    return (match.group(1) or "").split(), match.group(2)


def test_builder_prune(tmp_path, busybox_tar):
    root = new_store(tmp_path / "root", busybox_tar)
    ctx = write_context(tmp_path / "ctx", DOCKERFILE)
    ok(build(root, ctx, "-t", "p:1"))
    assert ok(pb(root, "run", "--rm", "--network", "none", "p:1", "cat", "/count")) == "1\n"
    # recent cache is kept by --filter until=1h and by a big enough --keep-storage
    assert _prune(root, "--filter", "until=1h") == ([], "0B")
    assert _prune(root, "--keep-storage", "10gb") == ([], "0B")
    # dangling: the cache mount and the entry whose layer no image uses ... but not what p:1 uses
    deleted, reclaimed = _prune(root)
    assert len([d for d in deleted if ":" in d]) == 1, deleted          # the cache mount directory
    assert reclaimed != "0B"
    assert not list((root / "cachemounts").glob("*/0"))
    states = step_states(build(root, ctx, "--progress", "plain").stderr.decode())
    assert list(states.values()) == ["CACHED", "CACHED"], states         # p:1 still uses both layers
    # -a: everything not in use; the RUNs run again, the cache directory starts empty
    deleted, _ = _prune(root, "-a")
    assert len(deleted) >= 2
    states = step_states(build(root, ctx, "-t", "p:2", "--progress", "plain").stderr.decode())
    assert list(states.values()) == ["DONE", "DONE"], states
    assert ok(pb(root, "run", "--rm", "--network", "none", "p:2", "cat", "/count")) == "1\n"
    # images gone: their layers are reclaimed too
    ok(pb(root, "rmi", "p:1", "p:2"))
    deleted, reclaimed = _prune(root, "-a")
    assert deleted and reclaimed != "0B"
    assert _prune(root, "-a") == ([], "0B")


def test_a_cache_mount_in_use_is_not_pruned(tmp_path, busybox_tar):
    from cache import Store

    root = new_store(tmp_path / "root", busybox_tar)
    ok(build(root, write_context(tmp_path / "ctx", DOCKERFILE)))
    mounts = Store(root).cache_mounts
    with mounts.acquire("/c", "shared") as held:
        deleted, _ = _prune(root, "-a")
        assert not any(":" in d for d in deleted) and os.path.isdir(held)
    deleted, _ = _prune(root, "-a")
    assert len([d for d in deleted if ":" in d]) == 1


def test_builder_prune_bad_flags(tmp_path, busybox_tar):
    root = new_store(tmp_path / "root", busybox_tar)
    assert "only until=DURATION" in fails(pb(root, "builder", "prune", "-f", "--filter", "type=regular"))
    assert "invalid duration" in fails(pb(root, "builder", "prune", "-f", "--filter", "until=soon"))
    assert "--keep-storage" in fails(pb(root, "builder", "prune", "-f", "--keep-storage", "lots"))
