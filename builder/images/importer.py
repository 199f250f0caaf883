"""``pybuild import``: a root filesystem tarball becomes a one-layer image.

The tarball is unpacked into a layer snapshot; the layer itself is the deterministic tar of that
snapshot (sorted, numeric owners, PAX), so two copies of the same tree made differently give the
same diff_id. With SOURCE_DATE_EPOCH, file times later than the epoch are clamped on disk first,
and the config's ``created`` is the epoch: the image digest is then reproducible.
"""

from __future__ import annotations

import time
from typing import BinaryIO

from ..fs.unpack import unpack_layer
from ..image.config import ContainerConfig, History, ImageConfig, RootFS, format_timestamp
from ..image.platform import host_platform
from .changes import apply_changes, parse_changes
from .layers import clamp_mtimes, commit_directory  # noqa: F401  (clamp_mtimes: re-exported)
from .service import store_config, tag_image


def import_rootfs(store, source: BinaryIO, reference: str | None = None, *, changes=(), message: str = "",
                  source_date_epoch: int | None = None, platform=None) -> str:
    """Import ``source`` (tar, optionally compressed) as an image; tag it if ``reference`` is given.

    Returns the image id (the config digest).
    """
    instructions = parse_changes(list(changes))  # bad --change values fail before any work
    tmp = store.prepare_snapshot()
    try:
        unpack_layer(source, tmp, mode="snapshot")
    except BaseException:
        store.abort_snapshot(tmp)
        raise
    diff_id = commit_directory(store, tmp, source_date_epoch=source_date_epoch, allow_empty=True)

    created = format_timestamp(source_date_epoch * 1_000_000_000 if source_date_epoch is not None else time.time_ns())
    target = platform or host_platform()
    container = apply_changes(ContainerConfig(), instructions)
    config = ImageConfig(architecture=target.architecture, os=target.os, variant=target.variant or "",
                         created=created, config=container, rootfs=RootFS(diff_ids=(diff_id,)),
                         history=(History(created=created, comment=message or "Imported from -"),))
    image_id = store_config(store, config, (diff_id,), meta={"source": "import"})
    if reference:
        tag_image(store, image_id, reference)
    return image_id
