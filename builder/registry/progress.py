"""Progress of pulls and pushes: one tqdm bar per blob on a terminal, docker's plain lines otherwise.

Blobs move on several threads at once; every call here takes one lock, so bars and lines never
interleave. ``quiet`` shows nothing (``pull -q`` prints only the result). Lines name a blob by
the first 12 hex digits of its digest, as docker does (``a3ed95caeb02: Pull complete``).
"""

from __future__ import annotations

import sys
import threading

MODES = ("auto", "tty", "plain", "quiet")


def short(digest: str) -> str:
    """``sha256:a3ed95caeb02...`` -> ``a3ed95caeb02``."""
    return digest.split(":", 1)[-1][:12]


class TransferProgress:
    """Reports per-blob transfers; ``mode`` is ``tty`` (bars), ``plain`` (lines), ``quiet`` or ``auto``
    (bars when ``out`` is a terminal)."""

    def __init__(self, mode: str = "auto", out=None):
        self.out = out if out is not None else sys.stderr
        if mode == "auto":
            isatty = getattr(self.out, "isatty", None)
            mode = "tty" if isatty is not None and isatty() else "plain"
        if mode not in MODES:
            raise ValueError(f"unknown progress mode {mode!r}")
        self.mode = mode
        self._lock = threading.Lock()
        self._bars: dict = {}

    def line(self, text: str) -> None:
        """A status line (``latest: Pulling from library/busybox``)."""
        if self.mode == "quiet":
            return
        with self._lock:
            self._write(text)

    def start(self, digest: str, total: int, verb: str) -> None:
        """A blob transfer begins: a bar (``verb`` is its label) or a ``<id>: <verb>`` line."""
        if self.mode == "quiet":
            return
        with self._lock:
            if self.mode == "tty":
                from tqdm import tqdm

                self._bars[digest] = tqdm(desc=f"{short(digest)}: {verb}", total=total, unit="B", unit_scale=True,
                                          file=self.out, leave=False, dynamic_ncols=True, mininterval=0.2)
            else:
                self._write(f"{short(digest)}: {verb}")

    def advance(self, digest: str, n: int) -> None:
        """``n`` more bytes of the blob moved (called from worker threads, often)."""
        if self.mode != "tty" or not n:
            return
        with self._lock:
            bar = self._bars.get(digest)
            if bar is not None:
                bar.update(n)

    def done(self, digest: str, text: str) -> None:
        """The blob's final state (``Pull complete``, ``Pushed``, ``Already exists``)."""
        if self.mode == "quiet":
            return
        with self._lock:
            bar = self._bars.pop(digest, None)
            if bar is not None:
                bar.close()
            self._write(f"{short(digest)}: {text}")

    def close(self) -> None:
        """Remove any bar left (a failed transfer)."""
        with self._lock:
            bars, self._bars = self._bars, {}
        for bar in bars.values():
            bar.close()

    def _write(self, text: str) -> None:
        if self._bars:
            from tqdm import tqdm

            tqdm.write(text, file=self.out)
        else:
            self.out.write(text + "\n")
            self.out.flush()


class Quiet(TransferProgress):
    def __init__(self):
        super().__init__("quiet")
