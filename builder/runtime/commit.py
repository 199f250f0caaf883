"""``docker commit``: a container's writable layer captured as one more layer of its image.

The upper dir is copied exactly (whiteouts, opaque markers, owners, xattrs, links) into a fresh layer
snapshot of the store and committed as the build engine commits a RUN's layer; the config is the
container's edited by ``--change`` instructions, and the history gains docker's entry.
"""

from __future__ import annotations

import os
import shutil
import stat
import time


def _copy_tree(src: str, dst: str) -> None:
    """Copy an overlay upper dir exactly: modes, owners, times, xattrs (opaque markers included),
    whiteouts (0/0 char devices), fifos, devices, symlinks and hardlinks."""
    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, os.stat_result]] = []

    def copy_attrs(source: str, target: str, st: os.stat_result) -> None:
        for name in os.listxattr(source, follow_symlinks=False):
            try:
                os.setxattr(target, name, os.getxattr(source, name, follow_symlinks=False), follow_symlinks=False)
            except OSError:
                pass
        os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(target, stat.S_IMODE(st.st_mode))

    def walk(source: str, target: str) -> None:
        for entry in sorted(os.scandir(source), key=lambda e: e.name):
            s, t = entry.path, os.path.join(target, entry.name)
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if not stat.S_ISDIR(mode) and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in links:
                    os.link(links[key], t, follow_symlinks=False)
                    continue
                links[key] = t
            if stat.S_ISDIR(mode):
                os.mkdir(t, 0o700)
                walk(s, t)
                dirs.append((t, st))
                copy_attrs(s, t, st)
                continue
            if stat.S_ISREG(mode):
                shutil.copyfile(s, t, follow_symlinks=False)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(s), t)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                os.mknod(t, mode, st.st_rdev)
            else:
                continue            # sockets are not part of a layer
            copy_attrs(s, t, st)
            os.utime(t, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    walk(src, dst)
    for path, st in dirs:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    root = os.lstat(src)
    os.utime(dst, ns=(root.st_atime_ns, root.st_mtime_ns))


class _Paused:
    """docker commit's pause: the container's freezer cgroup (v1 ``freezer.state`` or v2
    ``cgroup.freeze``) frozen while its layer is copied -- only a cgroup of its own: freezing one
    that holds us (ours or an ancestor) would freeze this process too."""

    def __init__(self, pid: int | None):
        self.files: list[tuple[str, str, str]] = []
        if pid is None:
            return
        from builder.sandbox.enter import cgroup_procs_files

        try:
            theirs = [os.path.dirname(p) for p in cgroup_procs_files(pid)]
            ours = [os.path.dirname(p) for p in cgroup_procs_files(os.getpid())]
        except OSError:
            return
        for directory in theirs:
            if any(mine == directory or mine.startswith(directory + "/") for mine in ours):
                continue
            if os.path.exists(os.path.join(directory, "freezer.state")):
                self.files.append((os.path.join(directory, "freezer.state"), "FROZEN", "THAWED"))
            elif os.path.exists(os.path.join(directory, "cgroup.freeze")):
                self.files.append((os.path.join(directory, "cgroup.freeze"), "1", "0"))

    def __enter__(self):
        for path, frozen, _ in self.files:
            with open(path, "w") as fh:
                fh.write(frozen)
        for path, frozen, _ in self.files:
            state = path if path.endswith("freezer.state") else os.path.join(os.path.dirname(path), "cgroup.events")
            want = "FROZEN" if frozen == "FROZEN" else "frozen 1"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with open(state) as fh:
                    if want in fh.read():
                        break
                time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        for path, _, thawed in self.files:
            with open(path, "w") as fh:
                fh.write(thawed)


def commit(store, view, image_id: str, *, changes=(), message: str = "", author: str = "",
           pause: bool = True, container_config=None, created_by: str | None = None) -> str:
    """``docker commit``: the container's writable layer as one new layer on top of ``image_id``.

    The config is ``container_config`` (the container's, as it was created; default: the image's)
    edited by ``changes`` (Dockerfile instructions: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
    USER, VOLUME, WORKDIR).  As docker's: the history gains an entry with ``created_by`` (default:
    the container's CMD joined by spaces), ``message`` and ``author``; the image's author is
    ``author``; an unchanged container adds no layer (the entry is then an empty_layer one).
    ``pause`` freezes the container's own freezer cgroup while its layer is copied.
    Returns the new image id.
    """
    from dataclasses import replace

    from ..image.config import History, RootFS, format_timestamp
    from ..images.changes import apply_changes, parse_changes
    from ..images.layers import commit_directory
    from ..images.service import load_config, store_config

    instructions = parse_changes(list(changes))         # bad --change values fail before any work
    base = load_config(store, image_id)
    container = container_config if container_config is not None else base.config
    config = apply_changes(container, instructions)
    tmp = str(store.prepare_snapshot())
    try:
        with _Paused(view.pid if pause else None):
            _copy_tree(view.upper_dir, tmp)
    except BaseException:
        store.abort_snapshot(tmp)
        raise
    diff_id = commit_directory(store, tmp)
    diff_ids = (*base.diff_ids, diff_id) if diff_id else tuple(base.diff_ids)
    created = format_timestamp(time.time_ns())
    history = History(created=created, created_by=" ".join(container.cmd) if created_by is None else created_by,
                      author=author, comment=message, empty_layer=diff_id is None)
    image = replace(base, created=created, author=author, config=config, rootfs=RootFS(diff_ids=diff_ids),
                    history=(*base.history, history))
    return store_config(store, image, diff_ids, meta={"source": "commit"})


__all__ = ["commit"]
