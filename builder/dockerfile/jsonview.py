"""The ``pybuild parse --format json`` view of a typed Dockerfile (schema in the README)."""

from __future__ import annotations

import dataclasses

from .instructions import Dockerfile, Instruction, Stage


def _value(value):
    if dataclasses.is_dataclass(value):
        return {f.name.rstrip("_"): _value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list, frozenset)):
        items = sorted(value) if isinstance(value, frozenset) else value
        return [_value(v) for v in items]
    return value


def instruction_to_json(instruction: Instruction) -> dict:
    out = {"instruction": instruction.keyword, "line": instruction.node.start_line,
           "end_line": instruction.node.end_line, "original": instruction.original}
    for f in dataclasses.fields(instruction):
        if f.name != "node":
            out[f.name.rstrip("_")] = _value(getattr(instruction, f.name))
    return out


def stage_to_json(stage: Stage) -> dict:
    return {"index": stage.index, "name": stage.name or None, "display_name": stage.display_name,
            "base_name": stage.base_name, "platform": stage.platform or None,
            "from": instruction_to_json(stage.from_),
            "instructions": [instruction_to_json(i) for i in stage.instructions]}


def dockerfile_to_json(dockerfile: Dockerfile) -> dict:
    return {
        "file": dockerfile.filename,
        "syntax": dockerfile.syntax,
        "frontend": _value(dockerfile.frontend),
        "escape": dockerfile.escape,
        "directives": [{"name": n, "value": v, "line": line} for n, v, line in dockerfile.directives],
        "meta_args": [instruction_to_json(a) for a in dockerfile.meta_args],
        "stages": [stage_to_json(s) for s in dockerfile.stages],
        "warnings": [{"message": m, "line": line} for m, line in dockerfile.tree.warnings],
    }
