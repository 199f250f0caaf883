"""Docker-compatible output: ``--format`` templates, tables, human sizes and durations.

Scripts written against ``docker images --format '{{.Repository}}:{{.Tag}}'`` or
``docker image inspect --format '{{.Id}}'`` must work unchanged, so this implements the part of Go's
text/template that docker's CLI formats use: field chains (``{{.Config.Env}}``), ``json``, ``upper``,
``lower``, ``title``, ``join``, ``index``, ``len``, ``println``, pipelines (``{{.Tag | upper}}``), the
``table`` prefix (a header row, columns aligned as docker's tabwriter does), and ``{{range}}`` /
``{{if}}`` / ``{{else}}`` / ``{{end}}`` blocks. ``--format json`` prints one JSON object per line.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

from .errors import UsageError

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def human_size(size: float, precision: int = 3) -> str:
    """docker's ``units.HumanSizeWithPrecision``: decimal units, ``precision`` significant digits.

    Tables use 3 (``4.26MB``, ``512B``); ``system df`` and ``VirtualSize`` use docker's ``HumanSize``, 4.
    """
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.{precision}g}{units[i]}"  # Go's %.Ng


def human_duration(seconds: float) -> str:
    """docker's ``units.HumanDuration`` (``About a minute``, ``3 months``)."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(s / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(s / 3600) // 24 // 365} years"


def since(timestamp: float | None, now: float | None = None) -> str:
    if not timestamp:
        return "N/A"
    return human_duration((now or time.time()) - timestamp) + " ago"


def table(rows: list[list[str]]) -> str:
    """Align columns as docker's tabwriter (min width 10, padding 3); no trailing blanks."""
    if not rows:
        return ""
    widths = [0] * max(len(r) for r in rows)
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    out = []
    for row in rows:
        cells = [cell.ljust(max(widths[i] + 3, 10)) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        out.append("".join(cells).rstrip())
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# Go template subset


@dataclass(frozen=True)
class _Node:
    kind: str            # "text", "action", "range", "if", "with"
    value: str = ""
    body: tuple = ()
    alternative: tuple = ()


def _tokens(template: str):
    pos = 0
    for m in _ACTION.finditer(template):
        text = template[pos:m.start()]
        if m.group(1):
            text = text.rstrip()
        yield ("text", text)
        yield ("action", m.group(2), bool(m.group(3)))
        pos = m.end()
    yield ("text", template[pos:])


def _parse(template: str) -> tuple:
    stack: list[tuple[str, str, list, list | None]] = [("root", "", [], None)]
    trim_next = False
    for token in _tokens(template):
        if token[0] == "text":
            text = token[1].lstrip() if trim_next else token[1]
            trim_next = False
            if text:
                target = stack[-1][3] if stack[-1][3] is not None else stack[-1][2]
                target.append(_Node("text", text))
            continue
        action, trim_next = token[1], token[2]
        head = action.split(None, 1)[0] if action else ""
        target = stack[-1][3] if stack[-1][3] is not None else stack[-1][2]
        if head in ("range", "if", "with"):
            stack.append((head, action[len(head):].strip(), [], None))
        elif head == "else":
            if len(stack) == 1:
                raise UsageError(f"template: unexpected {{{{else}}}} in {template!r}")
            kind, value, body, _ = stack.pop()
            stack.append((kind, value, body, []))
        elif head == "end":
            if len(stack) == 1:
                raise UsageError(f"template: unexpected {{{{end}}}} in {template!r}")
            kind, value, body, alternative = stack.pop()
            parent = stack[-1][3] if stack[-1][3] is not None else stack[-1][2]
            parent.append(_Node(kind, value, tuple(body), tuple(alternative or ())))
        elif head.startswith("/*"):
            continue
        else:
            target.append(_Node("action", action))
    if len(stack) != 1:
        raise UsageError(f"template: unexpected EOF in {template!r} (missing {{{{end}}}})")
    return tuple(stack[0][2])


def _field(value, name: str):
    if isinstance(value, dict):
        if name in value:
            return value[name]
        raise UsageError(f"template: can't evaluate field {name}")
    if hasattr(value, name):
        return getattr(value, name)
    raise UsageError(f"template: can't evaluate field {name} in type {type(value).__name__}")


def _go_str(value) -> str:
    if value is None:
        return "<no value>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_str(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_go_str(v) for v in value) + "]"
    return str(value)


_ARG = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|\S+')


def _evaluate(expr: str, dot, variables: dict):
    """Evaluate a pipeline: ``cmd | cmd ...`` where each cmd is ``fn args...`` or an operand."""
    result = _MISSING = object()
    for part in _split_pipeline(expr):
        args = _ARG.findall(part)
        if not args:
            raise UsageError(f"template: empty command in {expr!r}")
        if result is not _MISSING:
            args = args + ["\x00piped"]
        result = _command(args, dot, variables, result)
    return result


def _split_pipeline(expr: str) -> list[str]:
    parts, depth, current, quote = [], 0, [], ""
    for ch in expr:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return parts


def _operand(arg: str, dot, variables: dict, piped):
    if arg == "\x00piped":
        return piped
    if arg.startswith('"'):
        return json.loads(arg)
    if arg.startswith("`"):
        return arg[1:-1]
    if arg == ".":
        return dot
    if arg.startswith("$"):
        name, _, rest = arg.partition(".")
        value = variables.get(name, dot)
        for piece in filter(None, rest.split(".")):
            value = _field(value, piece)
        return value
    if arg.startswith("."):
        value = dot
        for piece in filter(None, arg.split(".")):
            value = _field(value, piece)
        return value
    if re.fullmatch(r"-?[0-9]+", arg):
        return int(arg)
    if arg in ("true", "false"):
        return arg == "true"
    raise UsageError(f'template: function "{arg}" not defined')


def _command(args: list[str], dot, variables: dict, piped):
    name = args[0]
    fn = _FUNCTIONS.get(name)
    if fn is None:
        if len(args) > 1 and args[-1] != "\x00piped":
            raise UsageError(f"template: can't give argument to non-function {name}")
        return _operand(name, dot, variables, piped)
    values = [_operand(a, dot, variables, piped) for a in args[1:]]
    return fn(*values)


def _json(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _json_default(value):
    if hasattr(value, "to_json"):
        return value.to_json()
    if hasattr(value, "__dict__"):
        return value.__dict__
    raise TypeError(type(value).__name__)


def _index(value, *keys):
    for key in keys:
        value = value[key]
    return value


_FUNCTIONS = {
    "json": _json,
    "upper": lambda v: _go_str(v).upper(),
    "lower": lambda v: _go_str(v).lower(),
    "title": lambda v: _go_str(v).title(),
    "join": lambda items, sep: sep.join(_go_str(i) for i in (items or [])),
    "split": lambda text, sep: text.split(sep),
    "index": _index,
    "len": lambda v: len(v or ()),
    "println": lambda *v: " ".join(_go_str(x) for x in v) + "\n",
    "print": lambda *v: "".join(_go_str(x) for x in v),
    "truncate": lambda v, n: _go_str(v)[:n],
    "pad": lambda v, left, right: " " * left + _go_str(v) + " " * right,
}


def _truthy(value) -> bool:
    return bool(value) and value != "<no value>"


def _render(nodes: tuple, dot, variables: dict, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.value)
        elif node.kind == "action":
            expr = node.value
            if re.match(r"\$\w*\s*:=", expr):
                name, _, rest = expr.partition(":=")
                variables[name.strip()] = _evaluate(rest.strip(), dot, variables)
                continue
            value = _evaluate(expr, dot, variables)
            out.append(value if isinstance(value, str) else _go_str(value))
        elif node.kind == "if":
            branch = node.body if _truthy(_evaluate(node.value, dot, variables)) else node.alternative
            _render(branch, dot, variables, out)
        elif node.kind == "with":
            value = _evaluate(node.value, dot, variables)
            if _truthy(value):
                _render(node.body, value, variables, out)
            else:
                _render(node.alternative, dot, variables, out)
        elif node.kind == "range":
            expr = node.value
            m = re.match(r"(\$\w+)(?:\s*,\s*(\$\w+))?\s*:=\s*(.*)", expr)
            names: tuple = ()
            if m:
                names = tuple(n for n in m.groups()[:2] if n)
                expr = m.group(3)
            items = _evaluate(expr, dot, variables)
            pairs = sorted(items.items()) if isinstance(items, dict) else list(enumerate(items or ()))
            if not pairs:
                _render(node.alternative, dot, variables, out)
            for key, item in pairs:
                scope = dict(variables)
                if len(names) == 2:
                    scope[names[0]], scope[names[1]] = key, item
                elif len(names) == 1:
                    scope[names[0]] = item
                _render(node.body, item, scope, out)


class Template:
    """A parsed ``--format`` value; ``render(dot)`` returns the text for one object."""

    def __init__(self, text: str):
        self.source = text
        self.is_table = text.startswith("table")
        body = text[len("table"):].lstrip() if self.is_table else text
        self.body = body.replace("\\t", "\t").replace("\\n", "\n")
        self.nodes = _parse(self.body)

    def render(self, dot) -> str:
        out: list[str] = []
        _render(self.nodes, dot, {"$": dot}, out)
        return "".join(out)

    def header(self, names: dict[str, str]) -> str:
        """The header row of a ``table`` template: each ``{{.Field}}`` becomes its column title."""
        return _ACTION.sub(lambda m: names.get(m.group(2).lstrip(".").split(" ")[0], m.group(2).lstrip(".").upper()),
                           self.body)


def render_rows(fmt: str | None, rows: list, default_columns: list[tuple[str, str]], *, quiet_field: str | None = None,
                quiet: bool = False) -> str:
    """Render list output as docker does: the default table, ``--format json``, a template, or ``-q``."""
    if quiet and quiet_field:
        return "\n".join(_go_str(_field(r, quiet_field)) for r in rows)
    if fmt == "json":
        return "\n".join(_json(r) for r in rows)
    names = dict(default_columns)
    if not fmt or fmt == "table":
        lines = [[title for _, title in default_columns]]
        lines += [[_go_str(_field(r, f)) for f, _ in default_columns] for r in rows]
        return table(lines)
    template = Template(fmt)
    if template.is_table:
        header = template.header(names).split("\t")
        lines = [header] + [template.render(r).split("\t") for r in rows]
        return table(lines)
    return "\n".join(template.render(r) for r in rows)
