"""The network of one build RUN step: its own namespace on the build bridge, NAT to the outside
(BuildKit's default with CNI).  ``--network host`` / ``none`` do not come here.

The build bridge belongs to the network namespace, not to a store root: every build in one namespace
(whatever its store) shares the bridge ``pybr-build`` and one address plan kept in
``/run/pybuild/netns-<namespace inode>/``; endpoints live only as long as their RUN (or their builder).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

RUN_BASE = Path("/run/pybuild")


def build_manager():
    """The manager of this network namespace's build bridge."""
    from .manager import BUILD_BRIDGE, BUILD_NETWORK, NetworkManager

    base = RUN_BASE / f"netns-{os.stat('/proc/thread-self/ns/net').st_ino}"
    return NetworkManager(base, run_dir=base, bridge_names={BUILD_NETWORK: BUILD_BRIDGE})


@contextmanager
def build_netns(store_root=None):
    """Yields the path of a fresh network namespace file for ``RunSpec.netns``; removed afterwards.
    (``store_root`` is accepted for symmetry; the build bridge is per network namespace.)"""
    manager = build_manager()
    endpoint = manager.attach_build()
    try:
        yield endpoint.netns
    finally:
        manager.detach_build(endpoint)


__all__ = ["build_netns", "build_manager"]
