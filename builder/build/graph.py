"""The stage graph: which stages a target needs and what each one waits for.

A stage depends on the stage it is built ``FROM``, on the stages its ``COPY --from`` and
``RUN --mount from=`` name, and (through those names) on images and named build contexts. As in
BuildKit's converter: ``--from`` is never expanded (a variable in it is an error); a number names a
stage by index; a name that is no stage is an image (or a named context); a stage may only copy from
a stage defined before it; a cycle is reported with the stage it starts from; stages the target does
not reach are not built at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..dockerfile import instructions as ins
from ..errors import DockerfileError


@dataclass(frozen=True)
class Source:
    """Where a ``--from`` / ``FROM`` name points: a stage (``index``), or an outside ``name``."""

    kind: str            # "stage" | "external" | "scratch"
    name: str
    index: int = -1


@dataclass(frozen=True)
class StageNode:
    index: int
    base: Source
    uses: tuple          # (instruction, Source) for every COPY --from / RUN --mount from=

    @property
    def stage_deps(self) -> frozenset:
        deps = {src.index for _, src in self.uses if src.kind == "stage"}
        if self.base.kind == "stage":
            deps.add(self.base.index)
        return frozenset(deps)


@dataclass(frozen=True)
class StageGraph:
    nodes: tuple         # StageNode per stage, by index
    target: int
    needed: tuple        # indices the target reaches, in Dockerfile order

    def deps(self, index: int) -> frozenset:
        return self.nodes[index].stage_deps

    def externals(self) -> tuple:
        """Outside names (images, named contexts) the needed stages read, in first-use order."""
        seen: dict[str, None] = {}
        for index in self.needed:
            node = self.nodes[index]
            for src in (node.base, *(s for _, s in node.uses)):
                if src.kind == "external":
                    seen.setdefault(src.name, None)
        return tuple(seen)


def _located(err: DockerfileError, dockerfile: ins.Dockerfile, span) -> DockerfileError:
    err.located(span)
    return err.with_source(dockerfile.filename, dockerfile.tree.source_lines)


def _from_values(instruction) -> list[str]:
    """The raw ``--from`` names an instruction reads from (unexpanded, as BuildKit detects them)."""
    kind = type(instruction)
    if kind is ins.CopyInstruction:
        return [instruction.from_] if instruction.from_ else []
    if kind is ins.RunInstruction and instruction.mounts:
        from ..dockerfile.runmount import csv_fields

        names = []
        for value in instruction.mounts:
            for field in csv_fields(value, "mounts"):
                key, eq, val = field.partition("=")
                if eq and key.strip().lower() == "from" and val:
                    names.append(val)
        return names
    return []


def _triggers(dockerfile: ins.Dockerfile, stage: ins.Stage, base: Source, image_triggers) -> tuple:
    """The ONBUILD triggers a stage will run (its base stage's ONBUILD instructions, or its base
    image's), parsed: a trigger's ``COPY --from`` is a dependency of the stage that runs it."""
    if base.kind == "stage":
        expressions = [i.expression for i in dockerfile.stages[base.index].instructions
                       if type(i) is ins.OnbuildInstruction]
    elif base.kind == "external" and image_triggers is not None:
        expressions = list(image_triggers(base.name))
    else:
        return ()
    if not expressions:
        return ()
    from ..dockerfile.evaluate import parse_onbuild_triggers

    try:
        return parse_onbuild_triggers(expressions, stage.from_.span, dockerfile.filename)
    except DockerfileError:
        return ()       # reported where the stage starts, with the full context


def stage_graph(dockerfile: ins.Dockerfile, base_names: list[str], target_index: int,
                named_contexts=(), image_triggers=None) -> StageGraph:
    """Build the graph. ``base_names[i]`` is stage i's expanded FROM name; ``named_contexts`` the
    names given with ``--build-context`` (they replace a stage or image of the same name);
    ``image_triggers(name)`` the ONBUILD expressions of a base image (() when unknown)."""
    named = {n.lower() for n in named_contexts}
    by_name: dict[str, int] = {}
    nodes = []
    for stage in dockerfile.stages:
        base_name = base_names[stage.index]
        lowered = base_name.lower()
        if lowered in by_name and lowered not in named:
            base = Source("stage", base_name, by_name[lowered])
        elif base_name == "scratch":
            base = Source("scratch", base_name)
        else:
            base = Source("external", base_name)
        if stage.name and stage.name not in named:
            by_name.setdefault(stage.name, stage.index)
        nodes.append(StageNode(stage.index, base, ()))
    # --from may name any stage (later ones too, so that the errors below can be BuildKit's)
    all_names = {}
    for stage in dockerfile.stages:
        if stage.name and stage.name not in named:
            all_names.setdefault(stage.name, stage.index)
    for stage in dockerfile.stages:
        uses = []
        triggers = _triggers(dockerfile, stage, nodes[stage.index].base, image_triggers)
        for instruction in (*triggers, *stage.instructions):
            for value in _from_values(instruction):
                if type(instruction) is ins.CopyInstruction and "$" in value:
                    raise _located(DockerfileError(
                        "variable expansion is not supported for --from, define a new stage with FROM using "
                        "ARG from global scope as a workaround"), dockerfile, instruction.span)
                if value.isdigit() and type(instruction) is ins.CopyInstruction:
                    index = int(value)
                    if index >= len(dockerfile.stages):
                        raise _located(DockerfileError(f"invalid stage index {index}"), dockerfile,
                                       instruction.span)
                    uses.append((instruction, Source("stage", value, index)))
                elif value.lower() in all_names:
                    uses.append((instruction, Source("stage", value, all_names[value.lower()])))
                else:
                    uses.append((instruction, Source("external", value)))
        nodes[stage.index] = StageNode(stage.index, nodes[stage.index].base, tuple(uses))
    _check_cycles(dockerfile, nodes)
    needed = _reachable(nodes, target_index)
    for index in sorted(needed):
        for instruction, src in nodes[index].uses:
            if src.kind == "stage" and src.index >= index and type(instruction) is ins.CopyInstruction:
                current = dockerfile.stages[index].name or f"stage-{index}"
                raise _located(DockerfileError(
                    f"cannot copy from stage {src.name!r}, it needs to be defined before current stage "
                    f"{current!r}".replace("'", '"')), dockerfile, instruction.span)
    return StageGraph(tuple(nodes), target_index, tuple(sorted(needed)))


def _reachable(nodes, target: int) -> set[int]:
    seen: set[int] = set()
    todo = [target]
    while todo:
        index = todo.pop()
        if index in seen:
            continue
        seen.add(index)
        todo.extend(nodes[index].stage_deps)
    return seen


def _check_cycles(dockerfile: ins.Dockerfile, nodes) -> None:
    """BuildKit's ``validateCircularDependency``: depth-first from each stage in order."""
    visited: set[int] = set()

    def visit(index: int, path: list[int], via: list) -> list | None:
        if index in visited:
            return None
        visited.add(index)
        path.append(index)
        node = nodes[index]
        edges = [(src.index, instruction) for instruction, src in node.uses if src.kind == "stage"]
        if node.base.kind == "stage":
            edges.insert(0, (node.base.index, dockerfile.stages[index].from_))
        for dep, instruction in edges:
            if dep in path:
                return via + [instruction]
            found = visit(dep, path, via + [instruction])
            if found is not None:
                return found
        path.pop()
        return None

    for node in nodes:
        chain = visit(node.index, [], [])
        if chain is not None:
            stage = dockerfile.stages[node.index]
            names = " -> ".join(dockerfile.stages[i].name or f"stage-{i}" for i in _cycle_names(nodes, node.index))
            err = DockerfileError(f"circular dependency detected on stage: {stage.name or f'stage-{node.index}'}"
                                  + (f" ({names})" if names else ""))
            raise _located(err, dockerfile, chain[-1].span)


def _cycle_names(nodes, start: int) -> list[int]:
    """The stages of one cycle through ``start`` (for the message), or [] if none is found."""
    def walk(index: int, path: list[int]) -> list[int] | None:
        for dep in sorted(nodes[index].stage_deps):
            if dep == start:
                return path + [start]
            if dep not in path:
                found = walk(dep, path + [dep])
                if found:
                    return found
        return None

    return walk(start, [start]) or []
