"""The one exception hierarchy of pybuild.

    PybuildError                 anything pybuild reports to a user (exit code 1 unless said otherwise)
    ├── UsageError               bad command-line input
    ├── DockerfileError          a Dockerfile problem, with a source location when one is known
    │   ├── DockerfileSyntaxError    the parser layer rejected the text (BuildKit's parser errors)
    │   ├── InstructionError         the instruction layer rejected a parsed instruction
    │   └── ExpansionError           word expansion failed (``${x:?msg}``, bad ``${`` syntax)
    ├── ImageError               an image, manifest, config or archive is missing, invalid or unsupported
    │   ├── InvalidReference         an image reference that Docker's grammar rejects
    │   ├── ImageNotFound            no such image in the local store
    │   └── ArchiveError             a docker-archive / OCI archive / layout that cannot be read or written
    └── LayerError               a layer tar cannot be written, read or unpacked
        └── UnsafeLayerError         a layer entry would escape its target (``..``, absolute, symlink tricks)

The store (``cache/``) has its own hierarchy (``cache.errors.StoreError``) since ``cache`` never
imports ``builder``; the CLI renders both.

Every error carries its context as attributes; the CLI renders it (``render_error``) and never shows a
traceback unless ``--debug`` is given.
"""

from __future__ import annotations

from dataclasses import dataclass


class PybuildError(Exception):
    """Base of every error pybuild reports to a user."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(PybuildError):
    """Bad command-line input (a flag value, a missing file)."""


@dataclass(frozen=True, slots=True)
class Span:
    """A source range: 1-based lines, 1-based columns, end column exclusive.

    ``column == 0`` means "the whole line" (BuildKit reports most parser errors by line only).
    """

    line: int
    column: int = 0
    end_line: int = 0
    end_column: int = 0

    def __post_init__(self):
        if self.end_line < self.line:
            object.__setattr__(self, "end_line", self.line)

    @property
    def lines(self) -> range:
        return range(self.line, self.end_line + 1)


class DockerfileError(PybuildError):
    """A problem in a Dockerfile.

    ``span`` locates it (may be ``None`` only while the error travels up to code that knows the
    instruction; the front end attaches a span before the error leaves it). ``filename`` and
    ``source`` (the Dockerfile's lines) let the CLI print the offending lines with a caret.
    """

    def __init__(self, message: str, span: Span | None = None, *, filename: str | None = None,
                 hint: str | None = None):
        super().__init__(message)
        self.span = span
        self.filename = filename
        self.hint = hint
        self.source_lines: list[str] | None = None

    def located(self, span: Span, *, override: bool = False) -> "DockerfileError":
        """Attach a span unless one is set already (the innermost location wins)."""
        if self.span is None or override:
            self.span = span
        return self

    def with_source(self, filename: str | None, source_lines: list[str] | None) -> "DockerfileError":
        if self.filename is None:
            self.filename = filename
        if self.source_lines is None:
            self.source_lines = source_lines
        return self


class DockerfileSyntaxError(DockerfileError):
    """The parser layer rejected the Dockerfile text."""


class InstructionError(DockerfileError):
    """A parsed instruction is not valid (unknown flag, wrong argument count, ...)."""


class ExpansionError(DockerfileError):
    """Variable expansion failed."""


class ImageError(PybuildError):
    """An image, manifest, config or archive problem; ``subject`` names the object (a reference, a digest, a path)."""

    def __init__(self, message: str, subject: str | None = None):
        super().__init__(message)
        self.subject = subject


class InvalidReference(ImageError):
    """An image reference that Docker's reference grammar rejects."""


class ImageNotFound(ImageError):
    """No image by that name or ID in the local store."""


class ArchiveError(ImageError):
    """A docker-archive, OCI archive or OCI layout that cannot be read or written."""


class LayerError(PybuildError):
    """A layer tar that cannot be written, read or unpacked; ``path`` names the entry when known."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


class UnsafeLayerError(LayerError):
    """A layer entry that would write outside its target directory."""
