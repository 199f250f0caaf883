"""The compiled seccomp program cache: keyed by the whole filter, only in a private directory."""

from __future__ import annotations

import os

from builder.sandbox import seccompcache
from builder.sandbox.caps import DEFAULT_MASK, cap_mask
from builder.sandbox.seccomp import build_filter


def test_round_trip_and_keys(tmp_path):
    cache = str(tmp_path / "c")
    default = build_filter(DEFAULT_MASK)
    admin = build_filter(DEFAULT_MASK | cap_mask(["CAP_SYS_ADMIN"]))
    assert seccompcache.key(default, "v1") != seccompcache.key(admin, "v1") != seccompcache.key(admin, "v2")
    assert seccompcache.load(default, "v1", cache) is None
    seccompcache.store(default, "v1", b"\x06\x00\x00\x00\x00\x00\xff\x7f", cache)
    assert seccompcache.load(default, "v1", cache) == b"\x06\x00\x00\x00\x00\x00\xff\x7f"
    assert seccompcache.load(admin, "v1", cache) is None
    assert oct(os.stat(cache).st_mode & 0o777) == "0o700"


def test_refuses_a_directory_others_may_write_and_torn_programs(tmp_path):
    cache = tmp_path / "shared"
    cache.mkdir()
    os.chmod(cache, 0o777)
    f = build_filter(DEFAULT_MASK)
    seccompcache.store(f, "v1", b"\0" * 8, str(cache))
    assert not list(cache.iterdir())                       # nothing written where others could swap it
    os.chmod(cache, 0o700)
    (cache / (seccompcache.key(f, "v1") + ".bpf")).write_bytes(b"\0" * 12)
    assert seccompcache.load(f, "v1", str(cache)) is None   # not a whole number of BPF instructions
