"""-v / --mount / --tmpfs and the image's VOLUMEs, resolved to a container's mounts at create time."""

from __future__ import annotations

from .errors import ContainerError


def plan_mounts(root, options, image_volumes: tuple, image_id: str):
    """(mounts, volume names, anonymous volume names) for ``build_config``."""
    if options.volumes or options.mounts or options.tmpfs or image_volumes:
        raise ContainerError("volumes are not wired in yet")
    return (), (), ()


__all__ = ["plan_mounts"]
