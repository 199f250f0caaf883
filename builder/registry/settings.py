"""Per-registry settings: mirrors for docker.io, hosts allowed over plain http, extra CAs.

Read from ``$PYBUILD_REGISTRIES`` or ``~/.config/pybuild/registries.toml`` (``$XDG_CONFIG_HOME``
honoured), a TOML file::

    [registry."docker.io"]
    mirrors = ["mirror.example:5000"]    # tried in order for pulls of docker.io images
    [registry."build.example:5443"]
    insecure = true                      # plain http allowed, TLS certificates not verified
    ca = "/etc/ssl/build-ca.pem"         # an extra CA to trust for this host

Loopback hosts (127.0.0.0/8, ::1, localhost) may use plain http without being listed, as docker
treats them. A host's CA is also found where docker and podman keep them:
``~/.config/pybuild/certs.d/<host>/ca.crt``, ``/etc/docker/certs.d/<host>/ca.crt``,
``/etc/containers/certs.d/<host>/ca.crt``.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import RegistryError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"     # where docker.io's distribution API lives
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}


@dataclass(frozen=True)
class HostSettings:
    host: str                       # as references name it: "docker.io", "127.0.0.1:5000"
    insecure: bool = False
    ca: str | None = None
    mirrors: tuple[str, ...] = ()

    @property
    def api_host(self) -> str:
        """Where the distribution API answers for this host."""
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    @property
    def plain_http_allowed(self) -> bool:
        return self.insecure or is_loopback(self.host)

    def ca_file(self) -> str | None:
        """The extra CA to trust: the ``ca`` setting, else a ``certs.d/<host>/ca.crt`` if one exists."""
        if self.ca:
            return self.ca
        for base in (config_dir() / "certs.d", Path("/etc/docker/certs.d"), Path("/etc/containers/certs.d")):
            candidate = base / self.host / "ca.crt"
            if candidate.is_file():
                return str(candidate)
        return None


def canonical_host(host: str) -> str:
    """Docker Hub's names fold into ``docker.io``; others are kept (lower-cased)."""
    host = host.strip().lower()
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix):]
    host = host.split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_ALIASES else host


def is_loopback(host: str) -> bool:
    name = host
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "pybuild"


def settings_path() -> Path:
    explicit = os.environ.get("PYBUILD_REGISTRIES")
    return Path(explicit) if explicit else config_dir() / "registries.toml"


def _read(path: Path) -> dict:
    import tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise RegistryError(f"registry settings {path}: {err}") from None
    table = data.get("registry", {})
    if not isinstance(table, dict):
        raise RegistryError(f"registry settings {path}: [registry] must be a table of hosts")
    return table


def _host_settings(path: Path, host: str, raw) -> HostSettings:
    where = f"registry settings {path}: [registry.{host!r}]"
    if not isinstance(raw, dict):
        raise RegistryError(f"{where} must be a table")
    unknown = set(raw) - {"mirrors", "insecure", "ca"}
    if unknown:
        raise RegistryError(f"{where}: unknown setting {sorted(unknown)[0]!r} (known: ca, insecure, mirrors)")
    mirrors = raw.get("mirrors", [])
    if not isinstance(mirrors, list) or not all(isinstance(m, str) and m for m in mirrors):
        raise RegistryError(f"{where}: mirrors must be a list of hosts")
    insecure = raw.get("insecure", False)
    if not isinstance(insecure, bool):
        raise RegistryError(f"{where}: insecure must be true or false")
    ca = raw.get("ca")
    if ca is not None and not isinstance(ca, str):
        raise RegistryError(f"{where}: ca must be a file path")
    return HostSettings(host, insecure=insecure, ca=ca,
                        mirrors=tuple(canonical_host(m) if "://" in m else m.rstrip("/") for m in mirrors))


_loaded: tuple | None = None


def all_settings() -> dict[str, HostSettings]:
    """Every host's settings from the file (read again only when the file changes)."""
    global _loaded
    path = settings_path()
    try:
        st = os.stat(path)
        stamp = (str(path), st.st_ino, st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (str(path), None)
    if _loaded is None or _loaded[0] != stamp:
        table = _read(path)
        hosts = {}
        for name, raw in table.items():
            host = canonical_host(name)
            hosts[host] = _host_settings(path, host, raw)
        _loaded = (stamp, hosts)
    return _loaded[1]


def settings_for(host: str) -> HostSettings:
    host = canonical_host(host)
    return all_settings().get(host) or HostSettings(host)


def mirror_hint(host: str) -> str:
    """What to tell a user whose docker.io pull found no route."""
    if canonical_host(host) != DOCKER_HUB:
        return ""
    return (f"; to pull docker.io images through a mirror, list it under [registry.\"docker.io\"] "
            f"mirrors = [\"HOST:PORT\"] in {settings_path()}")
