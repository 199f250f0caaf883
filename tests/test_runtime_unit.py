"""Pure parts of the runtime: flag parsing, restart policies, durations, filters, ps texts, capabilities."""

from __future__ import annotations

import pytest

from builder.runtime.createspec import parse_ports
from builder.runtime.durations import parse_duration
from builder.runtime.errors import ContainerError
from builder.runtime.fastrun import parse
from builder.runtime.filecmds import split_cp_arg
from builder.runtime.records import ContainerState, PortSpec, RestartPolicy
from builder.runtime.views import command_text, status_text
from builder.sandbox.caps import DEFAULT_MASK, cap_mask, capability_set


def test_fast_parser_knows_the_usual_flags_and_leaves_the_rest_to_the_cli():
    glob, kw = parse(["--root", "/r", "run", "--rm", "-it", "-e", "A=1", "--env=B=2", "--network", "none", "-p",
                      "80:8080", "--pids-limit", "5", "busybox", "sh", "-c", "echo -x"])
    assert glob == {"root": "/r", "debug": False}
    assert kw["rm"] and kw["interactive"] and kw["tty"] and kw["env"] == ("A=1", "B=2")
    assert kw["network"] == "none" and kw["publish"] == ("80:8080",) and kw["pids_limit"] == 5
    assert kw["image"] == "busybox" and kw["command"] == ("sh", "-c", "echo -x")
    assert parse(["run", "--bogus", "busybox"]) is None            # unknown: the full CLI answers
    assert parse(["run", "--rm"]) is None                          # no image: the full CLI's usage error
    assert parse(["build", "run"]) is None
    assert parse(["run", "--pids-limit", "x", "busybox"]) is None


def test_ports_restart_policies_and_durations():
    assert parse_ports(["8080:80", "127.0.0.1:9000:90/udp", "7000", "[::1]::22"]) == (
        PortSpec(80, "tcp", "", 8080), PortSpec(90, "udp", "127.0.0.1", 9000), PortSpec(7000),
        PortSpec(22, "tcp", "::1", 0))
    with pytest.raises(ContainerError, match='invalid port specification: "80:x"'):
        parse_ports(["80:x"])
    assert RestartPolicy.parse("on-failure:3") == RestartPolicy("on-failure", 3)
    assert RestartPolicy.parse("always") == RestartPolicy("always")
    for bad, text in (("sometimes", "invalid restart policy 'sometimes'"),
                      ("always:2", "maximum retry count cannot be used with restart policy 'always'")):
        with pytest.raises(ContainerError, match=text):
            RestartPolicy.parse(bad)
    assert parse_duration("1m30s") == 90 and parse_duration("250ms") == 0.25 and parse_duration("0") == 0
    with pytest.raises(ContainerError, match='invalid duration "10"'):
        parse_duration("10")


def test_ps_texts():
    state = ContainerState(status="exited", exit_code=3, finished_at="2026-01-01T00:00:00.000000000Z")
    assert status_text(state, now=1767225600 + 5) == "Exited (3) 5 seconds ago"
    running = ContainerState(status="running", started_at="2026-01-01T00:00:00Z", health={"Status": "healthy"})
    assert status_text(running, now=1767225600 + 120) == "Up 2 minutes (healthy)"
    assert status_text(ContainerState()) == "Created"

    class Config:
        argv = ("sh", "-c", "echo hello world; sleep 1")

    assert command_text(Config) == '"sh -c echo hello wo…"'


def test_capability_sets_and_cp_arguments():
    assert capability_set() == DEFAULT_MASK
    assert capability_set(drop=["ALL"]) == 0
    assert capability_set(add=["CAP_NET_ADMIN"], drop=["CAP_CHOWN"]) == \
        (DEFAULT_MASK | cap_mask(["CAP_NET_ADMIN"])) & ~cap_mask(["CAP_CHOWN"])
    assert capability_set(add=["ALL"], drop=["CAP_SYS_ADMIN"], last=40) == ((1 << 41) - 1) & ~cap_mask(["CAP_SYS_ADMIN"])
    assert split_cp_arg("box:/etc/hosts") == ("box", "/etc/hosts")
    assert split_cp_arg("./a:b") == ("", "./a:b") and split_cp_arg("/abs:x") == ("", "/abs:x")
    assert split_cp_arg("plain") == ("", "plain")
