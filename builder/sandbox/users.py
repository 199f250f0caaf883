"""USER resolution against the image's /etc/passwd and /etc/group, the way BuildKit does it.

BuildKit takes a fast path for ``uid:gid`` (both numeric, or ``root``) and asks runc's
``user.GetExecUser`` for everything else: a name must exist in passwd ("unable to find user X: no
matching entries in passwd file"), a bare numeric uid may be missing (gid 0 then), a named user
gets its passwd gid and the supplementary groups that list it as a member, and an explicit
``:group`` replaces the gid and drops the supplementary groups.  The rules are reproduced here on
plain text so they can be tested without a rootfs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import SandboxError

MAX_ID = (1 << 31) - 1


@dataclass(frozen=True, slots=True)
class ExecUser:
    """Who the RUN process runs as."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    home: str = "/"


@dataclass(frozen=True, slots=True)
class _Passwd:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True, slots=True)
class _Group:
    name: str
    gid: int
    members: tuple[str, ...]


def _fields(line: str) -> list[str] | None:
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    return line.split(":")


_DECIMAL = re.compile(r"[+-]?[0-9]+")


def _atoi(text: str) -> int:
    """Go's ``strconv.Atoi`` with errors ignored, as runc's parser does for misbehaving files."""
    return int(text) if _DECIMAL.fullmatch(text) and -(1 << 63) <= int(text) < 1 << 63 else 0


def parse_passwd(text: str) -> list[_Passwd]:
    out = []
    for line in text.splitlines():
        f = _fields(line)
        if f is None:
            continue
        f += [""] * (7 - len(f))
        out.append(_Passwd(f[0], _atoi(f[2]), _atoi(f[3]), f[5]))
    return out


def parse_group(text: str) -> list[_Group]:
    out = []
    for line in text.splitlines():
        f = _fields(line)
        if f is None:
            continue
        f += [""] * (4 - len(f))
        out.append(_Group(f[0], _atoi(f[2]), tuple(m for m in f[3].split(",") if m) if f[3] else ()))
    return out


def _numeric(text: str) -> int | None:
    """runc's ``parseNumeric``: ``None`` for a name, the id for a number, an error out of range."""
    if not _DECIMAL.fullmatch(text):
        return None
    value = int(text)
    if value < 0 or value > MAX_ID:
        raise SandboxError(f"uids and gids must be in range 0-{MAX_ID}")
    return value


def _fast_path(spec: str) -> tuple[int, int] | None:
    """BuildKit's ``ParseUIDGID``: both parts numeric (``root`` counts as 0), else ``None``."""
    if spec == "":
        return 0, 0
    user, sep, group = spec.partition(":")
    if not sep:
        return None
    ids = []
    for part in (user, group):
        if part == "root":
            ids.append(0)
        elif part.isascii() and part.isdigit() and int(part) < 1 << 32:  # Go's ParseUint(s, 10, 32)
            ids.append(int(part))
        else:
            return None
    return ids[0], ids[1]


def resolve_user(spec: str, passwd: str | None, group: str | None) -> ExecUser:
    """Resolve a USER value; ``passwd``/``group`` are the files' text or ``None`` if the image lacks them."""
    users = parse_passwd(passwd) if passwd is not None else []
    fast = _fast_path(spec)
    if fast is not None:
        uid, gid = fast
        return ExecUser(uid, gid, (), _home(users, uid))

    user_arg, _, group_arg = spec.partition(":")
    uid_num = _numeric(user_arg)
    gid_num = _numeric(group_arg)

    if uid_num is not None:
        matches = [u for u in users if u.uid == uid_num]
    else:
        matches = [u for u in users if u.name == user_arg]
    uid, gid, home, matched_name = 0, 0, "", ""
    if matches:
        first = matches[0]
        uid, gid, home, matched_name = first.uid, first.gid, first.home, first.name
    elif uid_num is not None:
        uid = uid_num
    else:
        raise SandboxError(f"unable to find user {user_arg}: no matching entries in passwd file")

    groups: tuple[int, ...] = ()
    if group_arg or matched_name:
        entries = parse_group(group) if group is not None else []
        if group_arg:
            if gid_num is not None:
                found = [g for g in entries if g.gid == gid_num]
            else:
                found = [g for g in entries if g.name == group_arg]
            if found:
                gid = found[0].gid
            elif gid_num is not None:
                gid = gid_num
            else:
                raise SandboxError(f"unable to find group {group_arg}: no matching entries in group file")
        else:
            groups = tuple(g.gid for g in entries if matched_name in g.members)
    return ExecUser(uid, gid, groups, home or _home(users, uid))


def _home(users: list[_Passwd], uid: int) -> str:
    """runc's HOME fallback: the first passwd entry with this uid, else ``/``."""
    for u in users:
        if u.uid == uid and u.home:
            return u.home
    return "/"


def read_user_files(root: str = "/") -> tuple[str | None, str | None]:
    """The text of ``root``'s /etc/passwd and /etc/group (``None`` for a file that cannot be read).

    Meant to be called inside the sandbox after pivot_root, where symlinks resolve within the image.
    """
    out: list[str | None] = []
    for name in ("etc/passwd", "etc/group"):
        try:
            with open(os.path.join(root, name), encoding="utf-8", errors="surrogateescape") as fh:
                out.append(fh.read())
        except OSError:
            out.append(None)
    return out[0], out[1]


__all__ = ["ExecUser", "resolve_user", "read_user_files", "parse_passwd", "parse_group"]
