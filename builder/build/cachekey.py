"""Cache keys of build steps: ``sha256:<hex>`` strings that can be shared between machines.

A step's key is the sha256 of one canonical JSON document (``key_document``)::

    {"schema": "pybuild.cachekey.v1",
     "parent": <the previous step's key, or the stage's base key>,
     "instruction": <the expanded instruction, non-semantic fields blanked>,
     "args": {<build arg>: <value>, ...},      # only the args the step uses
     "inputs": {<name>: "sha256:...", ...}}    # content digests the caller computed (COPY sources...)

* The base of a stage is keyed by the image's ID (config digest) or its manifest digest, never by
  a tag (``base_key``); ``scratch`` by its platform; a stage built FROM another stage starts from
  that stage's last key.
* The instruction is the typed, *expanded* one (ENV/LABEL/COPY... words substituted, ARG values
  resolved, RUN mounts parsed): what the step does, not how it was written. Source locations,
  comments, the legacy ``ENV k v`` spelling and which flags were spelled out are left out.
* ``args``: the build args the step looked up while being expanded, and for RUN every arg in scope
  (they are the command's environment, BuildKit's ``|N K=V`` prefix). A build arg given but not
  declared, or declared and unused, changes no key; proxy args never do (as in BuildKit).
* ``inputs``: digests of what the step reads besides its parent -- for COPY/ADD the content of
  each source (the caller hashes it; only ``sha256:`` digests are accepted: no xxhash, no mtimes,
  no host paths may enter a key).

The chain through ``parent`` carries everything earlier steps did (ENV, USER, WORKDIR, SHELL):
changing any step changes the keys of all steps after it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields, is_dataclass

from ..image.platform import Platform

__all__ = ["KEY_SCHEMA", "canonical_instruction", "base_key", "scratch_key", "key_document", "step_key",
           "plan_key", "stage_keys", "digest_of_document"]

KEY_SCHEMA = "pybuild.cachekey.v1"

# Fields that do not change what an instruction does.
_NON_SEMANTIC = frozenset((
    "node",                    # the syntax node: source lines, columns, original text
    "doc",                     # ARG doc comment
    "legacy",                  # ENV/LABEL written "key value"
    "flags_used",              # which RUN flags were spelled out (their values are kept)
    "stage_name_as_written",   # FROM ... AS Name (the lower-cased name is kept)
))
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}\Z")


def _canonical(value):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if is_dataclass(value) and not isinstance(value, type):
        out = {"kind": type(value).__name__}
        for f in fields(value):
            if f.name in _NON_SEMANTIC or not f.compare:
                continue
            out[f.name] = _canonical(getattr(value, f.name))
        return out
    if isinstance(value, (tuple, list)):
        return [_canonical(v) for v in value]
    if isinstance(value, (frozenset, set)):
        items = [_canonical(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    raise TypeError(f"cannot put a {type(value).__name__} in a cache key")


def canonical_instruction(instruction) -> dict:
    """The expanded instruction as JSON-able data, without its source location or spelling."""
    return _canonical(instruction)


def digest_of_document(document: Mapping) -> str:
    """``sha256:`` of the canonical JSON of ``document`` (sorted keys, no spaces, ASCII)."""
    data = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(data.encode("ascii")).hexdigest()


def _check_digest(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise ValueError(f"{what} must be a sha256 digest (sha256:<64 hex>), not {value!r}")
    return value


def base_key(digest: str, *, kind: str = "image") -> str:
    """The key a stage starts from when built on an image: its ID (``kind="image"``, the config
    digest) or, once pulled, its manifest digest (``kind="manifest"``). Never a tag."""
    if kind not in ("image", "manifest"):
        raise ValueError(f"base key kind must be 'image' or 'manifest', not {kind!r}")
    if isinstance(digest, str) and not digest.startswith("sha256:"):
        raise ValueError(f"a base image is keyed by its digest, never by a tag or name: {digest!r}")
    _check_digest(digest, "a base image digest")
    return digest_of_document({"schema": KEY_SCHEMA, "base": {kind: digest}})


def scratch_key(platform: Platform | str) -> str:
    """The key of ``FROM scratch`` (BuildKit's empty image depends only on the platform)."""
    text = platform if isinstance(platform, str) else platform.format_all()
    return digest_of_document({"schema": KEY_SCHEMA, "base": {"scratch": text}})


def key_document(parent: str, instruction, *, args: Mapping | Iterable = (), inputs: Mapping | None = None) -> dict:
    """The document ``step_key`` hashes (useful to see why two keys differ)."""
    _check_digest(parent, "the parent key")
    used = dict(args.items() if isinstance(args, Mapping) else args)
    checked = {}
    for name, digest in sorted((inputs or {}).items()):
        if not isinstance(name, str) or not name:
            raise ValueError(f"input names must be non-empty strings, not {name!r}")
        checked[name] = _check_digest(digest, f"input {name!r}")
    return {"schema": KEY_SCHEMA, "parent": parent, "instruction": canonical_instruction(instruction),
            "args": {str(k): v for k, v in sorted(used.items())}, "inputs": checked}


def step_key(parent: str, instruction, *, args: Mapping | Iterable = (), inputs: Mapping | None = None) -> str:
    """The key of one step: parent key, expanded instruction, the build args it uses, input digests."""
    return digest_of_document(key_document(parent, instruction, args=args, inputs=inputs))


def plan_key(parent: str, step, *, inputs: Mapping | None = None) -> str:
    """``step_key`` of a planned step (``configstep.StepPlan``): its instruction and ``key_args``."""
    return step_key(parent, step.instruction, args=step.key_args, inputs=inputs)


def stage_keys(parent: str, plan, inputs: Callable | None = None) -> tuple:
    """The key after each step of a ``configstep.StagePlan``, starting from ``parent`` (the base key
    or the parent stage's last key). ``inputs(step)`` gives a step's input digests."""
    keys = []
    key = parent
    for step in plan.steps:
        key = plan_key(key, step, inputs=inputs(step) if inputs is not None else None)
        keys.append(key)
    return tuple(keys)
