"""The sandbox's one error type.

``SandboxError`` is a ``PybuildError`` (so the CLI renders it like every other user-facing error) for
everything that stops a RUN from starting or from being cleaned up: a user that is not in the image's
passwd file, an executable that is not found, a mount that fails.  A command that starts and exits
non-zero is *not* an error here: that is a ``RunResult`` with ``exit_code != 0``.
"""

from __future__ import annotations

from ..errors import PybuildError


class SandboxError(PybuildError):
    """A RUN could not be started (or cleaned up); the message reads like runc's/BuildKit's."""


__all__ = ["SandboxError"]
