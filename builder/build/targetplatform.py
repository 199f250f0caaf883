"""``pybuild build --platform``: the target platform, which must be this machine's own for now.

buildx takes the flag repeated and/or comma-separated, parses each value with containerd's
``platforms.Parse`` and normalizes it (``linux/x86_64`` is ``linux/amd64``). Several platforms make
a multi-platform build; pybuild has no emulation, so every value must name the native platform
(duplicates collapse into one) and anything else is refused before the build starts, rather than
producing an image whose config claims an architecture its binaries are not.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import UsageError
from ..image.platform import (
    Platform,
    PlatformError,
    host_platform,
    normalize_platform,
    parse_platform,
)


def _native(platform: Platform, host: Platform) -> bool:
    return (platform.os, platform.architecture, platform.variant) == (host.os, host.architecture, host.variant)


def target_platform(values: Iterable[str]) -> Platform | None:
    """The one target platform ``--platform`` values name (None when none were given)."""
    specifiers = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not specifiers:
        return None
    host = normalize_platform(host_platform())
    chosen: list[Platform] = []
    for specifier in specifiers:
        try:
            platform = normalize_platform(parse_platform(specifier))
        except PlatformError as err:
            raise UsageError(f"--platform: {err}") from None
        if not _native(platform, host):
            others = f" (one of {len(specifiers)} platforms asked for)" if len(specifiers) > 1 else ""
            raise UsageError(f"--platform {specifier}: this machine runs {host.format()}; building for "
                             f"{platform.format()}{others} needs emulation, which pybuild does not support yet")
        if platform not in chosen:
            chosen.append(platform)
    if len(chosen) > 1:  # same os/arch/variant but e.g. a different os.version
        raise UsageError(f"--platform: {', '.join(p.format_all() for p in chosen)} are different platforms; "
                         "a multi-platform build needs emulation, which pybuild does not support yet")
    return chosen[0]
