"""Turns pybuild errors into the text a person reads: location, the offending lines, a caret.

    Dockerfile:3:1: unknown instruction: RUNN (did you mean RUN?)
       3 | RUNN echo hi
         | ^~~~
"""

from __future__ import annotations

from .errors import DockerfileError

_CONTEXT_LINES = 6


def render_error(err: Exception) -> str:
    """``err`` is a PybuildError or a store error (``cache.errors.StoreError``)."""
    if not isinstance(err, DockerfileError):
        return f"error: {getattr(err, 'message', None) or err}"
    span = err.span
    name = err.filename or "Dockerfile"
    if span is None:
        return f"error: {name}: {err.message}"
    where = f"{name}:{span.line}" + (f":{span.column}" if span.column else "")
    out = [f"error: {where}: {err.message}"]
    lines = err.source_lines or []
    if not lines or span.line < 1 or span.line > len(lines):
        return "\n".join(out)
    last = min(span.end_line, len(lines), span.line + _CONTEXT_LINES - 1)
    width = len(str(last))
    for number in range(span.line, last + 1):
        text = lines[number - 1].rstrip("\r\n").expandtabs(1)
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        out.append(f" {number:>{width}} | {text}")
        if number != span.line:
            continue
        if span.column:
            start = span.column - 1
            end = span.end_column - 1 if span.end_line == span.line and span.end_column > span.column else start + 1
        else:  # the whole line is at fault: underline all of it
            start = len(text) - len(text.lstrip())
            end = len(text.rstrip(" \\`"))
        if end > start:
            out.append(f" {'':>{width}} | " + " " * start + "^" + "~" * (end - start - 1))
    if last < span.end_line:
        out.append(f" {'':>{width}} | ...")
    return "\n".join(out)
