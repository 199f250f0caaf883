"""Image history as BuildKit's Dockerfile frontend and image exporter write it.

Three parts, all pure:

* ``created_by`` texts, one function per instruction kind, with the Go formatting BuildKit uses
  (``%q`` of an argv, ``%v`` of a list, ``%+v`` of the healthcheck struct, ``|N K=V`` build-arg
  prefix of RUN, `` # buildkit`` suffix of RUN/COPY/ADD). BuildKit's ``commitToHistory``.
* ``HistoryStyle``: which BuildKit writes them. ``BUILDKIT`` is the current frontend (the one
  ``/work/shared/design/dockerfile-spec.md`` describes); ``DOCKER_20_10`` is BuildKit 0.8 as vendored
  by docker 20.10, whose texts differ in five places (see the class). The golden files under
  ``tests/fixtures/build/`` were captured with docker 20.10, so the tests plan with that style.
* The exporter's timestamp rules (``finalize_history``): a layer's entry gets the layer's creation
  time, a metadata entry the time of the first new layer or of the entry before it, the config's
  ``created`` the last entry's time; with ``SOURCE_DATE_EPOCH`` every entry after the part equal to
  the base image's history is clamped to the epoch (``exporter/containerimage/writer.go``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from ..gotext import go_quote
from ..image.config import History, ImageConfig, format_timestamp, parse_timestamp

__all__ = [
    "HISTORY_COMMENT", "EXPORTER_COMMENT", "HistoryStyle", "BUILDKIT", "DOCKER_20_10",
    "go_duration", "go_quote_rune", "go_quote_list", "go_list",
    "entry", "env_created_by", "label_created_by", "maintainer_created_by", "cmd_created_by",
    "entrypoint_created_by", "healthcheck_created_by", "user_created_by", "volume_created_by",
    "stopsignal_created_by", "shell_created_by", "arg_created_by", "expose_created_by", "workdir_created_by",
    "run_created_by", "run_args_prefix", "copy_created_by",
    "finalize_history", "parse_source_date_epoch", "resolve_source_date_epoch", "epoch_timestamp",
]

HISTORY_COMMENT = "buildkit.dockerfile.v0"
EXPORTER_COMMENT = "buildkit.exporter.image.v0"
BUILDKIT_SUFFIX = " # buildkit"


# ----------------------------------------------------------------------------------------------
# Which BuildKit


@dataclass(frozen=True, slots=True)
class HistoryStyle:
    """The places where BuildKit releases write different history for the same Dockerfile.

    Every difference below was seen in docker 20.10's output (``tests/fixtures/build/*/golden.json``)
    and read in BuildKit v0.8.3's ``dockerfile2llb/convert.go`` next to the current one.
    """

    name: str
    # ARG: "resolved" writes the value the ARG got (build arg, default, or global value);
    # "declared" writes the default as written (expanded), even when a build arg overrides it.
    arg_value: str = "resolved"
    # HEALTHCHECK: "struct" is ``%+v`` of the struct ({Test:[...] Interval:30s ...});
    # "pointer-q" is ``%q`` of a pointer to BuildKit 0.8's struct (&{["CMD" "x"] "30s" ... '\x03'}).
    healthcheck: str = "struct"
    # EXPOSE: "list" is ``%v`` of the ports in order ([80/tcp 443/tcp]); "map" is ``%v`` of a Go map
    # (map[443/tcp:{} 80/tcp:{}], keys sorted, duplicates gone).
    expose: str = "list"
    # RUN build-arg prefix: an ARG declared twice is listed once (first place, last value).
    run_args_dedupe: bool = True
    # RUN build-arg prefix: ARGs of the stage this stage is built FROM are listed too.
    run_args_inherited: bool = True
    # COPY/ADD: ``--parents``, ``--chown=``, ``--chmod=`` and ``<<heredoc`` sources are written.
    copy_flags: bool = True


BUILDKIT = HistoryStyle("buildkit")
DOCKER_20_10 = HistoryStyle("docker-20.10", arg_value="declared", healthcheck="pointer-q", expose="map",
                            run_args_dedupe=False, run_args_inherited=False, copy_flags=False)


# ----------------------------------------------------------------------------------------------
# Go formatting


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String``: ``0s``, ``1.5s``, ``250ms``, ``1m30s``, ``1h0m0s``."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(int(ns))
    if u < 1_000_000_000:
        if u < 1_000:
            unit, prec = "ns", 0
        elif u < 1_000_000:
            unit, prec = "µs", 3
        else:
            unit, prec = "ms", 6
        whole, frac = _fraction(u, prec)
        return f"{sign}{whole}{frac}{unit}"
    seconds, frac = _fraction(u, 9)
    text = f"{seconds % 60}{frac}s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        hours = minutes // 60
        if hours:
            text = f"{hours}h{text}"
    return sign + text


def _fraction(value: int, prec: int) -> tuple[int, str]:
    if prec == 0:
        return value, ""
    whole, rest = divmod(value, 10 ** prec)
    return whole, (f".{rest:0{prec}d}".rstrip("0") if rest else "")


_RUNE_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}


def go_quote_rune(value: int) -> str:
    """Go's ``%q`` of an integer: a single-quoted character literal (``strconv.QuoteRune``)."""
    r = value if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else 0xFFFD
    ch = chr(r)
    if ch in ("'", "\\"):
        body = "\\" + ch
    elif ch.isprintable() and (r < 0x80 or not ch.isspace()):
        body = ch
    elif r in _RUNE_ESCAPES:
        body = _RUNE_ESCAPES[r]
    elif r < 0x20 or r == 0x7F:
        body = f"\\x{r:02x}"
    elif r < 0x10000:
        body = f"\\u{r:04x}"
    else:
        body = f"\\U{r:08x}"
    return f"'{body}'"


def go_quote_list(items: Iterable[str] | None) -> str:
    """Go's ``%q`` of a ``[]string``: ``["a" "b c"]`` (``[]`` for nil or empty)."""
    return "[" + " ".join(go_quote(s) for s in (items or ())) + "]"


def go_list(items: Iterable[str] | None) -> str:
    """Go's ``%v`` of a ``[]string``: ``[a b c]``."""
    return "[" + " ".join(items or ()) + "]"


# ----------------------------------------------------------------------------------------------
# created_by, per instruction (BuildKit's dispatchers)


def entry(created_by: str, *, layer: bool = False, created: str | None = None) -> History:
    """A history entry as ``commitToHistory`` makes it."""
    return History(created=created, created_by=created_by, comment=HISTORY_COMMENT, empty_layer=not layer)


def env_created_by(pairs: Iterable) -> str:
    """``ENV k=v k2=v2`` (values expanded, quotes removed; legacy ``ENV k v`` is written ``k=v``)."""
    return "ENV" + "".join(f" {p.key}={p.value}" for p in pairs)


def label_created_by(pairs: Iterable) -> str:
    return "LABEL" + "".join(f" {p.key}={p.value}" for p in pairs)


def maintainer_created_by(maintainer: str) -> str:
    return f"MAINTAINER {maintainer}"


def cmd_created_by(argv: Sequence[str] | None) -> str:
    """``CMD ["/bin/sh" "-c" "echo hi"]``: Go ``%q`` of the final argv (shell included)."""
    return f"CMD {go_quote_list(argv)}"


def entrypoint_created_by(argv: Sequence[str] | None) -> str:
    return f"ENTRYPOINT {go_quote_list(argv)}"


def healthcheck_created_by(test: Sequence[str], interval: int = 0, timeout: int = 0, start_period: int = 0,
                           start_interval: int = 0, retries: int = 0, style: HistoryStyle = BUILDKIT) -> str:
    if style.healthcheck == "pointer-q":
        # BuildKit 0.8: fmt.Sprintf("HEALTHCHECK %q", &HealthConfig{...}); no StartInterval field.
        fields = [go_quote_list(test), go_quote(go_duration(interval)), go_quote(go_duration(timeout)),
                  go_quote(go_duration(start_period)), go_quote_rune(retries)]
        return "HEALTHCHECK &{" + " ".join(fields) + "}"
    return (f"HEALTHCHECK {{Test:{go_list(test)} Interval:{go_duration(interval)} Timeout:{go_duration(timeout)} "
            f"StartPeriod:{go_duration(start_period)} StartInterval:{go_duration(start_interval)} "
            f"Retries:{retries}}}")


def user_created_by(user: str) -> str:
    return f"USER {user}"


def volume_created_by(volumes: Sequence[str]) -> str:
    return f"VOLUME {go_list(volumes)}"


def stopsignal_created_by(signal: str) -> str:
    return f"STOPSIGNAL {signal}"


def shell_created_by(shell: Sequence[str]) -> str:
    return f"SHELL {go_list(shell)}"


def arg_created_by(definitions: Iterable[tuple[str, str | None]]) -> str:
    """``ARG k=v k2`` from (key, value) pairs; a None value writes the bare key."""
    return "ARG " + " ".join(k if v is None else f"{k}={v}" for k, v in definitions)


def expose_created_by(ports: Sequence[str], style: HistoryStyle = BUILDKIT) -> str:
    """``EXPOSE [80/tcp 443/tcp]`` from the normalised ports (``80/tcp``), in order."""
    if style.expose == "map":
        return "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in sorted(set(ports))) + "]"
    return f"EXPOSE {go_list(ports)}"


def workdir_created_by(path: str) -> str:
    return f"WORKDIR {path}"


def run_args_prefix(args: Iterable, env: Mapping, *, dedupe: bool = True) -> list[str]:
    """BuildKit's ``runCommandString`` prefix: ``["|2", "A=1", "B="]`` (empty list: no args).

    ``args``: the build args in scope, in declaration order, as objects with ``key`` and ``value``
    (None: declared without a value). A value comes from the environment when the name is set
    there (an ENV of the same name wins), else from the declaration ("" when none).
    """
    items: list[str] = []
    index: dict[str, int] = {}
    for arg in args:
        value = env.get(arg.key)
        if value is None:
            value = arg.value if arg.value is not None else ""
        text = f"{arg.key}={value}"
        if dedupe and arg.key in index:
            items[index[arg.key]] = text
            continue
        index[arg.key] = len(items)
        items.append(text)
    if items:
        items.insert(0, f"|{len(items)}")
    return items


def run_created_by(argv: Sequence[str], args: Iterable, env: Mapping, style: HistoryStyle = BUILDKIT) -> str:
    """``RUN |2 A=1 B=2 /bin/sh -c make # buildkit``."""
    words = run_args_prefix(args, env, dedupe=style.run_args_dedupe) + list(argv)
    return "RUN " + " ".join(words) + BUILDKIT_SUFFIX


def copy_created_by(keyword: str, sources: Sequence[str], dest: str, *, heredocs: Sequence[str] = (),
                    chown: str = "", chmod: str = "", parents: bool = False,
                    style: HistoryStyle = BUILDKIT) -> str:
    """``COPY [--parents] [--chown=u:g] [--chmod=m] src... [<<doc...] dest # buildkit``.

    ``--from``, ``--link``, ``--exclude``, ``--checksum``, ``--unpack`` are never written.
    """
    words = [keyword]
    if style.copy_flags:
        if parents:
            words.append("--parents")
        if chown:
            words.append(f"--chown={chown}")
        if chmod:
            words.append(f"--chmod={chmod}")
    words.extend(sources)
    if style.copy_flags:
        words.extend(f"<<{name}" for name in heredocs)
    words.append(dest)
    return " ".join(words) + BUILDKIT_SUFFIX


# ----------------------------------------------------------------------------------------------
# SOURCE_DATE_EPOCH


_EPOCH_INT = re.compile(r"[+-]?[0-9]+\Z")


def parse_source_date_epoch(value: str | None) -> int | None:
    """An integer ``SOURCE_DATE_EPOCH`` (Unix seconds); None for absent or empty.

    Raises ValueError for the forms that need I/O to resolve (``context``, a named context or a
    stage name: BuildKit reads a commit time or a file's date for those) and for anything else.
    """
    if value is None or value == "":
        return None
    if not _EPOCH_INT.match(value):
        raise ValueError(f"SOURCE_DATE_EPOCH {value!r} is not a number of seconds (the context, named-context "
                         f"and stage forms are resolved by the build engine)")
    seconds = int(value)
    if not -(2**63) <= seconds < 2**63:
        raise ValueError(f"SOURCE_DATE_EPOCH {value!r} is out of range")
    return seconds


def resolve_source_date_epoch(build_args: Mapping, global_env: Mapping | None = None) -> int | None:
    """The epoch of a build: the ``SOURCE_DATE_EPOCH`` build arg, else a non-empty global ARG default."""
    if "SOURCE_DATE_EPOCH" in build_args and build_args["SOURCE_DATE_EPOCH"] is not None:
        return parse_source_date_epoch(build_args["SOURCE_DATE_EPOCH"])
    if global_env is not None:
        return parse_source_date_epoch(global_env.get("SOURCE_DATE_EPOCH") or None)
    return None


def epoch_timestamp(epoch: int | None) -> str | None:
    """The RFC 3339 text of an epoch in seconds (None stays None)."""
    return None if epoch is None else format_timestamp(epoch * 1_000_000_000)


# ----------------------------------------------------------------------------------------------
# The exporter's rules


def _ns(value) -> int:
    return parse_timestamp(value) if isinstance(value, str) else int(value)


def _text(value) -> str:
    return value if isinstance(value, str) else format_timestamp(int(value))


def finalize_history(config: ImageConfig, *, layer_times: Sequence = (), epoch: int | None = None,
                     base_history: Sequence[History] = (), now: int | str | None = None) -> ImageConfig:
    """Fill in history and config times as BuildKit's image exporter does.

    ``layer_times``: the creation time of each layer of ``config.rootfs`` (nanoseconds or RFC 3339
    text), used for layer entries that have no time yet; missing ones are ``now`` (default: the
    clock). ``base_history``: the base image's history as pulled (its entries keep their times under
    an epoch). ``epoch``: ``SOURCE_DATE_EPOCH`` in seconds, or None.

    Also as the exporter does: more layer entries than layers turns the extra ones (from the
    bottom) into empty-layer entries; fewer adds ``buildkit.exporter.image.v0`` entries.
    """
    history = list(config.history)
    layers = len(config.rootfs.diff_ids)
    clock = now if now is not None else time.time_ns()

    def layer_time(i: int):
        return layer_times[i] if i < len(layer_times) and layer_times[i] is not None else clock

    counted = sum(1 for h in history if not h.empty_layer)
    if counted > layers:
        seen = 0
        for i, h in enumerate(history):
            if seen >= layers and not h.empty_layer:
                history[i] = h = replace(h, empty_layer=True)
            if not h.empty_layer:
                seen += 1
    elif counted < layers:
        for i in range(counted, layers):
            history.append(History(created=_text(layer_time(i)), created_by="created by buildkit",
                                   comment=EXPORTER_COMMENT))

    index = 0
    for i, h in enumerate(history):
        if not h.empty_layer:
            if h.created is None:
                history[i] = replace(h, created=_text(layer_time(index)))
            index += 1

    # The time for metadata entries: the first time after the first entry without one (the first
    # new layer), else the last time there is.
    fill = None
    gap = False
    for h in history:
        if h.created is not None:
            fill = h.created
            if gap:
                break
        else:
            gap = True
    gap = False
    for i, h in enumerate(history):
        if h.created is not None:
            if gap:
                fill = h.created
        else:
            gap = True
            history[i] = replace(h, created=fill)

    created = config.created
    if epoch is not None:
        epoch_ns = epoch * 1_000_000_000
        stamp = epoch_timestamp(epoch)
        diverged = False
        for i, h in enumerate(history):
            if not diverged and i < len(base_history) and _same_entry(h, base_history[i]):
                continue  # the base image's entries keep their times
            diverged = True
            if h.created is None or _ns(h.created) > epoch_ns:
                history[i] = replace(h, created=stamp)
        if created is not None and _ns(created) > epoch_ns:
            created = stamp
    if created is None:
        created = next((h.created for h in reversed(history) if h.created is not None), None)
    return replace(config, history=tuple(history), created=created)


def _same_entry(a: History, b: History) -> bool:
    return (a.created, a.created_by, a.author, a.comment, a.empty_layer) == \
        (b.created, b.created_by, b.author, b.comment, b.empty_layer)
