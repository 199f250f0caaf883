"""Platforms (``os/arch[/variant]``) with containerd's semantics: parse, normalize, format, match.

Moved here from ``builder.dockerfile.evaluate`` because a platform belongs to the image (index
entries, config ``os``/``architecture``) as much as to FROM ``--platform``; ``evaluate``
re-exports the names. Parsing and normalizing follow ``containerd/platforms`` (``Parse``,
``Normalize``, ``Format``); matching follows its ``Only``/``NewMatcher``: a target also runs older
variants of its architecture (arm/v7 runs v6 and v5, arm64 runs arm/v8..v5, amd64/v3 runs v2, v1
and 386), best first.
"""

from __future__ import annotations

import platform as _host
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from ..gotext import go_quote

__all__ = [
    "Platform", "PlatformError", "host_platform", "parse_platform", "normalize_platform",
    "PlatformMatcher", "only", "platform_vector", "platform_matches",
]


class PlatformError(ValueError):
    """A platform specifier that containerd's ``platforms.Parse`` rejects (its message)."""


@dataclass(frozen=True, slots=True)
class Platform:
    """An OCI platform (``os``, ``architecture``, ``variant``, ``os.version``, ``os.features``)."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple = ()

    def format(self) -> str:
        """``os/arch[/variant]`` (containerd's ``Format``)."""
        if not self.os:
            return "unknown"
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def format_all(self) -> str:
        """Like ``format`` plus ``(osversion+features)`` after the OS (containerd's ``FormatAll``)."""
        if not self.os:
            return "unknown"
        head = self.os
        if self.os_version or self.os_features:
            inner = _encode_os_option(self.os_version)
            if self.os_features:
                inner += "+" + "+".join(_encode_os_option(f) for f in self.os_features)
            head += f"({inner})"
        return "/".join(p for p in (head, self.architecture, self.variant) if p)

    def __str__(self) -> str:
        return self.format_all()


_KNOWN_OS = frozenset(("aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js",
                       "linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "windows", "zos"))
_KNOWN_ARCH = frozenset(("386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le",
                         "loong64", "mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc",
                         "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm"))
_SPECIFIER_RE = r"^[A-Za-z0-9_.-]+$"
_OS_RE = r"^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?$"
_SPECIFIER = re.compile(r"[A-Za-z0-9_.-]+\Z")
_OS_PART = re.compile(r"([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?\Z")
_MACHINES = {"x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", ""), "arm64": ("arm64", ""),
             "armv8l": ("arm", "v7"), "armv7l": ("arm", "v7"), "armv7": ("arm", "v7"), "armv6l": ("arm", "v6"),
             "armv5tel": ("arm", "v5"), "i386": ("386", ""), "i686": ("386", ""), "ppc64le": ("ppc64le", ""),
             "ppc64": ("ppc64", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
             "loongarch64": ("loong64", ""), "mips64": ("mips64", "")}


def _host_os() -> str:
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "darwin"
    if sys.platform.startswith("freebsd"):
        return "freebsd"
    return "linux"


def host_platform() -> Platform:
    """The platform of this machine, normalized as BuildKit's worker reports it (``linux/amd64``)."""
    machine = _host.machine().lower()
    arch, variant = _MACHINES.get(machine, (machine or "amd64", ""))
    return Platform(_host_os(), arch, variant)


def _normalize_os(os_name: str) -> str:
    if not os_name:
        return _host_os()
    os_name = os_name.lower()
    return "darwin" if os_name == "macos" else os_name


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "v8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
    return arch, variant


def normalize_platform(p: Platform) -> Platform:
    """containerd's ``Normalize``: canonical names (aarch64 -> arm64, arm -> arm/v7), sorted features."""
    arch, variant = _normalize_arch(p.architecture, p.variant)
    features = tuple(sorted(set(p.os_features)))
    return Platform(_normalize_os(p.os), arch, variant, p.os_version, features)


def _encode_os_option(value: str) -> str:
    return "".join(c if re.match(r"[A-Za-z0-9_.-]", c) else "".join(f"%{b:02X}" for b in c.encode()) for c in value)


def parse_platform(specifier: str) -> Platform:
    """containerd's ``platforms.Parse``: ``os[(version)]``, ``os/arch``, ``os/arch/variant``, ``arch``."""
    invalid = ": invalid argument"
    if "*" in specifier:
        raise PlatformError(f"{go_quote(specifier)}: wildcards not yet supported{invalid}")
    parts = specifier.split("/", 3)
    os_name, os_version, features = "", "", ()
    for i, part in enumerate(parts):
        if i == 0:
            m = _OS_PART.match(part)
            if m is None:
                raise PlatformError(f"{go_quote(part)} is an invalid OS component of {go_quote(specifier)}: "
                                    f"OSAndVersion specifier component must match {go_quote(_OS_RE)}{invalid}")
            os_name = _normalize_os(m.group(1))
            os_version = unquote(m.group(2) or "")
            if m.group(3):
                features = tuple(unquote(f) for f in m.group(3)[1:].split("+"))
        elif not _SPECIFIER.match(part):
            raise PlatformError(f"{go_quote(part)} is an invalid component of {go_quote(specifier)}: "
                                f"platform specifier component must match {go_quote(_SPECIFIER_RE)}{invalid}")
    host = host_platform()
    if len(parts) == 1:
        if os_name in _KNOWN_OS:
            variant = host.variant if host.architecture == "arm" and host.variant != "v7" else ""
            return Platform(os_name, host.architecture, variant, os_version, features)
        arch, variant = _normalize_arch(parts[0], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        if arch in _KNOWN_ARCH:
            return Platform(host.os, arch, variant)
        raise PlatformError(f"{go_quote(specifier)}: unknown operating system or architecture{invalid}")
    if len(parts) == 2:
        arch, variant = _normalize_arch(parts[1], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        return Platform(os_name, arch, variant, os_version, features)
    if len(parts) == 3:
        arch, variant = _normalize_arch(parts[1], parts[2])
        if arch == "arm64" and variant == "":
            variant = "v8"
        return Platform(os_name, arch, variant, os_version, features)
    raise PlatformError(f"{go_quote(specifier)}: cannot parse platform specifier{invalid}")


# ----------------------------------------------------------------------------------------------
# Matching (containerd's ``Only``: index selection)

# arm64 variant -> (majors, highest minor for each major), containerd's arm64variantToVersion:
# an armv9.x CPU also implements armv8.(x+5), capped at 8.9.
_ARM64_VERSIONS = {"v8": ((8,), (0,)), "v8.0": ((8,), (0,))}
_ARM64_VERSIONS.update({f"v8.{n}": ((8,), (n,)) for n in range(1, 10)})
_ARM64_VERSIONS.update({"v9": ((9, 8), (0, 5)), "v9.0": ((9, 8), (0, 5))})
_ARM64_VERSIONS.update({f"v9.{n}": ((9, 8), (n, min(n + 5, 9))) for n in range(1, 8)})


def _variant_number(variant: str) -> int | None:
    digits = variant[1:] if variant.startswith("v") else variant
    return int(digits) if digits.isdigit() else None


def platform_vector(target: Platform) -> tuple[Platform, ...]:
    """The platforms a (normalized) ``target`` can run, best first (containerd's ``platformVector``)."""
    def like(arch: str, variant: str) -> Platform:
        return Platform(target.os, arch, variant, target.os_version, target.os_features)

    vector = [target]
    if target.architecture == "amd64":
        level = _variant_number(target.variant)
        if level is not None and level > 1:
            vector += [like("amd64", f"v{n}") for n in range(level - 1, 0, -1)]
        vector.append(like("386", ""))
    elif target.architecture == "arm":
        level = _variant_number(target.variant)
        if level is not None and level > 5:
            vector += [like("arm", f"v{n}") for n in range(level - 1, 4, -1)]
    elif target.architecture == "arm64":
        variant = target.variant or "v8"
        versions = _ARM64_VERSIONS.get(variant)
        if versions is None:
            # containerd matches nothing for an unknown arm64 variant; we keep the exact platform.
            return (target,)
        vector = []
        for major, top in zip(*versions):
            vector += [like("arm64", f"v{major}" if minor == 0 else f"v{major}.{minor}")
                       for minor in range(top, -1, -1)]
        vector += platform_vector(like("arm", "v8"))
    return tuple(vector)


def _windows_version(text: str) -> tuple[int, int, int] | None:
    """``major.minor.build`` of a Windows ``os.version`` (``10.0.20348.2340``), None if not one."""
    parts = text.split(".")
    if len(parts) < 3 or not all(p.isdigit() for p in parts[:3]):
        return None
    major, minor, build = (int(p) for p in parts[:3])
    if major > 255 or minor > 255 or build > 65535:
        return None
    return major, minor, build


_LTSC2022, _LTSC2025 = 20348, 26100


def _windows_compatible(host: str, image: str) -> bool:
    """containerd's Windows rule: same build before LTSC 2022, else any build from the host's LTSC on."""
    want = _windows_version(host)
    if want is None or image == "":
        return True
    have = _windows_version(image) or (0, 0, 0)
    if want[:2] != have[:2]:
        return False
    if want[2] < _LTSC2022:
        return want[2] == have[2]
    floor = _LTSC2025 if want[2] > _LTSC2025 else _LTSC2022
    return floor <= have[2] <= want[2]


def platform_matches(want: Platform, candidate: Platform) -> bool:
    """containerd's ``NewMatcher(want).Match(candidate)``: same normalized os/arch/variant, a
    compatible Windows version, and the candidate's OS features a subset of ``want``'s."""
    want = normalize_platform(want)
    features = candidate.os_features
    if want.os == "windows" and "win32k" in features:
        features = tuple(f for f in features if f != "win32k")  # not considered, as in containerd
    have = normalize_platform(Platform(candidate.os, candidate.architecture, candidate.variant,
                                       candidate.os_version, features))
    if (have.os, have.architecture, have.variant) != (want.os, want.architecture, want.variant):
        return False
    if want.os == "windows" and not _windows_compatible(want.os_version, candidate.os_version):
        return False
    return set(have.os_features) <= set(want.os_features)


@dataclass(frozen=True, slots=True)
class PlatformMatcher:
    """A target and its fallbacks (``only``); ``rank`` orders index entries, best first."""

    target: Platform
    vector: tuple

    def rank(self, candidate: Platform) -> int | None:
        """Position of the first fallback ``candidate`` satisfies, None when it cannot run here."""
        for i, want in enumerate(self.vector):
            if platform_matches(want, candidate):
                return i
        return None

    def match(self, candidate: Platform) -> bool:
        return self.rank(candidate) is not None

    def sort_key(self, candidate: Platform) -> tuple[int, int]:
        """containerd's ``Less``: better fallback first, then more OS features (stable otherwise)."""
        rank = self.rank(candidate)
        return (len(self.vector) if rank is None else rank, -len(candidate.os_features))

    def best(self, candidates: Iterable[Platform]) -> Platform | None:
        ranked = [c for c in candidates if self.match(c)]
        return min(ranked, key=self.sort_key) if ranked else None


def only(target: Platform) -> PlatformMatcher:
    """containerd's ``platforms.Only``: ``target`` (normalized) and what it can also run."""
    normalized = normalize_platform(target)
    return PlatformMatcher(normalized, platform_vector(normalized))
