"""Which containers use which image: what ``rmi`` and ``image prune`` must respect."""

from __future__ import annotations

from typing import Callable


def image_users(root) -> Callable[[str], list[tuple[str, bool]]]:
    """A lookup: image id -> [(container id, running)], computed once from the container records."""
    from .containers import ContainerStore
    from .lifecycle import monitor_alive, reconcile

    reconcile(root)
    table: dict[str, list[tuple[str, bool]]] = {}
    for config, state in ContainerStore(root).all():
        table.setdefault(config.image_id, []).append((config.id, state.running and monitor_alive(state)))
    return lambda image_id: table.get(image_id, [])


__all__ = ["image_users"]
