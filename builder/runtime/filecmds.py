"""``cp``, ``commit`` and ``export`` of the CLI: find the container, describe where its files are
(``files.ContainerFiles``), and call ``files``."""

from __future__ import annotations

import os
import sys

from .containers import ContainerStore
from .errors import ContainerError
from .lifecycle import monitor_alive


def container_files(root, store: ContainerStore, cid: str):
    from .files import ContainerFiles, FileMount
    from .runspec import lower_dirs

    config, state = store.config(cid), store.state(cid)
    running = state.status == "running" and monitor_alive(state)
    mounts = tuple(FileMount(m.source, m.destination, m.readonly) for m in config.mounts
                   if m.type in ("bind", "volume"))
    return ContainerFiles(lower_dirs(root, config), store.path(cid, "upper"), store.path(cid, "work"),
                          pid=state.pid if running else None, name=config.name,
                          start_time=state.pid_start if running else None, mounts=mounts)


def split_cp_arg(arg: str) -> tuple[str, str]:
    """docker's splitCpArg: ``CONTAINER:PATH`` unless the argument is an absolute or ./ path."""
    if arg.startswith("/") or arg.startswith(".") or ":" not in arg:
        return "", arg
    container, _, path = arg.partition(":")
    return container, path


def copy(root, store: ContainerStore, source: str, dest: str, *, archive: bool = False,
         follow_link: bool = False) -> None:
    from .files import copy_in, copy_out

    src_container, src_path = split_cp_arg(source)
    dst_container, dst_path = split_cp_arg(dest)
    if src_container and dst_container:
        raise ContainerError("copying between containers is not supported")
    if not src_container and not dst_container:
        raise ContainerError("must specify at least one container source")
    if src_container:
        cid = store.resolve(src_container)
        copy_out(container_files(root, store, cid), src_path, dst_path, follow_link=follow_link,
                 stdout=sys.stdout.buffer)
    else:
        cid = store.resolve(dst_container)
        copy_in(container_files(root, store, cid), src_path, dst_path, archive=archive,
                user=store.config(cid).user, follow_link=follow_link, stdin=sys.stdin.buffer)


def commit(root, store: ContainerStore, container: str, repository: str | None, *, author: str = "",
           changes=(), message: str = "", pause: bool = True) -> str:
    from dataclasses import replace

    from cache import Store

    from ..images.service import load_config
    from .files import commit as commit_files

    cid = store.resolve(container)
    config = store.config(cid)
    images = Store.open(root)
    base = load_config(images, config.image_id).config
    container_config = replace(base, env=tuple(config.env), cmd=tuple(config.cmd),
                               entrypoint=tuple(config.entrypoint), user=config.user,
                               working_dir=config.working_dir, labels=dict(config.labels),
                               exposed_ports=tuple(config.exposed_ports))
    image_id = commit_files(images, container_files(root, store, cid), config.image_id, changes=changes,
                            message=message, author=author, pause=pause, container_config=container_config)
    if repository:
        from ..image.reference import parse_normalized_named

        ref = parse_normalized_named(repository)
        name = str(ref) if ref.tag or ref.digest else f"{ref}:latest"
        images.set_tag(name, image_id)
    return image_id


def export(root, store: ContainerStore, container: str, output: str | None) -> None:
    from .files import export as export_files

    cid = store.resolve(container)
    if output is None:
        if os.isatty(sys.stdout.fileno()):
            raise ContainerError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        export_files(container_files(root, store, cid), sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    from ..fs.atomic import write_atomically

    write_atomically(output, lambda fh: export_files(container_files(root, store, cid), fh), durable=False)


__all__ = ["copy", "commit", "export", "split_cp_arg", "container_files"]
