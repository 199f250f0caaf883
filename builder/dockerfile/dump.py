"""BuildKit's AST dump format (``Node.Dump``), used by BuildKit's own parser test files.

One line per instruction: ``(keyword ["--flag" ...] "arg" ...)`` with Go-quoted strings; ONBUILD
nests its trigger; ENV/LABEL give key, value, separator triples; heredoc bodies are not dumped.
"""

from __future__ import annotations

from .syntax import NONE, SyntaxNode, SyntaxTree
from .words import go_quote


def dump_node(node: SyntaxNode) -> str:
    parts = [node.keyword_text.lower()]
    if node.flags:
        parts.append("[" + " ".join(go_quote(f.text) for f in node.flags) + "]")
    if node.subcommand is not None:
        parts.append("(" + dump_node(node.subcommand) + ")")
    elif node.keyword_text.lower() not in _KNOWN and node.shape == NONE:
        parts.append('""')  # BuildKit's parser gives unknown instructions one empty argument
    else:
        parts.extend(go_quote(v) for v in node.values())
    return " ".join(parts)


def dump_tree(tree: SyntaxTree) -> str:
    """The whole file, one ``(...)`` line per instruction, each ending in a newline."""
    return "".join(f"({dump_node(n)})\n" for n in tree.nodes)


_KNOWN = frozenset(("add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
                    "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume",
                    "workdir"))
