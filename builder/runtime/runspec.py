"""From a container's config to what its monitor runs: the sandbox spec, the network endpoint, the cgroup.

Called by ``start`` each time the container starts: the image's layer snapshots are made sure of (a
pruned snapshot is unpacked again), the network endpoint and the cgroup are created, and the
container's own /etc/hosts, /etc/resolv.conf and /etc/hostname are written in its directory.
"""

from __future__ import annotations

import os
import shutil
import sys

from .containers import ContainerStore
from .createspec import runtime_env
from .errors import ContainerError
from .records import ContainerConfig

INIT_PATH = "/sbin/docker-init"
INIT_CANDIDATES = ("/usr/bin/docker-init", "/usr/bin/tini-static", "/usr/local/bin/docker-init")


def find_init() -> str:
    for path in INIT_CANDIDATES:
        if os.path.exists(path):
            return os.path.realpath(path)
    found = shutil.which("tini-static") or shutil.which("docker-init")
    if found:
        return found
    raise ContainerError('exec: "docker-init": executable file not found in $PATH (install tini for --init)')


def store_tag(root) -> str:
    """8 hex digits naming this store among others on the host (cgroup names carry it)."""
    import hashlib

    return hashlib.sha256(os.path.realpath(os.fspath(root)).encode()).hexdigest()[:8]


def cgroup_name(root, container_id: str) -> str:
    return f"{store_tag(root)}-{container_id[:12]}"


def lower_dirs(root, config: ContainerConfig) -> tuple[str, ...]:
    from cache import Store

    from ..images.service import load_config

    store = Store.open(root)
    image = load_config(store, config.image_id)
    paths = []
    for diff_id in image.rootfs.diff_ids:
        record = store.get_layer(diff_id)
        if record.snapshot:
            paths.append(str(store.snapshot_path(diff_id)))
        else:                                   # a pulled or loaded layer used for the first time: unpack
            from ..images.layers import ensure_snapshot

            paths.append(ensure_snapshot(store, diff_id))
    return tuple(reversed(paths))


def _write(path: str, text: str) -> None:
    """Rewrite in place when it exists (it may be bind-mounted into a running container)."""
    mode = "r+" if os.path.exists(path) else "w"
    with open(path, mode, encoding="utf-8") as fh:
        fh.seek(0)
        fh.write(text)
        fh.truncate()
    os.chmod(path, 0o644)


def prepare_start(root, container_id: str) -> dict:
    from ..sandbox.etcfiles import hosts_file, resolv_conf
    from ..sandbox.spec import BindMount, DeviceMapping, HostEntry, RunSpec, TmpfsMount, Ulimit

    store = ContainerStore(root)
    config = store.config(container_id)
    directory = store.path(container_id)
    hosts, resolv, hostname = (os.path.join(directory, n) for n in ("hosts", "resolv.conf", "hostname"))
    extra = tuple(HostEntry(*entry.split(":", 1)) for entry in config.extra_hosts)
    _write(hostname, config.hostname + "\n")
    _write(hosts, hosts_file(config.hostname, extra))
    resolv_text = resolv_conf("host" if config.network == "host" else "bridge")
    if config.dns:
        resolv_text = "".join(f"nameserver {d}\n" for d in config.dns) + "".join(
            line + "\n" for line in resolv_text.splitlines() if not line.startswith("nameserver"))
    _write(resolv, resolv_text)
    start: dict = {"network": "", "cgroup": ""}
    binds = [BindMount(m.source, m.destination, m.readonly) for m in config.mounts if m.type in ("bind", "volume")]
    tmpfs = [TmpfsMount(m.destination, m.size, m.mode, m.readonly, m.noexec, m.nodev) for m in config.mounts
             if m.type == "tmpfs"]
    argv = config.argv
    if config.init:
        binds.append(BindMount(find_init(), INIT_PATH, True))
        argv = (INIT_PATH, "--", *argv)
    netns = ""
    cgroup_procs: tuple[str, ...] = ()
    try:
        if config.network not in ("host", "none"):
            from .network import NetworkManager

            endpoint = NetworkManager(root).connect(
                container_id, config.network, name=config.name, aliases=config.network_aliases,
                hostname=config.hostname, ports=config.ports, publish_all=config.publish_all,
                exposed=config.exposed_ports, hosts_path=hosts, resolv_path=resolv, extra_hosts=extra)
            start["network"] = config.network
            netns = endpoint.netns
            store.update_state(container_id, network=endpoint.to_inspect())
        else:
            store.update_state(container_id, network={})
        if True:                        # every container has a cgroup of its own (stats, cleanup, cgroup ns)
            from ..sandbox.cgroups import Cgroup, Limits

            cgroup = Cgroup.create(cgroup_name(root, container_id), Limits(memory=config.memory, memory_swap=config.memory_swap,
                                                              cpus=config.cpus, cpu_shares=config.cpu_shares,
                                                              pids=config.pids_limit))
            start["cgroup"] = cgroup.name
            for warning in cgroup.warnings:     # docker prints these and runs without the limit
                print(f"WARNING: {warning}", file=sys.stderr)
            cgroup_procs = tuple(cgroup.procs_files)
        spec = RunSpec(
            argv=argv, lower_dirs=lower_dirs(root, config), upper_dir=os.path.join(directory, "upper"),
            work_dir=os.path.join(directory, "work"), env=runtime_env(config), cwd=config.working_dir or "/",
            user=config.user, hostname=config.hostname, network="host" if config.network == "host" else "none",
            netns=netns, binds=tuple(binds), tmpfs=tuple(tmpfs), extra_hosts=extra,
            security="insecure" if config.privileged else "sandbox", shm_size=config.shm_size,
            ulimits=tuple(Ulimit(*u) for u in config.ulimits),
            stdin="inherit" if config.open_stdin and not config.tty else "null", stdout="pipe", stderr="pipe",
            scratch_dir=directory, tty=config.tty, hosts_file=hosts, resolv_file=resolv, hostname_file=hostname,
            cgroup_procs=cgroup_procs, pid1_command=True, cap_add=config.cap_add, cap_drop=config.cap_drop,
            seccomp="seccomp=unconfined" not in config.security_opt,
            no_new_privs=any(o.startswith("no-new-privileges") and not o.endswith("false")
                             for o in config.security_opt),
            readonly_rootfs=config.read_only,
            devices=tuple(DeviceMapping(*d) for d in config.devices))
    except BaseException:
        from .lifecycle import release

        with open(os.path.join(directory, "start.json"), "w", encoding="utf-8") as fh:
            import json

            json.dump(start, fh)
        release(root, container_id)
        raise
    start["spec"] = spec.to_dict()
    return start


__all__ = ["prepare_start", "find_init", "lower_dirs"]
