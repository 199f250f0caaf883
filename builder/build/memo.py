"""The no-op rebuild: answer ``pybuild build`` from a memo of the last identical build.

A CI machine rebuilds the same Dockerfile with the same context again and again; BuildKit answers
from a warm daemon in a few tens of ms. Without a daemon, even the cheapest full build (parse cache,
planning, cache keys) costs the imports. So each successful build leaves a memo: the request (the
Dockerfile's digest, the context directory, build args, target, labels, options), the image it
produced, the image ID each base name resolved to, and the ``lstat`` of every context path it read
(directories included, so added or removed files are seen). The next identical request checks those
— a handful of stats and two small JSON reads — and, when nothing changed, names the same image
again without importing the build engine at all. Anything it cannot vouch for falls back to a full
build (which uses the build cache as usual). This module imports only the standard library.

Whatever later decides what a build reads (``.dockerignore`` files, named contexts, ``COPY --from``
images, remote contexts) must add itself to the reads or disable the memo for that build. The
ignore files are in the request key (their bytes, or their absence), so editing ``.dockerignore``
is a new request; a file they exclude is never read by the build, so it is not among the reads and
changing it leaves the memo valid. Only a local directory context is memoised (``-``, git and URL
contexts are fetched again each time).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

MEMO_VERSION = 1


def _code_version() -> str:
    """Memos die with the code that wrote them (the build engine's sources, by size and mtime)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parts = []
    for sub in ("build", "dockerfile", "images", "image", "fs"):
        directory = os.path.join(here, sub)
        try:
            names = sorted(n for n in os.listdir(directory) if n.endswith(".py"))
        except OSError:
            continue
        for name in names:
            st = os.stat(os.path.join(directory, name))
            parts.append(f"{sub}/{name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _ignore_files(dockerfile_path: str, context: str) -> list:
    """The bytes (or absence) of every ignore file that could apply: ``<Dockerfile>.dockerignore``
    (``Dockerfile.dockerignore`` also for the lowercase ``dockerfile`` fallback) and ``.dockerignore``."""
    paths = [dockerfile_path + ".dockerignore"]
    if os.path.basename(dockerfile_path) == "dockerfile":
        paths.append(os.path.join(os.path.dirname(dockerfile_path), "Dockerfile.dockerignore"))
    paths.append(os.path.join(context, ".dockerignore"))
    out = []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                out.append(hashlib.sha256(fh.read()).hexdigest())
        except OSError:
            out.append(None)
    return out


def request_key(*, dockerfile_path: str, dockerfile_digest: str, context: str, build_args: dict, target: str,
                labels: dict, network: str) -> str:
    document = {"v": MEMO_VERSION, "code": _code_version(), "dockerfile": os.path.abspath(dockerfile_path),
                "digest": dockerfile_digest, "context": os.path.realpath(context),
                "ignore": _ignore_files(dockerfile_path, context),
                "args": sorted(build_args.items()), "target": target, "labels": sorted(labels.items()),
                "network": network, "python": sys.version_info[:2]}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=list).encode()).hexdigest()


def stat_entry(path: str) -> list:
    st = os.lstat(path)
    return [path, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def memo_path(root: str, key: str) -> str:
    return os.path.join(root, "cache", "builds", f"{key}.json")


def write_memo(root: str, key: str, *, image_id: str, bases: dict, reads: list) -> None:
    path = memo_path(root, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"image_id": image_id, "bases": bases, "reads": reads}, fh)
    os.replace(tmp, path)


def _tags(root: str) -> dict:
    try:
        with open(os.path.join(root, "tags.json"), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data.get("tags", data) if isinstance(data, dict) else {}


def check_memo(root: str, key: str) -> str | None:
    """The image ID of the memoised build when nothing it depended on changed, else None."""
    try:
        with open(memo_path(root, key), encoding="utf-8") as fh:
            memo = json.load(fh)
        image_id = memo["image_id"]
        if not os.path.exists(os.path.join(root, "images", image_id.split(":", 1)[1] + ".json")):
            return None
        tags = _tags(root)
        for name, recorded in memo["bases"].items():
            if tags.get(name) != recorded:
                return None
        for entry in memo["reads"]:
            if stat_entry(entry[0]) != entry:
                return None
        return image_id
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


# ----------------------------------------------------------------------------------------------
# The fast path of the command line


def _parse(argv: list[str]) -> dict | None:
    """The simple forms of ``[--root R] build [-t T]... [-f F] [--build-arg K=V]... [-q] [--progress P] CTX``."""
    opts = {"root": None, "tags": [], "file": None, "args": {}, "quiet": False, "context": None}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--root" and i + 1 < len(argv):
            opts["root"] = argv[i + 1]
            i += 2
        elif arg.startswith("--root="):
            opts["root"] = arg.split("=", 1)[1]
            i += 1
        elif arg == "build" and opts.get("_build") is None:
            opts["_build"] = True
            i += 1
        else:
            break
    if not opts.pop("_build", None):
        return None
    rest = argv[i:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        value = rest[i + 1] if i + 1 < len(rest) else None
        if arg in ("-t", "--tag") and value is not None:
            opts["tags"].append(value)
            i += 2
        elif arg in ("-f", "--file") and value is not None:
            opts["file"] = value
            i += 2
        elif arg == "--build-arg" and value is not None and "=" in value:
            k, _, v = value.partition("=")
            opts["args"][k] = v
            i += 2
        elif arg in ("-q", "--quiet"):
            opts["quiet"] = True
            i += 1
        elif arg == "--progress" and value in ("auto", "plain", "tty", "quiet", "rawjson"):
            opts["progress"] = value
            i += 2
        elif not arg.startswith("-") and opts["context"] is None:
            opts["context"] = arg
            i += 1
        else:
            return None  # anything else: the full command line handles it
    if opts["context"] is None:
        opts["context"] = "."
    return opts


def fast_build(argv: list[str]) -> int | None:
    """Exit status when the memo answers this ``pybuild build``; None to run the full build."""
    if os.environ.get("PYBUILD_NO_MEMO") == "1" or os.environ.get("PYBUILD_DEBUG") == "1":
        return None
    opts = _parse(argv)
    if opts is None or not opts["tags"] and not opts["quiet"]:
        return None
    from cache.rootdir import default_root_path  # only os: the cache package loads its names lazily

    root = os.path.abspath(os.path.expanduser(opts["root"])) if opts["root"] else default_root_path()
    context = opts["context"]
    if not os.path.isdir(context) or opts["file"] == "-" or "://" in (opts["file"] or ""):
        return None  # stdin, a git or URL context or Dockerfile: read again by the full build
    path = opts["file"] or os.path.join(context, "Dockerfile")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    args = dict(opts["args"])
    if "SOURCE_DATE_EPOCH" not in args and os.environ.get("SOURCE_DATE_EPOCH"):
        args["SOURCE_DATE_EPOCH"] = os.environ["SOURCE_DATE_EPOCH"]
    key = request_key(dockerfile_path=path, dockerfile_digest=hashlib.sha256(data).hexdigest(), context=context,
                      build_args=args, target="", labels={}, network="default")
    image_id = check_memo(root, key)
    if image_id is None:
        return None
    tags = _tags(root)
    names = [_normal(t) for t in opts["tags"]]
    if any(n is None or tags.get(n) != image_id for n in names):
        return None  # a tag must move: the full path does it under the store's locks
    if opts["quiet"]:
        sys.stdout.write(image_id + "\n")
    else:
        if opts.get("progress") not in ("quiet",):
            sys.stderr.write("#0 CACHED (nothing changed since the last identical build)\n")
        for name in names:
            sys.stderr.write(f"naming to {name} done\n")
        sys.stderr.write(f"writing image {image_id} done\n")
    return 0


def _normal(name: str) -> str | None:
    """Docker's normalisation for the plain cases (``app``, ``app:1``, ``ns/app:1``, ``host:5000/app:1``)."""
    if "@" in name or not name:
        return None
    repo, tag = name, "latest"
    if ":" in name.rsplit("/", 1)[-1]:
        repo, tag = name.rsplit(":", 1)
    if not repo or repo != repo.lower() or not tag:
        return None
    first = repo.split("/", 1)[0]
    if "/" in repo and ("." in first or ":" in first or first == "localhost"):
        full = repo
    elif "/" in repo:
        full = "docker.io/" + repo
    else:
        full = "docker.io/library/" + repo
    return f"{full}:{tag}"
