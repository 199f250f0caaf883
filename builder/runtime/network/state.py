"""Persisted network state under ``<store root>/networks/``: one JSON per network and per endpoint,
guarded by one file lock (IP allocation reads every endpoint of a network)."""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path

from .model import Endpoint, Network


class NetworkState:
    def __init__(self, store_root: Path):
        self.dir = Path(store_root) / "networks"
        self.endpoints_dir = self.dir / "endpoints"

    @contextmanager
    def locked(self):
        self.endpoints_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- networks --------------------------------------------------------------------------------

    def networks(self) -> list[Network]:
        out = []
        if self.dir.is_dir():
            for path in sorted(self.dir.glob("*.json")):
                data = _read(path)
                if data:
                    out.append(Network.from_dict(data))
        return out

    def save_network(self, network: Network) -> None:
        _write(self.dir / f"{network.id}.json", network.to_dict())

    def delete_network(self, network: Network) -> None:
        _unlink(self.dir / f"{network.id}.json")
        _unlink(self.dir / f"{network.id}.last-ip")

    # -- endpoints -------------------------------------------------------------------------------

    def endpoints(self) -> list[Endpoint]:
        out = []
        if self.endpoints_dir.is_dir():
            for path in sorted(self.endpoints_dir.glob("*.json")):
                data = _read(path)
                if data:
                    out.append(Endpoint.from_dict(data))
        return out

    def endpoint(self, container_id: str) -> Endpoint | None:
        data = _read(self.endpoints_dir / f"{container_id}.json")
        return Endpoint.from_dict(data) if data else None

    def save_endpoint(self, endpoint: Endpoint) -> None:
        _write(self.endpoints_dir / f"{endpoint.container_id}.json", endpoint.to_dict())

    def delete_endpoint(self, container_id: str) -> None:
        _unlink(self.endpoints_dir / f"{container_id}.json")


def _read(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


__all__ = ["NetworkState"]
