"""How containers look to users: ``inspect``'s JSON and ``ps``'s columns, in docker's shapes."""

from __future__ import annotations

import time

from .records import ContainerConfig, ContainerState, parse_rfc3339


def _health(state: ContainerState) -> dict | None:
    return state.health


def inspect_container(config: ContainerConfig, state: ContainerState) -> dict:
    running = state.status in ("running", "restarting")
    net = state.network or {}
    ports = net.get("Ports") or {}
    for exposed in config.exposed_ports:
        ports.setdefault(exposed, None)
    state_doc = {
        "Status": "paused" if state.paused and running else state.status, "Running": running,
        "Paused": state.paused and running, "Restarting": state.status == "restarting",
        "OOMKilled": state.oom_killed, "Dead": state.status == "dead", "Pid": state.pid if running else 0,
        "ExitCode": state.exit_code, "Error": state.error, "StartedAt": state.started_at,
        "FinishedAt": state.finished_at,
    }
    if state.health is not None:
        state_doc["Health"] = state.health
    health = config.healthcheck
    return {
        "Id": config.id, "Created": config.created, "Path": config.path, "Args": list(config.args),
        "State": state_doc, "Image": config.image_id, "Name": "/" + config.name,
        "RestartCount": state.restart_count, "Driver": "overlay2",
        "Mounts": [{"Type": m.type, **({"Name": m.name} if m.type == "volume" else {}), "Source": m.source,
                    "Destination": m.destination, **({"Driver": "local"} if m.type == "volume" else {}),
                    "Mode": "ro" if m.readonly and m.type == "bind" else "", "RW": not m.readonly,
                    "Propagation": "rprivate" if m.type == "bind" else ""}
                   for m in config.mounts if m.type != "tmpfs"],     # docker lists --tmpfs under HostConfig only
        "HostConfig": {
            "Binds": [f"{m.source}:{m.destination}{':ro' if m.readonly else ''}" for m in config.mounts
                      if m.type == "bind"] or None,
            "NetworkMode": "default" if config.network == "bridge" else config.network,
            "PortBindings": {f"{p.container_port}/{p.proto}": [{"HostIp": p.host_ip,
                                                                  "HostPort": str(p.host_port or "")}]
                             for p in config.ports},
            "RestartPolicy": {"Name": config.restart.name, "MaximumRetryCount": config.restart.max_retries},
            "AutoRemove": config.auto_remove, "CapAdd": list(config.cap_add) or None,
            "CapDrop": list(config.cap_drop) or None, "Privileged": config.privileged,
            "PublishAllPorts": config.publish_all, "ReadonlyRootfs": config.read_only,
            "SecurityOpt": list(config.security_opt) or None, "Init": config.init or None,
            "Memory": config.memory, "MemorySwap": config.memory_swap, "NanoCpus": int(round(config.cpus * 1e9)),
            "CpuShares": config.cpu_shares, "PidsLimit": config.pids_limit or None,
            "ShmSize": config.shm_size, "ExtraHosts": list(config.extra_hosts) or None,
            "Devices": [{"PathOnHost": h, "PathInContainer": t, "CgroupPermissions": p} for h, t, p in config.devices],
            "Tmpfs": {m.destination: "" for m in config.mounts if m.type == "tmpfs"} or None,
        },
        "Config": {
            "Hostname": config.hostname, "Domainname": config.domainname, "User": config.user,
            "Tty": config.tty, "OpenStdin": config.open_stdin, "StdinOnce": config.open_stdin,
            "Env": list(config.env), "Cmd": list(config.cmd) or None, "Image": config.image,
            "Volumes": {m.destination: {} for m in config.mounts if m.type == "volume"} or None,
            "WorkingDir": config.working_dir, "Entrypoint": list(config.entrypoint) or None,
            "Labels": dict(config.labels), "ExposedPorts": {p: {} for p in config.exposed_ports} or None,
            "StopSignal": config.stop_signal,
            **({"Healthcheck": {"Test": list(health.test), "Interval": int(health.interval * 1e9),
                                "Timeout": int(health.timeout * 1e9), "StartPeriod": int(health.start_period * 1e9),
                                "Retries": health.retries}} if health.test else {}),
        },
        "NetworkSettings": {
            "IPAddress": net.get("IPAddress", ""), "IPPrefixLen": net.get("IPPrefixLen", 0),
            "Gateway": net.get("Gateway", ""), "MacAddress": net.get("MacAddress", ""),
            "Ports": ports if running else {},
            "Networks": {config.network: {"IPAddress": net.get("IPAddress", ""), "Gateway": net.get("Gateway", ""),
                                          "MacAddress": net.get("MacAddress", ""),
                                          "Aliases": list(config.network_aliases) or None,
                                          "NetworkID": net.get("NetworkID", "")}},
        },
    }


def status_text(state: ContainerState, now: float | None = None) -> str:
    from ..format import human_duration

    now = time.time() if now is None else now
    if state.status == "running":
        text = "Up " + human_duration(now - parse_rfc3339(state.started_at))
        if state.paused:
            return text + " (Paused)"
        health = (state.health or {}).get("Status")
        if health == "starting":
            text += " (health: starting)"
        elif health in ("healthy", "unhealthy"):
            text += f" ({health})"
        return text
    if state.status == "restarting":
        return f"Restarting ({state.exit_code}) {human_duration(now - parse_rfc3339(state.finished_at))} ago"
    if state.status == "exited":
        return f"Exited ({state.exit_code}) {human_duration(now - parse_rfc3339(state.finished_at))} ago"
    if state.status == "removing":
        return "Removal In Progress"
    if state.status == "dead":
        return "Dead"
    return "Created"


def command_text(config: ContainerConfig) -> str:
    text = " ".join(config.argv)
    if len(text) > 20:
        text = text[:19] + "…"
    return f'"{text}"'


def ports_text(state: ContainerState) -> str:
    if state.status != "running":
        return ""
    out = []
    for port, bindings in sorted((state.network or {}).get("Ports", {}).items()):
        for binding in bindings or ():
            out.append(f"{binding.get('HostIp') or '0.0.0.0'}:{binding.get('HostPort')}->{port}")
    return ", ".join(out)


def ps_row(config: ContainerConfig, state: ContainerState) -> dict:
    from ..format import since

    return {"ID": config.id[:12], "Image": config.image, "Command": command_text(config),
            "CreatedAt": config.created, "RunningFor": since(parse_rfc3339(config.created)),
            "Status": status_text(state), "Ports": ports_text(state), "Names": config.name,
            "State": state.status, "Labels": ",".join(f"{k}={v}" for k, v in config.labels.items())}


__all__ = ["inspect_container", "ps_row", "status_text"]
