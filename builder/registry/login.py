"""``pybuild login`` / ``logout``: check credentials against the registry, then save or forget them."""

from __future__ import annotations

from .settings import DOCKER_HUB, canonical_host


def login(server: str | None, username: str, password: str) -> str:
    """Ping ``server`` (default: Docker Hub) with these credentials; save them if it accepts them.

    Returns where they were saved. A refusal raises ``AuthenticationFailed`` and saves nothing.
    """
    from . import credentials
    from .client import Registry

    host = canonical_host(server or DOCKER_HUB)
    registry = Registry(host, credentials=credentials.Credentials(username, password))
    try:
        registry.ping()
    finally:
        registry.transport.close()
    where = credentials.save_login(host, username, password)
    Registry.forget_all()
    return where


def logout(server: str | None) -> tuple[str, bool]:
    """(host, whether credentials were removed)."""
    from . import credentials

    host = canonical_host(server or DOCKER_HUB)
    return host, credentials.erase_login(host)
