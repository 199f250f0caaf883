"""The status channel from the sandbox's processes to the parent: one JSON object per line on a pipe.

Three writers share it -- the monitor (``init_pid``, ``init_signal``), the sandbox's pid 1 (``error``
during setup, then ``exit`` or ``signal`` of the command) and the command process before its exec
(``error``).  Each message is one ``write`` shorter than PIPE_BUF, so lines never interleave; the
command's own exec closes its copy (close-on-exec), so EOF means every writer is gone.
"""

from __future__ import annotations

import json
import os

_MAX_TEXT = 3000


def send(fd: int, **message) -> None:
    if isinstance(message.get("error"), str) and len(message["error"]) > _MAX_TEXT:
        message["error"] = message["error"][:_MAX_TEXT] + "..."
    data = (json.dumps(message) + "\n").encode()
    try:
        os.write(fd, data)
    except OSError:
        pass  # the parent is gone; nothing left to tell


def parse(data: bytes) -> list[dict]:
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            out.append(item)
    return out


__all__ = ["send", "parse"]
