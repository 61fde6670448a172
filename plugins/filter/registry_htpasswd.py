"""The registry's htpasswd file, as Ansible filters.

The registry (distribution's htpasswd access controller) reads bcrypt hashes
only. bcrypt salts are random, so hashing every password again on each run
would rewrite the file every time and no run would report `changed=0`. A
deterministic salt would do, but then the salt follows from what the
controller knows instead of being random. Instead each user keeps the hash the
file already holds while the password still verifies against it (at the
configured cost); a new user, a changed password or a changed cost gets a
fresh random salt. The registry re-reads the file when it changes, so users
come and go without a restart.

No message here contains a password: problems name the user by index and name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

PLACEHOLDER = "CHANGE_ME"
# bcrypt reads at most 72 bytes; Go's bcrypt (the registry's) refuses longer
# passwords, and Python's bcrypt 5 too.
BCRYPT_MAX_BYTES = 72
USER_NAME = re.compile(r"^[^:\s]+$")
BCRYPT_HASH = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")


def registry_user_problems(users: Any, variable: str = "registry_users") -> list[str]:
    """What is wrong with the list of users, naming each entry, never a password."""
    if not isinstance(users, Sequence) or isinstance(users, str) or not users:
        return [f"{variable} must list at least one user as {{name: ..., password: ...}} (passwords from the vault)."]
    problems = []
    seen: set[str] = set()
    for index, user in enumerate(users):
        where = f"{variable}[{index}]"
        if not isinstance(user, Mapping):
            problems.append(f"{where} must be a dict with name and password.")
            continue
        name = user.get("name")
        if not isinstance(name, str) or not USER_NAME.match(name):
            problems.append(f"{where}.name must be a non-empty user name without ':' or whitespace.")
        else:
            where += f" ({name})"
            if name in seen:
                problems.append(f"{where}: the name is listed twice.")
            seen.add(name)
        password = user.get("password")
        if not isinstance(password, str) or not password:
            problems.append(f"{where}.password must be a non-empty string (keep it in the vault).")
        elif password == PLACEHOLDER:
            problems.append(f"{where}.password still holds the placeholder {PLACEHOLDER}.")
        elif len(password.encode()) > BCRYPT_MAX_BYTES:
            problems.append(f"{where}.password is longer than bcrypt's {BCRYPT_MAX_BYTES} bytes.")
        unknown = sorted(set(user) - {"name", "password"})
        if unknown:
            problems.append(f"{where} has unknown keys: {', '.join(map(str, unknown))}.")
    return problems


def _keeps(hashed: str, password: bytes, cost: int) -> bool:
    import bcrypt

    match = BCRYPT_HASH.match(hashed)
    if not match or int(match.group(1)) != cost:
        return False
    try:
        return bcrypt.checkpw(password, hashed.encode())
    except ValueError:
        return False


def registry_htpasswd(users: Sequence[Mapping[str, str]], current: str = "", cost: int = 10) -> str:
    """The htpasswd text for the users, keeping each current hash that still verifies."""
    try:
        import bcrypt
    except ImportError as error:
        raise RuntimeError(
            "the registry role hashes passwords with the Python package bcrypt on the controller "
            "(pip install bcrypt; it is in requirements.txt)"
        ) from error
    existing = {}
    for line in (current or "").splitlines():
        name, separator, hashed = line.partition(":")
        if separator:
            existing[name] = hashed.strip()
    lines = []
    for user in users:
        password = str(user["password"]).encode()
        hashed = existing.get(user["name"], "")
        if not _keeps(hashed, password, int(cost)):
            hashed = bcrypt.hashpw(password, bcrypt.gensalt(int(cost))).decode()
        lines.append(f"{user['name']}:{hashed}")
    return "\n".join(lines) + "\n"


class FilterModule:
    """Ansible filters of the registry role."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"registry_htpasswd": registry_htpasswd, "registry_user_problems": registry_user_problems}
