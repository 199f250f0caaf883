"""Container networking with real veths, bridges and iptables, each test inside a network namespace of its
own (the host's links and rules are never touched): two stand-in containers on a user network talk TCP by
name through the hosts files pybuild writes, a published port answers on 127.0.0.1, NAT reaches an
"outside" namespace, and disconnect / sweep leave nothing behind (links, rules, namespace files)."""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from builder.runtime.network import Endpoint, NetworkError, NetworkManager, PortBinding, parse_publish
from builder.runtime.network.firewall import owners, parse_save

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(path_or_fd) -> None:
    fd = os.open(path_or_fd, os.O_RDONLY | os.O_CLOEXEC) if isinstance(path_or_fd, str) else path_or_fd
    try:
        assert _libc.setns(fd, CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
    finally:
        if isinstance(path_or_fd, str):
            os.close(fd)


@contextmanager
def own_netns():
    """This test process (and what it spawns) in a fresh network namespace with lo up; back home after."""
    name = f"pbtest-{os.getpid()}-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(f"/run/netns/{name}")
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            yield name
        finally:
            _setns(home)
    finally:
        os.close(home)
        subprocess.run(["ip", "netns", "del", name], check=True)


def leftovers(manager: NetworkManager, live=()) -> dict:
    """What of this store root's containers is still there: veths, tagged rules, namespace files, mounts.
    ``live``: container ids whose veths are expected (the others' may take a moment to go)."""
    expected = sorted(ep.veth for ep in manager.endpoints() if ep.container_id in live)
    deadline = time.monotonic() + 10
    while True:   # the kernel destroys an unmounted namespace (and its veth) asynchronously
        links = sorted(n for _, n in socket.if_nameindex() if n.startswith("pyv"))
        if links == expected or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    saved = parse_save(subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout)
    rules = sorted(o for o in owners(saved) if not o.startswith(f"{manager.tag}:net:"))
    files = sorted(os.listdir(manager.netns_dir)) if manager.netns_dir.is_dir() else []
    with open("/proc/self/mounts") as fh:
        mounts = [line.split()[1] for line in fh if str(manager.run_dir) in line.split()[1]]
    return {"links": links, "rules": rules, "netns": files, "mounts": mounts}


NOTHING = {"links": [], "rules": [], "netns": [], "mounts": []}


@pytest.fixture
def net(tmp_path):
    """(manager, tmp dir) inside a fresh network namespace; asserts that nothing is left afterwards."""
    with own_netns():
        manager = NetworkManager(tmp_path / "root", run_dir=tmp_path / "run")
        try:
            yield manager
        finally:
            for endpoint in manager.endpoints():
                manager.disconnect(endpoint.container_id)
            manager.sweep(set(), deep=True)
            left = leftovers(manager)
        assert left == NOTHING


def cid(n: int) -> str:
    return f"{n:x}".rjust(2, "0") * 32


def files_for(tmp_path: Path, name: str) -> dict:
    d = tmp_path / "ctr" / name
    d.mkdir(parents=True, exist_ok=True)
    return {"hosts_path": str(d / "hosts"), "resolv_path": str(d / "resolv.conf")}


def in_container(endpoint: Endpoint, code: str) -> subprocess.Popen:
    """A stand-in container: a Python process in the endpoint's namespace, its hosts file bind-mounted at
    /etc/hosts in a private mount namespace (as the sandbox does)."""
    script = (f"mount --bind {shlex.quote(endpoint.hosts_path)} /etc/hosts && "
              f"exec {sys.executable} -u -c {shlex.quote(code)}")
    return subprocess.Popen(["nsenter", f"--net={endpoint.netns}", "unshare", "-m", "sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


ECHO_SERVER = """
import socket
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 8000))
srv.listen()
print("ready", flush=True)
for _ in range(COUNT):
    conn, peer = srv.accept()
    data = conn.recv(100)
    conn.sendall(b"echo:" + data + b" from:" + peer[0].encode())
    conn.close()
"""

CLIENT = """
import socket
with socket.create_connection(("{host}", {port}), timeout=10) as s:
    s.sendall(b"{message}")
    print(s.recv(200).decode())
"""


PROBE = """
import socket
try:
    socket.create_connection(("{host}", {port}), timeout=2).close()
    print("connected")
except TimeoutError:
    print("timeout")
except OSError as err:
    print(err.strerror)
"""


def start_server(endpoint: Endpoint, count: int) -> subprocess.Popen:
    server = in_container(endpoint, ECHO_SERVER.replace("COUNT", str(count)))
    assert server.stdout.readline().strip() == "ready", server.stderr.read()
    return server


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out


# -- the must-show scenario --------------------------------------------------------------------------------


def test_two_containers_talk_by_name_and_a_published_port_answers_on_localhost(net, tmp_path):
    network = net.create("app")
    web = net.connect(cid(1), "app", name="web", aliases=("www",), hostname="webhost",
                      ports=parse_publish("127.0.0.1:18080:8000"), **files_for(tmp_path, "web"))
    server = start_server(web, count=3)
    try:
        # another user network cannot reach this one (docker's isolation between bridges): dropped, not refused
        net.create("other")
        stranger = net.connect(cid(11), "other", name="stranger", **files_for(tmp_path, "stranger"))
        assert finish(in_container(stranger, PROBE.format(host=web.ip, port=8000))) == "timeout\n"
        net.disconnect(cid(11))
        net.remove("other")
        cli = net.connect(cid(2), "app", name="cli", **files_for(tmp_path, "cli"))
        assert (web.network, cli.network) == ("app", "app")
        assert web.ip != cli.ip and web.gateway == cli.gateway == network.gateway
        # by name and by alias, through the hosts file written for the client
        assert finish(in_container(cli, CLIENT.format(host="web", port=8000, message="hi"))) \
            == f"echo:hi from:{cli.ip}\n"
        assert finish(in_container(cli, CLIENT.format(host="www", port=8000, message="alias"))) \
            == f"echo:alias from:{cli.ip}\n"
        # the running server's bind-mounted hosts file was rewritten in place: it knows its new peer
        seen = Path(f"/proc/{server.pid}/root/etc/hosts")
        deadline = time.monotonic() + 10
        while "cli" not in seen.read_text() and time.monotonic() < deadline:   # the child may still be in sh
            time.sleep(0.05)
        assert f"{cli.ip}\tcli {cid(2)[:12]}\n" in seen.read_text()
        # the published port, from the "host" (this namespace): 127.0.0.1 through DNAT + route_localnet
        with socket.create_connection(("127.0.0.1", 18080), timeout=10) as sock:
            sock.sendall(b"host")
            reply = sock.recv(200).decode()
        assert reply.startswith("echo:host from:")
        assert web.ports[0].host_ip == "127.0.0.1" and web.ports[0].host_port == 18080
        assert str(web.ports[0]) == "127.0.0.1:18080->8000/tcp"
        assert finish(server) == ""
    finally:
        server.kill()
        server.wait()
    web_hosts = Path(web.hosts_path).read_text()
    assert web_hosts.startswith("127.0.0.1\tlocalhost\n") and f"{web.ip}\twebhost\n" in web_hosts
    net.disconnect(cid(2))
    assert "cli" not in Path(web.hosts_path).read_text()          # peers' files follow disconnects
    net.disconnect(cid(1))
    net.disconnect(cid(1))                                        # idempotent
    assert leftovers(net) == NOTHING
    net.remove("app")
    assert network.bridge not in [n for _, n in socket.if_nameindex()]


def test_publish_all_picks_free_ports_on_every_address(net, tmp_path):
    web = net.connect(cid(3), "bridge", name="web", publish_all=True, exposed=("8000/tcp", "8000/udp"),
                      **files_for(tmp_path, "web"))
    tcp, udp = web.ports
    assert web.to_inspect()["Ports"] == {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(tcp.host_port)}],
                                         "8000/udp": [{"HostIp": "0.0.0.0", "HostPort": str(udp.host_port)}]}
    assert web.to_inspect()["IPAddress"] == web.ip and web.to_inspect()["Gateway"] == web.gateway
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert tcp.host_ip == "0.0.0.0" and low <= tcp.host_port <= high and udp.protocol == "udp"
    server = start_server(web, count=1)
    try:
        with socket.create_connection(("127.0.0.1", tcp.host_port), timeout=10) as sock:
            sock.sendall(b"x")
            assert sock.recv(100).startswith(b"echo:x")
        finish(server)
    finally:
        server.kill()
        server.wait()
    # a fixed port in use is refused with docker's text; the range form picks a free one in the range
    with pytest.raises(NetworkError, match=f"Bind for 0.0.0.0:{tcp.host_port} failed: port is already allocated"):
        net.connect(cid(4), "bridge", name="other", ports=parse_publish(f"{tcp.host_port}:80"),
                    **files_for(tmp_path, "other"))
    with pytest.raises(NetworkError, match="listen tcp4 10.9.9.9:8080: bind: cannot assign requested address"):
        net.connect(cid(4), "bridge", name="other", ports=parse_publish("10.9.9.9:8080:80"),
                    **files_for(tmp_path, "other"))
    with pytest.raises(NetworkError, match="publishing on an IPv6 address is not supported: ::1"):
        net.connect(cid(4), "bridge", name="other", ports=parse_publish("[::1]:8080:80"),
                    **files_for(tmp_path, "other"))
    other = net.connect(cid(4), "bridge", name="other", ports=parse_publish("20000-20010:80"),
                        **files_for(tmp_path, "other"))
    assert 20000 <= other.ports[0].host_port <= 20010
    # the default bridge has no name resolution (docker's behaviour): only the container's own entry
    hosts = Path(other.hosts_path).read_text()
    assert "web" not in hosts and hosts.endswith(f"{other.ip}\t{cid(4)[:12]}\n")
    # a rule removed by hand meanwhile: disconnect still removes the rest
    saved = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True).stdout
    mine = [line for line in saved.splitlines() if cid(3) in line]
    assert len(mine) == 2
    subprocess.run(["iptables", "-t", "nat", *shlex.split("-D" + mine[0][2:])], check=True)
    net.disconnect(cid(3))
    assert cid(3) not in subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    net.disconnect(cid(4))
    # a restart connects again at once, while the kernel may still be dropping the old veth
    again = net.connect(cid(4), "bridge", name="other", **files_for(tmp_path, "other"))
    assert again.veth != other.veth and again.ip != other.ip
    net.disconnect(cid(4))


def test_nat_to_the_outside(net, tmp_path):
    """An "outside" namespace behind this one's uplink sees the container's traffic masqueraded."""
    outside = f"pbout-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", outside], check=True)
    try:
        subprocess.run(["ip", "link", "add", "up0", "type", "veth", "peer", "name", "out0", "netns", outside],
                       check=True)
        subprocess.run(["ip", "-batch", "-"], input="addr add 198.51.100.2/24 dev up0\nlink set up0 up\n"
                       "route add default via 198.51.100.1\n", text=True, check=True)
        subprocess.run(["ip", "-n", outside, "-batch", "-"], input="addr add 198.51.100.1/24 dev out0\n"
                       "link set out0 up\nlink set lo up\n", text=True, check=True)
        server = subprocess.Popen(["ip", "netns", "exec", outside, sys.executable, "-u", "-c",
                                   ECHO_SERVER.replace("COUNT", "1")], stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready"
        ctr = net.connect(cid(5), "bridge", name="c", ports=parse_publish("18090:8000"), **files_for(tmp_path, "c"))
        assert finish(in_container(ctr, CLIENT.format(host="198.51.100.1", port=8000, message="out"))) \
            == "echo:out from:198.51.100.2\n"
        server.wait(timeout=10)
        # the other way: the outside reaches the published port on the host's uplink address (PREROUTING DNAT)
        inner = start_server(ctr, count=1)
        client = subprocess.run(["ip", "netns", "exec", outside, sys.executable, "-c",
                                 CLIENT.format(host="198.51.100.2", port=18090, message="in")],
                                capture_output=True, text=True, timeout=30)
        assert client.stdout == "echo:in from:198.51.100.1\n", client.stderr
        finish(inner)
        # hairpin: the container, and a neighbour, reach its published port through the host's address
        inner = start_server(ctr, count=2)
        assert finish(in_container(ctr, CLIENT.format(host="198.51.100.2", port=18090, message="hair"))) \
            == f"echo:hair from:{ctr.gateway}\n"
        neighbour = net.connect(cid(13), "bridge", name="n", **files_for(tmp_path, "n"))
        assert finish(in_container(neighbour, CLIENT.format(host="198.51.100.2", port=18090, message="nb"))) \
            == f"echo:nb from:{ctr.gateway}\n"
        finish(inner)
        net.disconnect(cid(13))
        # an --internal network has no way out
        net.create("closed", internal=True)
        shut = net.connect(cid(10), "closed", name="s", **files_for(tmp_path, "s"))
        assert finish(in_container(shut, PROBE.format(host="198.51.100.1", port=8000))) == "timeout\n"
        net.disconnect(cid(10))
        net.remove("closed")
        net.disconnect(cid(5))
    finally:
        subprocess.run(["ip", "link", "del", "up0"], capture_output=True)
        subprocess.run(["ip", "netns", "del", outside], check=True)


def test_sweep_releases_what_a_killed_monitor_left(net, tmp_path):
    """Nothing but the persisted files: a fresh manager (another process) cleans up."""
    net.create("app")
    # connected by another process (the CLI that started them), gone now
    script = f"""
from builder.runtime.network import NetworkManager, parse_publish
m = NetworkManager({str(net.root)!r}, run_dir={str(net.run_dir)!r})
m.connect({cid(6)!r}, "app", name="a", ports=parse_publish("18081:80"), **{files_for(tmp_path, "a")!r})
m.connect({cid(7)!r}, "app", name="b", **{files_for(tmp_path, "b")!r})
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    a = net.endpoint(cid(6))
    assert leftovers(net, live=(cid(6), cid(7)))["rules"] == [f"{net.tag}:{cid(6)}"]
    assert sorted(leftovers(net, live=(cid(6), cid(7)))["netns"]) == [cid(6), cid(7)]
    fresh = NetworkManager(net.root, run_dir=net.run_dir)
    assert fresh.sweep({cid(7)}) == [cid(6)]
    assert leftovers(fresh, live=(cid(7),)) == {"links": [fresh.endpoint(cid(7)).veth], "rules": [], "netns": [cid(7)],
                                "mounts": [str(net.netns_dir / cid(7))]}
    assert "\ta " not in Path(files_for(tmp_path, "b")["hosts_path"]).read_text()
    assert a.container_id not in json.dumps(fresh.inspect("app")["Containers"])
    # a namespace file nothing refers to (its JSON was lost) goes too
    from builder.runtime.network.system import create_netns

    create_netns(str(net.netns_dir / "orphan"))
    assert sorted(leftovers(fresh, live=(cid(7),))["netns"]) == [cid(7), "orphan"]
    assert fresh.sweep(set()) == [cid(7)]
    assert leftovers(fresh) == NOTHING
    fresh.remove("app")


def test_host_and_none_endpoints(net, tmp_path):
    from builder.sandbox.spec import HostEntry

    host = net.connect(cid(8), "host", hostname="h", extra_hosts=(HostEntry("db", "10.1.2.3"),),
                       **files_for(tmp_path, "h"))
    assert host.netns == "" and host.ip == ""
    text = Path(host.hosts_path).read_text()
    assert text.startswith(Path("/etc/hosts").read_text()) and text.endswith("10.1.2.3\tdb\n")
    none = net.connect(cid(9), "none", **files_for(tmp_path, "n"))
    assert none.netns == "" and Path(none.hosts_path).read_text().startswith("127.0.0.1\tlocalhost\n")
    assert "127.0.0" not in Path(none.resolv_path).read_text().replace("127.0.0.1\tlocalhost", "")
    net.disconnect(cid(8))
    net.disconnect(cid(9))
    assert net.endpoints() == []


# -- networks: records, address plans, errors (no kernel objects until a container connects) -------------


def test_network_records_and_docker_errors(tmp_path):
    manager = NetworkManager(tmp_path / "root", run_dir=tmp_path / "run")
    assert [n.name for n in manager.list()] == ["bridge", "host", "none"]
    app = manager.create("app", labels={"k": "v"})
    assert app.subnet and app.bridge.startswith("pybr-") and len(app.bridge) <= 15
    assert manager.get(app.id[:6]).name == "app" and manager.get(app.id).name == "app"
    with pytest.raises(NetworkError, match="network with name app already exists"):
        manager.create("app")
    with pytest.raises(NetworkError, match="Pool overlaps with other one on this address space"):
        manager.create("again", subnet=app.subnet)
    with pytest.raises(NetworkError, match="invalid CIDR address: nonsense"):
        manager.create("bad", subnet="nonsense")
    with pytest.raises(NetworkError, match="no matching subnet for gateway 10.9.9.9"):
        manager.create("bad", subnet="10.8.0.0/24", gateway="10.9.9.9")
    with pytest.raises(NetworkError, match="invalid network name"):
        manager.create("no spaces")
    fixed = manager.create("fixed", subnet="10.8.0.0/24", gateway="10.8.0.254")
    assert (fixed.subnet, fixed.gateway) == ("10.8.0.0/24", "10.8.0.254")
    with pytest.raises(NetworkError, match="bridge is a pre-defined network and cannot be removed"):
        manager.remove("bridge")
    with pytest.raises(NetworkError, match="network nope not found"):
        manager.get("nope")
    with manager.state.locked():
        build_net = manager._get("pybuild:build", build=True)               # the record only, no bridge yet
    for lookup in ("pybuild:build", build_net.id):                         # the builds' own, not a user's
        with pytest.raises(NetworkError, match=f"network {lookup} not found"):
            manager.remove(lookup)
    assert manager.inspect("app")["Labels"] == {"k": "v"}
    assert sorted(n.name for n in manager.prune()) == ["app", "fixed"]
    assert [n.name for n in manager.list()] == ["bridge", "host", "none"]


@pytest.mark.parametrize("spec, expected", [
    ("80", [PortBinding(80)]),
    ("8080:80", [PortBinding(80, "tcp", "", 8080)]),
    ("127.0.0.1:8080:80/udp", [PortBinding(80, "udp", "127.0.0.1", 8080)]),
    ("127.0.0.1::80", [PortBinding(80, "tcp", "127.0.0.1", 0)]),
    ("8000-8001:80-81", [PortBinding(80, "tcp", "", 8000), PortBinding(81, "tcp", "", 8001)]),
    ("8000-8010:80", [PortBinding(80, "tcp", "", 8000, 8010)]),
    ("[::1]:8080:80", [PortBinding(80, "tcp", "::1", 8080)]),
])
def test_parse_publish(spec, expected):
    assert list(parse_publish(spec)) == expected


@pytest.mark.parametrize("spec, message", [
    ("abc", "invalid containerPort: abc"),
    ("x:80", "invalid hostPort: x"),
    ("80/xyz", "invalid proto: xyz"),
    ("1.2.3:80:80", "invalid ip address: 1.2.3"),
    ("8000-8002:80-81", "invalid ranges specified for container and host Ports: 80-81 and 8000-8002"),
    ("70000", "invalid containerPort: 70000"),
])
def test_parse_publish_errors(spec, message):
    with pytest.raises(NetworkError, match=message):
        parse_publish(spec)


def test_sweep_spares_a_container_being_started_and_frees_a_killed_builders_run(net, tmp_path):
    # connected by this (live) process but not running yet: another command's sweep must not take it away
    net.connect(cid(12), "bridge", name="starting", **files_for(tmp_path, "starting"))
    assert net.sweep(set()) == [] and net.endpoint(cid(12)) is not None
    net.disconnect(cid(12))
    # a builder killed in the middle of a RUN: its endpoint goes at the next RUN's attach
    script = f"""
import os
from builder.runtime.network import NetworkManager
NetworkManager({str(net.root)!r}, run_dir={str(net.run_dir)!r}).attach_build()
os._exit(9)
"""
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    stale, = net.endpoints()
    assert stale.container_id.startswith("build-") and Path(stale.netns).exists()
    fresh = net.attach_build()
    assert [ep.container_id for ep in net.endpoints()] == [fresh.container_id]
    assert not Path(stale.netns).exists() and fresh.ip != stale.ip
    net.detach_build(fresh)
