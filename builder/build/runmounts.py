"""``RUN --mount``: typed mounts (``dockerfile.runmount.Mount``) turned into sandbox mounts.

BuildKit's semantics (dockerfile2llb ``convert_runmount.go``/``convert_secrets.go``/``convert_ssh.go``
and the solver's mount manager):

* ``bind``: ``source`` (default the root) of the build context, a named context, a stage or an image
  (``from``); read-only by default; ``rw`` writes land in a throwaway upper dir.  The context's
  .dockerignore'd paths are invisible (whited out in the sandbox's view).  The content digest of
  what is mounted is part of the step's cache key.
* ``cache``: ``id`` (default: the cleaned target) names a directory kept in the store across builds
  (``cache.cachemounts``), seeded from ``from``/``source`` and created ``mode``/``uid``/``gid`` when it
  is new; ``sharing`` shared | private | locked.  Its content never enters a cache key or a layer.
* ``tmpfs``: ``size``.
* ``secret``: ``id`` (or ``source``, or the target's base name) from ``--secret``; a file at
  ``target`` (default ``/run/secrets/<id>``, none when only ``env`` is asked), mode 0400 unless
  given; a missing secret is an error only with ``required``.
* ``ssh``: ``id`` (default ``default``) from ``--ssh``: an agent socket at ``target`` (default
  ``/run/buildkit/ssh_agent.<N>``), ``SSH_AUTH_SOCK`` set to the first one unless the stage sets it.

Relative targets are joined to the WORKDIR (bind, cache, tmpfs) or to ``/`` (secret, ssh: BuildKit
passes those targets as they are).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import stat
from contextlib import ExitStack
from dataclasses import dataclass, field

from ..errors import PybuildError

MAX_SECRET_SIZE = 500 * 1024      # buildx/BuildKit's limit


class MountError(PybuildError):
    """A RUN --mount that cannot be set up (missing source, missing required secret ...)."""


@dataclass(frozen=True)
class SecretSource:
    """``--secret id=ID[,src=FILE|,env=VAR]``: where a secret's value comes from (read when used)."""

    id: str
    file: str = ""
    env: str = ""

    def read(self) -> bytes:
        if self.env:
            return os.environ.get(self.env, "").encode("utf-8", "surrogateescape")
        with open(self.file, "rb") as fh:
            return fh.read(MAX_SECRET_SIZE + 1)[:MAX_SECRET_SIZE + 1]


@dataclass(frozen=True)
class SSHSource:
    """``--ssh ID[=SOCKET,...]``: agent sockets forwarded under ``id``."""

    id: str
    sockets: tuple[str, ...] = ()


@dataclass
class PreparedMounts:
    """What the sandbox gets for one RUN: its mounts, the secret values (by id, never written to
    disk) and environment additions (secret ``env=``, ``SSH_AUTH_SOCK``)."""

    binds: list = field(default_factory=list)
    tmpfs: list = field(default_factory=list)
    overlays: list = field(default_factory=list)
    secrets: list = field(default_factory=list)
    secret_values: dict = field(default_factory=dict)
    env: list = field(default_factory=list)


# -- parsing the build's --secret / --ssh flags --------------------------------------------------------------


def parse_secret_flag(value: str) -> SecretSource:
    """buildx's ``--secret``: ``id=x[,src|source=FILE][,env=VAR][,type=file|env]``; with neither
    source, the env var named like the id if it is set, else the file named like the id (BuildKit's
    secretsprovider).  The file must exist and be at most 500 KiB."""
    from ..dockerfile.runmount import csv_fields
    from ..errors import UsageError

    try:
        fields = csv_fields(value, "secret")
    except PybuildError as err:
        raise UsageError(f"invalid --secret {value!r}: {err.message}") from None
    ident, path, env, kind = "", "", "", ""
    for item in fields:
        key, eq, val = item.partition("=")
        key = key.lower()
        if not eq:
            raise UsageError(f"invalid field '{item}' must be a key=value pair")
        if key == "type":
            if val not in ("file", "env"):
                raise UsageError(f"unsupported secret type {val!r}")
            kind = val
        elif key == "id":
            ident = val
        elif key in ("source", "src"):
            path = val
        elif key == "env":
            env = val
        else:
            raise UsageError(f"unexpected key '{key}' in '{item}'")
    if kind == "env" and not env:
        env, path = path, ""
    if not ident:
        raise UsageError("secret missing ID")
    if not env and not path:
        if ident in os.environ:
            env = ident
        else:
            path = ident
    if path:
        try:
            size = os.stat(path).st_size
        except OSError as err:
            raise UsageError(f"failed to stat {path}: {err.strerror.lower()}") from None
        if size > MAX_SECRET_SIZE:
            raise UsageError(f"secret {ident} too big. max size 500KB")
        path = os.path.abspath(path)
    return SecretSource(ident, path, env)


def parse_ssh_flag(value: str) -> SSHSource:
    """buildx's ``--ssh default`` (``$SSH_AUTH_SOCK``) or ``--ssh ID=SOCKET[,SOCKET]``."""
    from ..errors import UsageError

    ident, eq, rest = value.partition("=")
    ident = ident or "default"
    paths = tuple(p for p in rest.split(",") if p) if eq else ()
    if not paths:
        sock = os.environ.get("SSH_AUTH_SOCK", "")
        if not sock:
            raise UsageError("invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set")
        paths = (sock,)
    for path in paths:
        try:
            st = os.stat(path)
        except OSError as err:
            raise UsageError(f"failed to stat {path}: {err.strerror.lower()}") from None
        if not stat.S_ISSOCK(st.st_mode):
            raise UsageError(f"--ssh {ident}: {path} is not an agent socket (key files are not supported; "
                             "load the key into an ssh-agent)")
    return SSHSource(ident, tuple(os.path.abspath(p) for p in paths))


# -- mount targets and ids ------------------------------------------------------------------------------------


def mount_target(mount, workdir: str) -> str:
    """The absolute target of a bind/cache/tmpfs mount (relative: joined to the WORKDIR)."""
    target = mount.target
    if not posixpath.isabs(posixpath.normpath(target or ".")):
        target = posixpath.join("/", workdir or "/", target)
    target = posixpath.normpath(target)
    if target in ("/", "//"):
        raise MountError(f'invalid mount target "{target}"')
    return target


def secret_id(mount) -> str:
    ident = mount.source or mount.cache_id
    if not ident:
        ident = posixpath.basename(mount.target.rstrip("/"))
    return ident


def secret_target(mount) -> str:
    """The secret's file path inside the RUN, or "" when it is exposed as an env var only."""
    if mount.env is not None and not mount.target:
        return ""
    target = mount.target or "/run/secrets/" + posixpath.basename(secret_id(mount))
    return posixpath.normpath(posixpath.join("/", target))


def ssh_targets(mounts) -> list[str]:
    out = []
    for i, m in enumerate(m for m in mounts if m.type == "ssh"):
        out.append(posixpath.normpath(posixpath.join("/", m.target)) if m.target else f"/run/buildkit/ssh_agent.{i}")
    return out


# -- source trees -----------------------------------------------------------------------------------------


def _tree(sources, name: str):
    if sources is None:
        raise MountError("RUN --mount needs the build's sources")
    try:
        return sources.tree(name)
    except MountError:
        raise
    except PybuildError as err:
        raise MountError(err.message) from None


def _resolved(tree, source: str, what: str) -> tuple[str, os.stat_result]:
    from .sources import resolve

    rel = resolve(tree, source.strip("/")) if source.strip("/") else ""
    try:
        st = tree.lstat(rel)
    except (FileNotFoundError, NotADirectoryError):
        raise MountError(f'failed to compute cache key: "/{source.strip("/")}" not found in the {what}') from None
    return rel, st


def _store_layers(store, tree) -> list[str] | None:
    """The layer hexes of a tree made of store snapshots (a stage or an image), else None."""
    lowers = getattr(tree, "lower_dirs", None)
    if lowers is None or store is None:
        return None
    base = os.path.realpath(str(store.layout.layers))
    out = []
    for lower in lowers:
        path = os.path.realpath(lower)
        parent, leaf = os.path.split(path)
        if leaf != "diff" or os.path.dirname(parent) != base:
            return None
        out.append(os.path.basename(parent))
    return out


def tree_digest(tree, rel: str, *, store=None, reads: list | None = None) -> str:
    """sha256 of what a mount of ``rel`` in ``tree`` shows: for store layers, their digests (content
    addressed already); otherwise every entry's path, type, mode, size, content digest and link
    target (contents through the stat cache; never mtimes or host paths)."""
    layers = _store_layers(store, tree)
    if layers is not None:
        doc = {"layers": layers, "path": rel}
    else:
        from .context import StatCache

        cache = StatCache(store.root if store is not None else None)
        entries: list = []
        _walk(tree, rel, "", cache, entries, reads)
        cache.save()
        doc = {"entries": entries}
    data = json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=True).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _walk(tree, rel: str, shown: str, cache, out: list, reads: list | None) -> None:
    st = tree.lstat(rel)
    if reads is not None and hasattr(tree, "root"):
        path = tree.host_path(rel)
        reads.append([path, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns])
    mode = st.st_mode
    uid, gid = tree.owner(st) if hasattr(tree, "owner") else (st.st_uid, st.st_gid)
    if stat.S_ISLNK(mode):
        out.append([shown, "link", stat.S_IMODE(mode), uid, gid, 0, "", tree.readlink(rel)])
    elif stat.S_ISDIR(mode):
        out.append([shown, "dir", stat.S_IMODE(mode), uid, gid, 0, "", ""])
        for name in tree.listdir(rel):
            _walk(tree, f"{rel}/{name}" if rel else name, f"{shown}/{name}" if shown else name, cache, out, reads)
    elif stat.S_ISREG(mode):
        out.append([shown, "file", stat.S_IMODE(mode), uid, gid, st.st_size, cache.digest(tree.host_path(rel), st), ""])
    else:
        out.append([shown, "special", stat.S_IMODE(mode), uid, gid, 0, "", str(st.st_rdev)])


def hidden_paths(tree, rel: str) -> tuple[str, ...]:
    """Paths under ``rel`` of a context directory that its .dockerignore hides (whiteouts for the view)."""
    ignore = getattr(tree, "ignore", None)
    root = getattr(tree, "root", None)
    if not ignore or root is None:
        return ()
    out: list[str] = []

    def walk(sub: str) -> None:
        path = os.path.join(root, *sub.split("/")) if sub else root
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except (NotADirectoryError, FileNotFoundError):
            return
        visible = set(tree.listdir(sub))
        for entry in entries:
            child = f"{sub}/{entry.name}" if sub else entry.name
            if entry.name not in visible:
                out.append(child)
            elif entry.is_dir(follow_symlinks=False):
                walk(child)

    walk(rel)
    return tuple(out)


def bind_inputs(mounts, *, sources, store, reads: list | None = None) -> dict[str, str]:
    """Cache-key inputs of a RUN's mounts: the content digest of every bind mount's source
    (cache, tmpfs, secret and ssh mounts add nothing: their content is not part of a step's identity)."""
    inputs = {}
    for i, m in enumerate(mounts):
        if m.type != "bind":
            continue
        tree = _tree(sources, m.from_)
        rel, _ = _resolved(tree, m.source, tree.description)
        inputs[f"mount{i}"] = tree_digest(tree, rel, store=store, reads=reads if not m.from_ else None)
    return inputs


# -- setting the mounts up --------------------------------------------------------------------------------


def prepare(mounts, *, workdir: str, env: tuple, sources, store, secrets: dict, ssh: dict,
            stack: ExitStack, cancelled=lambda: False) -> PreparedMounts:
    """Sandbox mounts for ``mounts``; resources (cache-mount locks, agent proxies) are entered on
    ``stack`` and held until it closes (after the RUN)."""
    from ..sandbox.spec import BindMount, OverlayMount, SecretMount, TmpfsMount

    out = PreparedMounts()
    ssh_paths = ssh_targets(mounts)
    ssh_index = 0
    for m in mounts:
        if m.type == "bind":
            target = mount_target(m, workdir)
            tree = _tree(sources, m.from_)
            rel, st = _resolved(tree, m.source, tree.description)
            is_dir = stat.S_ISDIR(st.st_mode)
            lowers = getattr(tree, "lower_dirs", None)
            if lowers is None:
                lowers = (tree.root,)
            if not lowers:
                raise MountError(f"cannot mount {tree.description} at {target}: it is empty")
            out.overlays.append(OverlayMount(tuple(lowers), target, subpath=rel, readonly=m.readonly,
                                             hidden=hidden_paths(tree, rel), is_dir=is_dir))
        elif m.type == "cache":
            target = mount_target(m, workdir)
            out.binds.append(BindMount(_cache_dir(m, target, sources, store, stack, cancelled), target,
                                       readonly=m.readonly))
        elif m.type == "tmpfs":
            out.tmpfs.append(TmpfsMount(mount_target(m, workdir), size=m.size_limit, readonly=m.readonly))
        elif m.type == "secret":
            ident = secret_id(m)
            source = secrets.get(ident)
            if source is None:
                if m.required:
                    raise MountError(f"secret {ident}: not found (pass it with --secret id={ident},src=FILE or "
                                     f"--secret id={ident},env=VAR)")
                continue
            try:
                value = source.read()
            except OSError as err:
                raise MountError(f"secret {ident}: cannot read {source.file}: {err.strerror}") from None
            if len(value) > MAX_SECRET_SIZE:
                raise MountError(f"secret {ident} too big. max size 500KB")
            out.secret_values[ident] = value
            target = secret_target(m)
            mode = 0o400 if m.mode is None else m.mode
            if target:
                out.secrets.append(SecretMount(ident, target, "", m.uid or 0, m.gid or 0, mode))
            if m.env:
                out.secrets.append(SecretMount(ident, "", m.env))
        elif m.type == "ssh":
            ident = m.cache_id or "default"
            target = ssh_paths[ssh_index]
            ssh_index += 1
            source = ssh.get(ident)
            if source is None:
                if m.required:
                    raise MountError(f'no SSH key "{ident}" forwarded from the client (pass it with --ssh {ident})')
                continue
            from ..sandbox.agentproxy import AgentProxy

            mode = 0o600 if m.mode is None else m.mode
            home = str(store.prepare_snapshot())           # owned by this build: swept if it is killed
            stack.callback(store.abort_snapshot, home)
            proxy = stack.enter_context(AgentProxy(source.sockets, mode=mode, uid=m.uid or 0, gid=m.gid or 0,
                                                   directory=home))
            out.binds.append(BindMount(proxy.path, target, readonly=False))
    if ssh_paths and not any(item.startswith("SSH_AUTH_SOCK=") for item in env):
        out.env.append(f"SSH_AUTH_SOCK={ssh_paths[0]}")
    return out


def _cache_dir(m, target: str, sources, store, stack: ExitStack, cancelled) -> str:
    from cache.cachemounts import cache_key

    cache_id = m.cache_id or target
    base, seed = "", None
    if m.from_ or m.source.strip("/") or m.uid is not None or m.gid is not None or m.mode is not None:
        doc: dict = {"mode": m.mode, "uid": m.uid, "gid": m.gid}
        if m.from_:
            tree = _tree(sources, m.from_)
            rel, _ = _resolved(tree, m.source, tree.description)
            doc["from"] = tree_digest(tree, rel, store=store)

            def seed(path: str, tree=tree, rel=rel) -> None:
                copy_tree(tree, rel, path)
        else:
            doc["source"] = m.source.strip("/")
        base = "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    mode = 0o755 if m.mode is None else m.mode
    return stack.enter_context(store.cache_mounts.acquire(
        cache_key(cache_id, base), m.sharing or "shared", display_id=cache_id, mode=mode, uid=m.uid or 0,
        gid=m.gid or 0, seed=seed, cancelled=cancelled))


def copy_tree(tree, rel: str, dest: str) -> None:
    """Copy the tree's ``rel`` (a directory's contents) into the existing directory ``dest``."""
    import shutil

    st = tree.lstat(rel)
    if not stat.S_ISDIR(st.st_mode):
        return
    for name in tree.listdir(rel):
        child = f"{rel}/{name}" if rel else name
        cst = tree.lstat(child)
        target = os.path.join(dest, name)
        uid, gid = tree.owner(cst) if hasattr(tree, "owner") else (cst.st_uid, cst.st_gid)
        if stat.S_ISDIR(cst.st_mode):
            os.mkdir(target, 0o700)
            copy_tree(tree, child, target)
        elif stat.S_ISLNK(cst.st_mode):
            os.symlink(tree.readlink(child), target)
        elif stat.S_ISREG(cst.st_mode):
            shutil.copyfile(tree.host_path(child), target, follow_symlinks=False)
        else:
            continue
        os.lchown(target, uid, gid)
        if not stat.S_ISLNK(cst.st_mode):
            os.chmod(target, stat.S_IMODE(cst.st_mode))
        os.utime(target, ns=(cst.st_atime_ns, cst.st_mtime_ns), follow_symlinks=False)


__all__ = ["MountError", "SecretSource", "SSHSource", "PreparedMounts", "parse_secret_flag", "parse_ssh_flag",
           "mount_target", "secret_id", "secret_target", "ssh_targets", "tree_digest", "hidden_paths",
           "bind_inputs", "prepare", "copy_tree"]
