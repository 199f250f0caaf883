"""``run`` / ``create`` / ``start`` as the CLI does them, without click: the click commands and the
stdlib-only fast path of ``pybuild run`` (``fastrun``) share this code."""

from __future__ import annotations

import sys


RUN_DEFAULTS = {
    "name": "", "env": (), "env_files": (), "workdir": None, "user": None, "entrypoint": None, "hostname": None,
    "interactive": False, "tty": False, "rm": False, "network": "bridge", "network_aliases": (), "publish": (),
    "publish_all": False, "expose": (), "volumes": (), "mounts": (), "tmpfs": (), "memory": "", "memory_swap": "",
    "cpus": "", "cpu_shares": 0, "pids_limit": 0, "read_only": False, "cap_add": (), "cap_drop": (),
    "privileged": False, "devices": (), "init": False, "restart": "no", "security_opt": (), "labels": (),
    "add_hosts": (), "dns": (), "stop_signal": None, "stop_timeout": None, "health_cmd": None,
    "health_interval": None, "health_timeout": None, "health_retries": None, "health_start_period": None,
    "no_healthcheck": False, "ulimits": (), "shm_size": "", "pull_policy": "missing", "platform": None,
}


def run_container(root: str, image: str, command, *, detach: bool, sig_proxy: bool, kw: dict) -> int | None:
    """``pybuild run``: create, start, and (unless detached) attach; the exit code, or None (detached)."""
    root, cid = create_container(root, image, command, kw)
    if detach:
        start_container_cli(root, cid, attach=False)
        print(cid)
        return None
    return start_container_cli(root, cid, attach=True, stdin=kw["interactive"], tty=kw["tty"], sig_proxy=sig_proxy)


def _duration(text):
    if text is None:
        return None
    from .durations import parse_duration

    return parse_duration(text)


def _options(kw):
    from .createspec import RunOptions

    return RunOptions(
        name=kw["name"], env=kw["env"], env_files=kw["env_files"], workdir=kw["workdir"], user=kw["user"],
        entrypoint=kw["entrypoint"], hostname=kw["hostname"], interactive=kw["interactive"], tty=kw["tty"],
        rm=kw["rm"], network=kw["network"], network_aliases=kw["network_aliases"], publish=kw["publish"],
        publish_all=kw["publish_all"], expose=kw["expose"], volumes=kw["volumes"], mounts=kw["mounts"],
        tmpfs=kw["tmpfs"], memory=kw["memory"], memory_swap=kw["memory_swap"], cpus=kw["cpus"],
        cpu_shares=kw["cpu_shares"], pids_limit=kw["pids_limit"], read_only=kw["read_only"], cap_add=kw["cap_add"],
        cap_drop=kw["cap_drop"], privileged=kw["privileged"], devices=kw["devices"], init=kw["init"],
        restart=kw["restart"], security_opt=kw["security_opt"], labels=kw["labels"], add_hosts=kw["add_hosts"],
        dns=kw["dns"], stop_signal=kw["stop_signal"], stop_timeout=kw["stop_timeout"], health_cmd=kw["health_cmd"],
        health_interval=_duration(kw["health_interval"]), health_timeout=_duration(kw["health_timeout"]),
        health_retries=kw["health_retries"], health_start_period=_duration(kw["health_start_period"]),
        no_healthcheck=kw["no_healthcheck"], ulimits=kw["ulimits"], shm_size=kw["shm_size"])


def _image(root: str, image: str, pull_policy: str, platform: str | None):
    """The image's id and config, pulled first when missing (docker's messages, on stderr)."""
    from cache import Store

    from ..errors import ImageNotFound
    from ..images.service import load_config, resolve_image

    store = Store.open(root)
    if pull_policy != "always":
        try:
            image_id, _ = resolve_image(store, image)
            return image_id, load_config(store, image_id)
        except ImageNotFound:
            if pull_policy == "never":
                raise
    from ..image.platform import parse_platform
    from ..registry.progress import TransferProgress
    from ..registry.pull import pull

    if pull_policy != "always":
        print(f"Unable to find image '{_familiar(image)}' locally", file=sys.stderr)
    result = pull(store, image, platform=parse_platform(platform) if platform else None,
                  strict_platform=platform is not None, progress=TransferProgress("auto", out=sys.stderr))
    image_id, _ = resolve_image(store, result.name if hasattr(result, "name") else image)
    return image_id, load_config(store, image_id)


def _familiar(image: str) -> str:
    from ..image.reference import parse_normalized_named

    try:
        ref = parse_normalized_named(image)
    except Exception:  # noqa: BLE001
        return image
    text = ref.familiar
    return text if (ref.tag or ref.digest) else f"{text}:latest"


def create_container(root: str, image, command, kw) -> tuple[str, str]:
    from .containers import NAME_RE
    from .createspec import build_config
    from .errors import ContainerError

    from .containers import ContainerStore
    from .lifecycle import reconcile

    reconcile(root)
    containers = ContainerStore(root)
    options = _options(kw)
    if options.name and not NAME_RE.match(options.name):
        raise ContainerError(f'Invalid container name ({options.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
    if options.network not in ("bridge", "default", "host", "none"):
        from .network import NetworkManager

        NetworkManager(root).get(options.network)     # docker refuses to create it: "network X not found"
    image_id, image_config = _image(root, image, kw["pull_policy"], kw["platform"])
    name = options.name.lstrip("/") or containers.new_name()
    from contextlib import nullcontext

    from cache import Store

    uses_volumes = options.volumes or options.mounts or image_config.config.volumes
    if uses_volumes:
        from .volumeplan import volume_store

        guard = volume_store(root).hold()   # a concurrent prune must not take volumes made for this one
    else:
        guard = nullcontext()
    with guard:
        config = build_config(root, image, image_id, image_config, tuple(command), options, name=name)
        # the image's layers too: a forced rmi of the image must leave the container able to start
        Store.open(root).pin(f"container-{config.id}", [image_id, *image_config.rootfs.diff_ids])
        try:
            containers.create(config)
        except BaseException:
            Store.open(root).unpin(f"container-{config.id}")
            raise
    return root, config.id


def start_container_cli(root: str, cid: str, *, attach: bool, stdin: bool = False, tty: bool = False,
           sig_proxy: bool = True) -> int | None:
    """Start ``cid``; attached: relay its streams and return its exit code (None when detached)."""
    from ..runtime import attach as attach_mod
    from .attachclient import relay, terminal_size
    from .containers import ContainerStore
    from .errors import ContainerError
    from .lifecycle import start_container

    config = ContainerStore(root).config(cid)
    started = start_container(root, cid, wait_attach=attach, winsize=terminal_size() if config.tty else None)
    if not attach:
        started.wait()
        return None
    sock = attach_mod.connect(started.sock_path, stdin=stdin)
    try:
        started.wait()
    except ContainerError as err:
        sock.close()
        _start_error(err)
    restore = proxy_signals(root, cid) if sig_proxy and not config.tty else None
    try:
        code = relay(sock, tty=config.tty, stdin=stdin)
    finally:
        sock.close()
        if restore:
            restore()
    if code is None:
        from .lifecycle import wait_stopped

        state = ContainerStore(root).state(cid)
        if state.running:
            return None          # detached
        wait_stopped(root, cid, 5)
        return ContainerStore(root).state(cid).exit_code
    return code


def _start_error(err):
    print(f"error: {err.message}", file=sys.stderr)
    sys.exit(getattr(err, "exit_code", 125) or 125)


def proxy_signals(root: str, cid: str):
    """docker run's sig-proxy: SIGINT/SIGTERM/... received by the CLI go to the container."""
    import signal as sig

    from .lifecycle import kill_container

    def forward(signum, _frame):
        try:
            kill_container(root, cid, signum, stopping=False)
        except Exception:  # noqa: BLE001
            pass

    saved = {s: sig.signal(s, forward) for s in (sig.SIGINT, sig.SIGTERM, sig.SIGHUP, sig.SIGQUIT, sig.SIGUSR1,
                                                  sig.SIGUSR2)}
    return lambda: [sig.signal(s, h) for s, h in saved.items()]


