"""Compiled seccomp programs, kept between runs: libseccomp turns Docker's profile into the same BPF
program every time (300+ rules: ~30 ms, plus ~15 ms to load the library), so each program is compiled
once per machine and later sandboxes load the bytes directly.

The cache lives in a directory only root may write (a tampered program would weaken every sandbox):
``/run/pybuild-seccomp`` (tmpfs: a new boot, a new libseccomp or kernel starts afresh).  The key is the
filter's full description, the machine and libseccomp's version.
"""

from __future__ import annotations

import hashlib
import os

from .paths import writable_only_by_us

CACHE_DIR = "/run/pybuild-seccomp"


def key(filt, version: str) -> str:
    return hashlib.sha256(f"{os.uname().machine}|{version}|{filt!r}".encode()).hexdigest()


def load(filt, version: str, directory: str = CACHE_DIR) -> bytes | None:
    if not writable_only_by_us(directory):
        return None
    try:
        with open(os.path.join(directory, key(filt, version) + ".bpf"), "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    return data if data and len(data) % 8 == 0 else None


def store(filt, version: str, program: bytes, directory: str = CACHE_DIR) -> None:
    if not program or len(program) % 8 or not writable_only_by_us(directory):
        return
    path = os.path.join(directory, key(filt, version) + ".bpf")
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as fh:
            fh.write(program)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


__all__ = ["load", "store", "key", "CACHE_DIR"]
