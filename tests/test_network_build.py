"""The network of build RUN steps (BuildKit's defaults): each RUN gets a namespace of its own with an eth0
on the build bridge and NAT to the outside; ``--network host`` (flag or RUN option) needs
``--allow network.host``; ``--network none`` has only lo.  Builds run in the test's own network
namespace, with an "outside" namespace behind its uplink serving HTTP."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.runtime.network import build_manager
from image_fixtures import fails, ok
from test_build_engine import build, new_store, write_context
from test_network import NOTHING, leftovers, own_netns


@pytest.fixture
def world(tmp_path):
    """(store root, outside URL): this process in its own namespace, whose default route leads to an
    "outside" namespace running an HTTP server at 198.51.100.1:8000."""
    outside = f"pbout-{secrets.token_hex(3)}"
    www = tmp_path / "www"
    www.mkdir()
    (www / "hello.txt").write_text("hello from outside\n")
    with own_netns():
        subprocess.run(["ip", "netns", "add", outside], check=True)
        server = None
        try:
            subprocess.run(["ip", "link", "add", "up0", "type", "veth", "peer", "name", "out0", "netns", outside],
                           check=True)
            subprocess.run(["ip", "-batch", "-"], input="addr add 198.51.100.2/24 dev up0\nlink set up0 up\n"
                           "route add default via 198.51.100.1\n", text=True, check=True)
            subprocess.run(["ip", "-n", outside, "-batch", "-"], input="addr add 198.51.100.1/24 dev out0\n"
                           "link set out0 up\nlink set lo up\n", text=True, check=True)
            server = subprocess.Popen(["ip", "netns", "exec", outside, sys.executable, "-m", "http.server", "-b",
                                       "198.51.100.1", "-d", str(www), "8000"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("198.51.100.1", 8000), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "the outside server did not start"
                    time.sleep(0.05)
            manager = build_manager()
            try:
                yield tmp_path / "root", "http://198.51.100.1:8000"
                assert leftovers(manager) == NOTHING
            finally:
                shutil.rmtree(manager.run_dir, ignore_errors=True)
        finally:
            if server is not None:
                server.kill()
                server.wait()
            subprocess.run(["ip", "netns", "del", outside], check=True)


def test_run_steps_get_their_own_network_with_nat(world, tmp_path, busybox_tar):
    root, url = world
    new_store(root, busybox_tar)
    assert not build_manager().endpoints()
    ctx = write_context(tmp_path / "ctx", "FROM busybox\n"
                        "RUN ls /sys/class/net > /ifaces && ip -4 -o addr show eth0 > /addr && "
                        f"wget -q -O /fetched {url}/hello.txt\n"
                        "RUN --network=none ls /sys/class/net > /none\n")
    out = tmp_path / "out"
    ok(build(root, ctx, "-o", f"type=local,dest={out}"))
    assert (out / "ifaces").read_text().split() == ["eth0", "lo"]
    address = (out / "addr").read_text().split()[3]
    assert not address.startswith("198.51.100.")                       # the build bridge's subnet, not the uplink
    assert (out / "fetched").read_text() == "hello from outside\n"      # through NAT
    assert (out / "none").read_text().split() == ["lo"]


def test_network_host_needs_the_entitlement(world, tmp_path, busybox_tar):
    root, _ = world
    new_store(root, busybox_tar)
    ctx = write_context(tmp_path / "ctx", "FROM busybox\nRUN ls /sys/class/net > /ifaces\n")
    message = fails(build(root, ctx, "--network", "host"))
    assert "network.host is not allowed" in message and "Dockerfile:2" in message
    out = tmp_path / "out"
    ok(build(root, ctx, "--network", "host", "--allow", "network.host", "-o", f"type=local,dest={out}"))
    assert "up0" in (out / "ifaces").read_text().split()               # the host's (this namespace's) links
    ok(build(root, ctx, "--network", "none", "-o", f"type=local,dest={tmp_path / 'none'}", "--no-cache"))
    assert (tmp_path / "none" / "ifaces").read_text().split() == ["lo"]
    run_host = write_context(tmp_path / "ctx2", "FROM busybox\nRUN --network=host true\n")
    assert "network.host is not allowed" in fails(build(root, run_host))


def test_build_network_setup_is_fast(world):
    """Not a timed assertion: prints the cost of one RUN's network (namespace + veth + address + route)."""
    manager = build_manager()
    manager.detach_build(manager.attach_build())            # the bridge is made once
    times = []
    for _ in range(10):
        start = time.perf_counter()
        endpoint = manager.attach_build()
        middle = time.perf_counter()
        manager.detach_build(endpoint)
        times.append((middle - start, time.perf_counter() - middle))
    attach = sorted(t[0] for t in times)[5] * 1000
    detach = sorted(t[1] for t in times)[5] * 1000
    print(f"\nbuild RUN network: attach {attach:.1f} ms, release {detach:.1f} ms (median of 10)")
    assert not Path(endpoint.netns).exists()
    assert endpoint.bridge == "pybr-build" and endpoint.gateway == "10.10.0.1"   # BuildKit's CNI bridge subnet
