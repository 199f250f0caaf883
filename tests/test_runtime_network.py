"""Container networking through the CLI, each test in a network namespace of its own (so the host's
links and iptables are never touched): user networks with names, published ports on 127.0.0.1, -P,
NAT-less isolation with --network none, and cleanup after rm and after a killed monitor."""

from __future__ import annotations

import json
import os
import signal
import socket

import pytest

from builder.runtime.network import NetworkManager
from runtime_helpers import cli, cli_ok, state, wait_for, cleanup_root
from test_network import NOTHING, leftovers, own_netns


@pytest.fixture
def world(tmp_path, busybox_tar):
    """(store root) with busybox imported, this test inside its own network namespace."""
    root = tmp_path / "root"
    cli_ok(root, "import", str(busybox_tar), "busybox:latest", "--change", 'CMD ["sh"]')
    with own_netns():
        try:
            yield root
        finally:
            cleanup_root(root)
            manager = NetworkManager(root)
            for network in manager.list():
                if not network.builtin:
                    manager.remove(network.name)
            left = leftovers(manager)
            manager.sweep(set())
        assert left == NOTHING


def _get(port: int, path: str = "/") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _wait_port(port: int) -> None:
    def answers():
        try:
            return b"200 OK" in _get(port)
        except OSError:
            return False

    wait_for(answers, timeout=15, what=f"127.0.0.1:{port}")


HTTPD = ("sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www")


def test_two_containers_on_a_user_network_talk_tcp_by_name(world):
    root = world
    cli_ok(root, "network", "create", "appnet")
    cli_ok(root, "run", "-d", "--network", "appnet", "--name", "server", "busybox", "sh", "-c",
           "echo hello-from-server | nc -l -p 7000 > /got; cat /got; sleep 1000")
    out = cli_ok(root, "run", "--rm", "--network", "appnet", "--name", "client", "busybox", "sh", "-c",
                 "until echo hello-from-client | nc server 7000 2>/dev/null; do sleep 0.1; done; "   # until it listens
                 "grep server /etc/hosts", timeout=60)
    assert out.startswith("hello-from-server\n"), out
    wait_for(lambda: "hello-from-client" in cli_ok(root, "logs", "server"), what="the server's log")
    server = json.loads(cli_ok(root, "inspect", "server"))[0]
    ip = server["NetworkSettings"]["Networks"]["appnet"]["IPAddress"]
    assert ip and ip in out
    # the default bridge has no names (docker's behaviour)
    assert "server" not in cli_ok(root, "run", "--rm", "busybox", "cat", "/etc/hosts")
    rc = cli(root, "run", "--rm", "--network", "none", "busybox", "sh", "-c", f"nc -w 1 {ip} 7000 </dev/null")
    assert rc.returncode != 0                                  # --network none: no way out
    cli_ok(root, "rm", "-f", "server")
    assert cli_ok(root, "network", "rm", "appnet") == "appnet\n"
    gone = cli(root, "run", "--rm", "--network", "appnet", "busybox", "true")
    assert gone.returncode == 1 and "network appnet not found" in gone.stderr.decode()
    assert cli_ok(root, "ps", "-a", "-q") == ""                # nothing created


def test_published_ports_answer_on_localhost(world):
    root = world
    cid = cli_ok(root, "run", "-d", "-p", "18080:80", "--name", "web", "busybox", *HTTPD).strip()
    _wait_port(18080)
    assert _get(18080).endswith(cid[:12].encode() + b"\n")
    assert "127.0.0.1:18080->80/tcp" in cli_ok(root, "ps") or "0.0.0.0:18080->80/tcp" in cli_ok(root, "ps")
    # -P: every exposed port gets a free host port
    cli_ok(root, "run", "-d", "-P", "--expose", "80", "--name", "web2", "busybox", *HTTPD)
    ports = json.loads(cli_ok(root, "inspect", "-f", "{{json .NetworkSettings.Ports}}", "web2"))
    host_port = int(ports["80/tcp"][0]["HostPort"])
    _wait_port(host_port)
    cli_ok(root, "rm", "-f", "web", "web2")
    with pytest.raises(OSError):
        _get(18080)


def test_killed_monitor_leaves_no_veth_rule_or_netns_after_the_next_command(world):
    root = world
    cid = cli_ok(root, "run", "-d", "-p", "18081:80", "busybox", *HTTPD).strip()
    _wait_port(18081)
    manager = NetworkManager(root)
    assert leftovers(manager, live=[cid]) != NOTHING
    os.kill(state(root, cid)["monitor_pid"], signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{state(root, cid)['pid']}"), what="the container to die")
    assert "Exited (137)" in cli_ok(root, "ps", "-a")         # the next command cleans up
    assert leftovers(manager) == NOTHING
    cli_ok(root, "rm", cid)
