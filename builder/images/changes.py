"""Metadata instructions applied to an image config, as BuildKit's dispatchers apply them.

``docker import --change`` / ``docker commit --change`` and the build engine's metadata steps (CMD,
ENV, LABEL, ...) all end up here: a typed, already expanded instruction and a config go in, a new
config comes out. Nothing here touches the filesystem.
"""

from __future__ import annotations

from ..dockerfile import instructions as ins
from ..errors import ImageError
from ..image.canonical import FrozenMap
from ..image.config import ContainerConfig, Healthcheck

DEFAULT_SHELL = ("/bin/sh", "-c")

# What ``docker import/commit --change`` accepts.
CHANGE_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR")


def _shell(config: ContainerConfig) -> tuple:
    return tuple(config.shell) or DEFAULT_SHELL


def _command(config: ContainerConfig, command: tuple | None, prepend_shell: bool) -> tuple:
    if command is None:
        return ()
    if prepend_shell:
        return _shell(config) + tuple(command)
    return tuple(command)


def _set_env(env: tuple, key: str, value: str) -> tuple:
    out = []
    replaced = False
    for entry in env:
        if entry.partition("=")[0] == key:
            if not replaced:
                out.append(f"{key}={value}")
                replaced = True
            continue
        out.append(entry)
    if not replaced:
        out.append(f"{key}={value}")
    return tuple(out)


def _port(spec: str) -> str:
    port, _, proto = spec.partition("/")
    return f"{port}/{(proto or 'tcp').lower()}"


def apply_instruction(config: ContainerConfig, instruction: ins.Instruction, *, cmd_set: bool = False) -> ContainerConfig:
    """The config after one metadata instruction (expanded already).

    ``cmd_set``: whether a CMD came earlier in the same stage; BuildKit's ENTRYPOINT clears an
    inherited CMD, not one set in the stage.
    """
    kind = type(instruction)
    if kind is ins.CmdInstruction:
        return _replace(config, cmd=_command(config, instruction.command, instruction.prepend_shell),
                        args_escaped=True)
    if kind is ins.EntrypointInstruction:
        entrypoint = _command(config, instruction.command, instruction.prepend_shell)
        return _replace(config, entrypoint=entrypoint, cmd=config.cmd if cmd_set else ())
    if kind is ins.EnvInstruction:
        env = tuple(config.env)
        for pair in instruction.pairs:
            env = _set_env(env, pair.key, pair.value)
        return _replace(config, env=env)
    if kind is ins.LabelInstruction:
        labels = dict(config.labels)
        for pair in instruction.pairs:
            labels[pair.key] = pair.value
        return _replace(config, labels=FrozenMap(labels))
    if kind is ins.ExposeInstruction:
        ports = dict.fromkeys(config.exposed_ports)
        for spec in instruction.ports:
            ports[_port(spec)] = None
        return _replace(config, exposed_ports=tuple(sorted(ports)))
    if kind is ins.VolumeInstruction:
        volumes = dict.fromkeys(config.volumes)
        for path in instruction.volumes:
            volumes[path] = None
        return _replace(config, volumes=tuple(sorted(volumes)))
    if kind is ins.UserInstruction:
        return _replace(config, user=instruction.user)
    if kind is ins.WorkdirInstruction:
        return _replace(config, working_dir=_join_workdir(config.working_dir, instruction.path))
    if kind is ins.OnbuildInstruction:
        return _replace(config, on_build=tuple(config.on_build) + (instruction.expression,))
    if kind is ins.StopSignalInstruction:
        return _replace(config, stop_signal=instruction.signal)
    if kind is ins.ShellInstruction:
        return _replace(config, shell=tuple(instruction.shell))
    if kind is ins.HealthcheckInstruction:
        return _replace(config, healthcheck=Healthcheck(test=tuple(instruction.test), interval=instruction.interval,
                                                        timeout=instruction.timeout,
                                                        start_period=instruction.start_period,
                                                        start_interval=instruction.start_interval,
                                                        retries=instruction.retries))
    raise ImageError(f"{instruction.keyword} does not change the image config")


def _join_workdir(current: str, path: str) -> str:
    """BuildKit's (and docker's) WORKDIR: an absolute path is kept as written; a relative one is
    joined to the current one and cleaned, as Go's ``path.Join("/", current, path)``."""
    import posixpath

    if path.startswith("/"):
        return path
    joined = posixpath.normpath(posixpath.join("/", current or "/", path))
    return "/" + joined.lstrip("/")  # Go's Clean leaves one leading slash, normpath may leave two


def _replace(config: ContainerConfig, **fields) -> ContainerConfig:
    from dataclasses import replace

    return replace(config, **fields)


def parse_changes(changes: list[str] | tuple[str, ...]) -> list[ins.Instruction]:
    """``--change`` values -> typed instructions (only those docker accepts for import/commit)."""
    from ..dockerfile.instructions import parse_dockerfile
    from ..errors import DockerfileError

    out = []
    for change in changes:
        text = change.strip()
        keyword = text.split(None, 1)[0].upper() if text else ""
        if keyword not in CHANGE_INSTRUCTIONS:
            raise ImageError(f"dockerfile parse error line 1: {keyword or change!r} is not a valid change command",
                             change)
        try:
            dockerfile = parse_dockerfile(f"FROM scratch\n{text}\n", "--change")
        except DockerfileError as err:
            raise ImageError(f"invalid --change {change!r}: {err.message}", change) from None
        out.extend(dockerfile.stages[0].instructions)
    return out


def apply_changes(config: ContainerConfig, instructions) -> ContainerConfig:
    """Apply instructions in order, expanding their words against the config's env as they go."""
    from ..dockerfile.evaluate import Env, expand_instruction
    from ..dockerfile.expand import ShellLexer

    lexer = ShellLexer("\\")
    cmd_set = False
    for instruction in instructions:
        env = Env(entry.partition("=")[::2] for entry in config.env)
        expanded = expand_instruction(instruction, env, lexer).instruction
        config = apply_instruction(config, expanded, cmd_set=cmd_set)
        cmd_set = cmd_set or type(instruction) is ins.CmdInstruction
    return config
