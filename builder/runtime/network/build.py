"""The network of one build RUN step: its own namespace on the build bridge, NAT to the outside
(BuildKit's default with CNI).  ``--network host`` / ``none`` do not come here."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def build_netns(store_root, *, run_dir=None):
    """Yields the path of a fresh network namespace file for ``RunSpec.netns``; removed afterwards."""
    from .manager import NetworkManager

    manager = NetworkManager(store_root, run_dir=run_dir)
    endpoint = manager.attach_build()
    try:
        yield endpoint.netns
    finally:
        manager.detach_build(endpoint)


__all__ = ["build_netns"]
