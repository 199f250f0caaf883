"""What the parent hands the sandbox's init process: spec, scratch layout and overlay options.

Written as JSON into the scratch directory by the parent and read back by ``builder.sandbox.init``, so
the init never re-derives anything (one source of truth for link names and paths).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .overlay import OverlayPlan
from .spec import RunLayout, RunSpec


@dataclass(frozen=True, slots=True)
class SandboxPlan:
    spec: RunSpec
    layout: RunLayout
    overlay: OverlayPlan
    parent_pid: int = 0

    def dump(self, path: str) -> None:
        data = {"spec": self.spec.to_dict(), "layout": asdict(self.layout), "overlay": asdict(self.overlay),
                "parent_pid": self.parent_pid}
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh)

    @classmethod
    def load(cls, source: str | int) -> "SandboxPlan":
        """Read a plan from a path or an open file descriptor (which is closed)."""
        with open(source, encoding="utf-8") as fh:
            data = json.load(fh)
        ov = data["overlay"]
        overlay = OverlayPlan(ov["options"], ov["cwd"], tuple(tuple(link) for link in ov["links"]))
        return cls(RunSpec.from_dict(data["spec"]), RunLayout(**data["layout"]), overlay, data["parent_pid"])


__all__ = ["SandboxPlan"]
