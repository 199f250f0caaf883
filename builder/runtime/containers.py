"""The containers of one store: ``<root>/containers/<id>/`` directories, found by id, id prefix or name.

Names are unique; creating and removing take ``containers/.lock`` so two commands never hand out the
same name.  State changes take the container's own ``lock`` file.  Nothing here starts processes.
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import shutil
from contextlib import contextmanager
from typing import Iterator

from .errors import ContainerConflict, NoSuchContainer
from .records import ContainerConfig, ContainerState, read_json, write_json

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_LEFT = ("admiring", "brave", "clever", "eager", "festive", "gallant", "happy", "jolly", "keen", "lucid",
         "modest", "nifty", "quirky", "serene", "trusting", "vibrant", "wizardly", "zealous")
_RIGHT = ("archimedes", "babbage", "curie", "darwin", "euclid", "fermi", "galois", "hopper", "kepler",
          "lovelace", "noether", "pascal", "ritchie", "shannon", "turing", "wozniak")


class ContainerStore:
    """Container directories under a store root."""

    def __init__(self, store_root):
        self.root = os.path.join(os.fspath(store_root), "containers")

    def path(self, container_id: str, *parts: str) -> str:
        return os.path.join(self.root, container_id, *parts)

    # --- locking ---------------------------------------------------------------------------------
    @contextmanager
    def _flock(self, path: str) -> Iterator[None]:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def names_lock(self):
        return self._flock(os.path.join(self.root, ".lock"))

    def lock(self, container_id: str):
        return self._flock(self.path(container_id, "lock"))

    # --- records ---------------------------------------------------------------------------------
    def ids(self) -> list[str]:
        try:
            return sorted(e for e in os.listdir(self.root)
                          if len(e) == 64 and os.path.exists(self.path(e, "config.json")))
        except FileNotFoundError:
            return []

    def config(self, container_id: str) -> ContainerConfig:
        try:
            return ContainerConfig.from_json(read_json(self.path(container_id, "config.json")))
        except FileNotFoundError:
            raise NoSuchContainer(f"No such container: {container_id}", container_id) from None

    def state(self, container_id: str) -> ContainerState:
        try:
            return ContainerState.from_json(read_json(self.path(container_id, "state.json")))
        except FileNotFoundError:
            return ContainerState(status="dead")

    def write_state(self, container_id: str, state: ContainerState) -> None:
        write_json(self.path(container_id, "state.json"), state.to_json())

    def update_state(self, container_id: str, **changes) -> ContainerState:
        with self.lock(container_id):
            state = self.state(container_id).but(**changes)
            self.write_state(container_id, state)
            return state

    def all(self) -> list[tuple[ContainerConfig, ContainerState]]:
        out = []
        for cid in self.ids():
            try:
                out.append((self.config(cid), self.state(cid)))
            except (NoSuchContainer, ValueError):
                continue
        return out

    # --- lookup ----------------------------------------------------------------------------------
    def resolve(self, ref: str) -> str:
        """Docker's lookup order: full id, exact name, then a unique id prefix."""
        ref = ref.lstrip("/")
        ids = self.ids()
        if ref in ids:
            return ref
        for cid in ids:
            if self._name_of(cid) == ref:
                return cid
        matches = [cid for cid in ids if ref and cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NoSuchContainer(f"multiple IDs found with provided prefix: {ref}", ref)
        raise NoSuchContainer(f"No such container: {ref}", ref)

    def _name_of(self, cid: str) -> str:
        try:
            return read_json(self.path(cid, "config.json")).get("name", "")
        except (OSError, ValueError):
            return ""

    # --- create / remove -------------------------------------------------------------------------
    def new_name(self) -> str:
        taken = {self._name_of(cid) for cid in self.ids()}
        rng = random.SystemRandom()
        while True:
            name = f"{rng.choice(_LEFT)}_{rng.choice(_RIGHT)}"
            if name not in taken:
                return name
            name += str(rng.randint(0, 9))
            if name not in taken:
                return name

    def create(self, config: ContainerConfig) -> None:
        """Write a new container's directory; fails on a taken name (docker's conflict text)."""
        with self.names_lock():
            for cid in self.ids():
                if self._name_of(cid) == config.name:
                    raise ContainerConflict(
                        f'Conflict. The container name "/{config.name}" is already in use by container "{cid}". '
                        "You have to remove (or rename) that container to be able to reuse that name.", config.name)
            directory = self.path(config.id)
            os.makedirs(directory, mode=0o700)
            for sub in ("upper", "work"):
                os.mkdir(os.path.join(directory, sub), 0o755)
            self.write_state(config.id, ContainerState())
            write_json(self.path(config.id, "config.json"), config.to_json())   # last: now it exists

    def rename(self, container_id: str, name: str) -> None:
        """A new name, unique as at create (docker's conflict text)."""
        from dataclasses import replace

        with self.names_lock():
            for cid in self.ids():
                if cid != container_id and self._name_of(cid) == name:
                    raise ContainerConflict(
                        f'Conflict. The container name "/{name}" is already in use by container "{cid}". '
                        "You have to remove (or rename) that container to be able to reuse that name.", name)
            config = self.config(container_id)
            write_json(self.path(container_id, "config.json"), replace(config, name=name).to_json())

    def delete(self, container_id: str) -> None:
        """Remove the directory (config first, so a half-deleted container is never listed)."""
        with self.names_lock():
            try:
                os.unlink(self.path(container_id, "config.json"))
            except FileNotFoundError:
                pass
        shutil.rmtree(self.path(container_id), ignore_errors=True)


def volumes_in_use(store_root) -> dict[str, list[str]]:
    """Volume name -> ids of the containers (any state) that use it; ``volume rm``/``prune`` ask this."""
    out: dict[str, list[str]] = {}
    for config, _state in ContainerStore(store_root).all():
        for name in config.volumes:
            out.setdefault(name, []).append(config.id)
    return out


__all__ = ["ContainerStore", "volumes_in_use", "NAME_RE"]
