"""The build-cache index: entries map cache keys to layers, keep them from GC, and can be pruned."""

from __future__ import annotations

import time

from cache import Store


def _layer(store: Store, content: bytes) -> str:
    info = store.put_blob(content)
    store.put_layer(info.digest, info.size, {"tar": info})
    return info.digest


def test_entries_round_trip_and_protect_their_layers(tmp_path):
    store = Store(tmp_path / "root")
    kept = _layer(store, b"kept layer" * 100)
    dropped = _layer(store, b"dropped layer" * 100)
    key_a = "sha256:" + "a" * 64
    key_b = "sha256:" + "b" * 64
    store.build_cache.put(key_a, kept, size=1000)
    store.build_cache.put(key_b, None)
    assert store.build_cache.get(key_a).diff_id == kept
    assert store.build_cache.get(key_b).diff_id is None
    assert store.build_cache.get("sha256:" + "c" * 64) is None
    store.gc()
    assert store.has_layer(kept) and store.has_blob(kept)
    assert not store.has_layer(dropped) and not store.has_blob(dropped)


def test_prune_by_age_and_budget_then_gc_reclaims(tmp_path):
    store = Store(tmp_path / "root")
    layers = [_layer(store, bytes([i]) * 4096) for i in range(3)]
    keys = ["sha256:" + str(i) * 64 for i in range(3)]
    for key, layer in zip(keys, layers):
        store.build_cache.put(key, layer, size=4096)
        time.sleep(0.01)
    dropped = store.build_cache.prune(keep_bytes=4096)
    assert [e.key for e in dropped] == keys[:2]
    store.gc()
    assert not store.has_layer(layers[0]) and store.has_layer(layers[2])
    assert store.build_cache.prune(older_than=time.time() + 1)[0].key == keys[2]
    assert store.build_cache.entries() == []
