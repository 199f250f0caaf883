"""Container logs in docker's json-file format: one JSON object per line,
``{"log": "text\\n", "stream": "stdout", "time": "2026-...Z"}``; output is split at newlines, as docker does."""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Iterator

from .records import now_rfc3339, parse_rfc3339


class LogWriter:
    """Appends a container's output to its log file, a line at a time (partial lines wait for their end)."""

    def __init__(self, path: str):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.partial = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        buffered = self.partial[stream] + data
        *lines, rest = buffered.split(b"\n")
        self.partial[stream] = rest
        if lines:
            stamp = now_rfc3339()
            out = "".join(json.dumps({"log": line.decode("utf-8", "replace") + "\n", "stream": stream,
                                      "time": stamp}) + "\n" for line in lines)
            os.write(self.fd, out.encode())

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                os.write(self.fd, (json.dumps({"log": rest.decode("utf-8", "replace"), "stream": stream,
                                               "time": now_rfc3339()}) + "\n").encode())
                self.partial[stream] = b""

    def close(self) -> None:
        self.flush()
        os.close(self.fd)


def read_entries(path: str, *, follow: Callable[[], bool] | None = None, since: float = 0.0,
                 tail: int = -1) -> Iterator[dict]:
    """The log's entries; with ``follow`` keep reading while ``follow()`` says the container may write."""
    try:
        fh = open(path, encoding="utf-8")
    except FileNotFoundError:
        return
    with fh:
        lines = fh.readlines()
        if tail >= 0:
            lines = lines[len(lines) - tail:] if tail else []
        pending = ""
        for line in lines:
            entry = _parse(line)
            if entry is not None and (not since or parse_rfc3339(entry["time"]) >= since):
                yield entry
        while follow is not None:
            chunk = fh.readline()
            if chunk:
                pending += chunk
                if pending.endswith("\n"):
                    entry = _parse(pending)
                    pending = ""
                    if entry is not None:
                        yield entry
                continue
            if not follow():
                rest = fh.read()
                for line in (pending + rest).splitlines():
                    entry = _parse(line)
                    if entry is not None:
                        yield entry
                return
            time.sleep(0.05)


def _parse(line: str) -> dict | None:
    try:
        return json.loads(line)
    except ValueError:
        return None


__all__ = ["LogWriter", "read_entries"]
