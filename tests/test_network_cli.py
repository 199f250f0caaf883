"""``pybuild network create/ls/rm/inspect/prune``: docker's output and error texts (records only: no kernel
objects exist until a container connects, so these run in the test's own network namespace anyway)."""

from __future__ import annotations

import json

import pytest

from image_fixtures import ok, pb
from test_network import own_netns


@pytest.fixture
def root(tmp_path):
    with own_netns():
        yield tmp_path / "root"


def test_create_ls_inspect_rm(root):
    network_id = ok(pb(root, "network", "create", "--label", "team=a", "app")).strip()
    assert len(network_id) == 64
    table = ok(pb(root, "network", "ls")).splitlines()
    assert table[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [line.split()[1:] for line in table[1:]] == [["app", "bridge", "local"], ["bridge", "bridge", "local"],
                                                        ["host", "host", "local"], ["none", "null", "local"]]
    assert table[1].split()[0] == network_id[:12]
    assert ok(pb(root, "network", "ls", "-q", "--filter", "name=app")) == network_id[:12] + "\n"
    assert ok(pb(root, "network", "ls", "-q", "--no-trunc", "-f", "type=custom")) == network_id + "\n"
    assert ok(pb(root, "network", "ls", "--format", "{{.Name}} {{.Driver}}", "-f", "driver=null")) == "none null\n"
    doc, = json.loads(ok(pb(root, "network", "inspect", "app")))
    assert (doc["Name"], doc["Id"], doc["Driver"], doc["Scope"], doc["Labels"]) == \
        ("app", network_id, "bridge", "local", {"team": "a"})
    assert doc["IPAM"]["Config"][0]["Subnet"] and doc["Containers"] == {}
    assert ok(pb(root, "network", "inspect", "-f", "{{.Name}}", network_id[:8])) == "app\n"
    result = pb(root, "network", "rm", "app", "nope")
    assert result.returncode == 1
    assert result.stdout.decode() == "app\n" and "error: No such network: nope" in result.stderr.decode()
    result = pb(root, "network", "rm", "bridge")
    assert result.returncode == 1
    assert "bridge is a pre-defined network and cannot be removed" in result.stderr.decode()


def test_create_errors_and_prune(root):
    ok(pb(root, "network", "create", "--subnet", "10.77.0.0/24", "--gateway", "10.77.0.254", "a"))
    doc, = json.loads(ok(pb(root, "network", "inspect", "a")))
    assert doc["IPAM"]["Config"] == [{"Subnet": "10.77.0.0/24", "Gateway": "10.77.0.254"}]
    result = pb(root, "network", "create", "--subnet", "10.77.0.0/25", "b")
    assert result.returncode == 1
    assert result.stderr.decode() == "error: Pool overlaps with other one on this address space\n"
    result = pb(root, "network", "create", "a")
    assert result.stderr.decode() == "error: network with name a already exists\n"
    ok(pb(root, "network", "create", "c"))
    assert ok(pb(root, "network", "prune", "-f")) == "Deleted Networks:\na\nc\n"
    assert ok(pb(root, "network", "prune", "-f")) == ""
    assert ok(pb(root, "network", "ls", "-q", "-f", "type=custom")) == ""
