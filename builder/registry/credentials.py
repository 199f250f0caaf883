"""Registry credentials, kept where docker keeps them: ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``.

Lookup order for a host, as docker's: ``credHelpers[host]`` (a ``docker-credential-<name>`` program),
then ``auths[host]`` (``auth`` = base64 ``user:password``, or ``username``/``password``,
or ``identitytoken``), then ``credsStore`` (a helper for every host). ``pybuild login`` stores through
the host's helper or the store when one is configured, else in ``auths`` (the file is written 0600).

Docker Hub is filed under ``https://index.docker.io/v1/``, as docker does; other hosts by name
(``auths`` keys written as URLs, ``https://host/``, are found too).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import RegistryError
from .settings import DOCKER_HUB, canonical_host

HUB_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str                # or an identity (refresh) token when ``username`` is "<token>"

    def __repr__(self) -> str:   # never print the secret
        return f"Credentials(username={self.username!r}, password=***)"

    @property
    def identity_token(self) -> str | None:
        return self.password if self.username == "<token>" else None


class CredentialsError(RegistryError):
    """config.json or a credential helper could not be read or written (the secret never in the text)."""


def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(base) / "config.json"


def _load() -> dict:
    path = config_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise CredentialsError(f"cannot read {path}: {err.strerror}") from None
    if not data.strip():
        return {}
    try:
        obj = json.loads(data)
    except ValueError as err:
        raise CredentialsError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(obj, dict):
        raise CredentialsError(f"{path} is not a JSON object")
    return obj


def _save(obj: dict) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            json.dump(obj, f, indent="\t")
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _key(host: str) -> str:
    return HUB_KEY if canonical_host(host) == DOCKER_HUB else canonical_host(host)


def _auths_entry(auths: dict, host: str) -> dict | None:
    want = canonical_host(host)
    for name, entry in auths.items():
        if isinstance(entry, dict) and canonical_host(name) == want:
            return entry
    return None


def _decode_entry(entry: dict, host: str) -> Credentials | None:
    if entry.get("identitytoken"):
        return Credentials("<token>", entry["identitytoken"])
    if entry.get("auth"):
        try:
            user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise CredentialsError(f"{config_path()}: the auth entry of {host} is not base64 of user:password") from None
        if not sep:
            raise CredentialsError(f"{config_path()}: the auth entry of {host} is not base64 of user:password")
        return Credentials(user, password)
    if entry.get("username"):
        return Credentials(entry["username"], entry.get("password", ""))
    return None


def _helper(name: str, action: str, payload: str, host: str) -> str:
    program = f"docker-credential-{name}"
    try:
        done = subprocess.run([program, action], input=payload.encode(), capture_output=True, timeout=60)
    except FileNotFoundError:
        raise CredentialsError(f"credential helper {program} (configured for {host} in {config_path()}) "
                               f"is not installed") from None
    except subprocess.TimeoutExpired:
        raise CredentialsError(f"credential helper {program} did not answer within 60 s ({action} {host})") from None
    out = done.stdout.decode(errors="replace").strip()
    if done.returncode != 0:
        text = out or done.stderr.decode(errors="replace").strip()
        if action == "get" and "credentials not found" in text.lower():
            return ""
        raise CredentialsError(f"credential helper {program} failed to {action} credentials for {host}: "
                               f"{text.splitlines()[0] if text else f'exit {done.returncode}'}")
    return out


def _helper_get(name: str, host: str) -> Credentials | None:
    server = _key(host)
    out = _helper(name, "get", server, host)
    if not out:
        return None
    try:
        obj = json.loads(out)
        user, secret = obj.get("Username", ""), obj.get("Secret", "")
    except (ValueError, AttributeError):
        raise CredentialsError(f"credential helper docker-credential-{name} gave an answer that is not JSON "
                               f"for {host}") from None
    if not secret:
        return None
    return Credentials(user or "<token>", secret)


def _helper_for(obj: dict, host: str) -> str | None:
    helpers = obj.get("credHelpers") or {}
    want = canonical_host(host)
    for name, helper in helpers.items():
        if canonical_host(name) == want:
            return helper
    return obj.get("credsStore") or None


def lookup(host: str) -> Credentials | None:
    """The credentials configured for ``host``, or None (anonymous)."""
    obj = _load()
    helpers = obj.get("credHelpers") or {}
    want = canonical_host(host)
    for name, helper in helpers.items():
        if canonical_host(name) == want:
            return _helper_get(helper, host)
    entry = _auths_entry(obj.get("auths") or {}, host)
    if entry is not None:
        found = _decode_entry(entry, host)
        if found is not None:
            return found
    if obj.get("credsStore"):
        return _helper_get(obj["credsStore"], host)
    return None


def save_login(host: str, username: str, password: str) -> str:
    """Remember credentials for ``host``; returns where they went (for the login message)."""
    obj = _load()
    helper = _helper_for(obj, host)
    if helper:
        payload = json.dumps({"ServerURL": _key(host), "Username": username, "Secret": password})
        _helper(helper, "store", payload, host)
        auths = obj.setdefault("auths", {})
        auths.setdefault(_key(host), {})        # docker lists the host with an empty entry
        _save(obj)
        return f"the docker-credential-{helper} credential helper"
    auths = obj.setdefault("auths", {})
    for name in [n for n in auths if canonical_host(n) == canonical_host(host)]:
        del auths[name]
    auths[_key(host)] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    _save(obj)
    return str(config_path())


def erase_login(host: str) -> bool:
    """Forget ``host``'s credentials; False if there were none."""
    obj = _load()
    removed = False
    helper = _helper_for(obj, host)
    if helper:
        if _helper_get(helper, host) is not None:
            _helper(helper, "erase", _key(host), host)
            removed = True
    auths = obj.get("auths") or {}
    names = [n for n in auths if canonical_host(n) == canonical_host(host)]
    for name in names:
        entry = auths.pop(name)
        removed = removed or bool(isinstance(entry, dict) and (entry.get("auth") or entry.get("username")
                                                               or entry.get("identitytoken")))
    if names:
        _save(obj)
    return removed
