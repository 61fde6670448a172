"""TLS and basic authentication of backup-metrics, from a web configuration
file in the format of the Prometheus exporter toolkit (its
docs/web-configuration.md), so a remote Prometheus scrapes it as it scrapes
any exporter: `metrics-web.yml` beside the active gobackup.yml.

Supported: tls_server_config with cert or cert_file, key or key_file,
client_ca or client_ca_file, client_auth_type (NoClientCert,
RequireAndVerifyClientCert) and min_version (TLS12, TLS13); basic_auth_users,
each a bcrypt hash. Anything else is refused by name rather than ignored: an
option the file asks for and this server does not apply would leave the
endpoint less protected than its owner believes. Relative file names are read
from the file's folder, as the toolkit reads them."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from sqlserver_backup.config_errors import ConfigError

WEB_CONFIG = "metrics-web.yml"
TLS_KEYS = {"cert", "cert_file", "key", "key_file", "client_ca", "client_ca_file", "client_auth_type", "min_version"}
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
MIN_VERSION = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}


@dataclass
class WebConfig:
    """The TLS context (None: plain HTTP) and the users (empty: no
    authentication) of the metrics endpoint."""

    tls: ssl.SSLContext | None
    users: Mapping[str, bytes]
    # Passwords already checked, by a digest of user and password: bcrypt is
    # slow on purpose, and Prometheus sends the same pair every scrape.
    accepted: set[str] = field(default_factory=set)

    def authorized(self, header: str | None) -> bool:
        if not self.users:
            return True
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        digest = hashlib.sha256(f"{user}\0{password}".encode()).hexdigest()
        if digest in self.accepted:
            return True
        hashed = self.users.get(user)
        try:
            if hashed is None or not bcrypt.checkpw(password.encode(), hashed):
                return False
        except ValueError:  # bcrypt refuses passwords over 72 bytes
            return False
        self.accepted.add(digest)
        return True


def web_config_path(config: Path) -> Path:
    return config.parent / WEB_CONFIG


def load_web_config(path: Path) -> WebConfig:
    """The file's settings; plain HTTP without authentication when there is
    no file. ConfigError naming each problem."""
    if not path.is_file():
        return WebConfig(None, {})
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError([f"{path} cannot be read: {error}"]) from None
    return web_config(document, path)


def web_config(document: Any, path: Path) -> WebConfig:
    """The settings of a web configuration read from `path`."""
    if not isinstance(document, dict):
        raise ConfigError([f"{path} is not a mapping"])
    unknown = sorted(set(document) - {"tls_server_config", "basic_auth_users"})
    if unknown:
        raise ConfigError([f"{path}: {', '.join(unknown)} not supported (tls_server_config and basic_auth_users are)"])
    users = basic_auth_users(path, document.get("basic_auth_users") or {})
    tls = document.get("tls_server_config")
    return WebConfig(tls_context(path, tls) if tls else None, users)


def web_config_problems(document: Any) -> list[str]:
    """What the container would refuse in the web configuration the roles
    render (backup_config_metrics_web_config: cert and key inline)."""
    try:
        web_config(document, Path("backup_config_metrics_web_config"))
    except ConfigError as error:
        return error.reasons
    return []


def basic_auth_users(path: Path, users: Any) -> dict[str, bytes]:
    if not isinstance(users, dict):
        raise ConfigError([f"{path}: basic_auth_users must map each user to a bcrypt hash"])
    found, problems = {}, []
    for user, hashed in users.items():
        text = str(hashed or "")
        try:
            bcrypt.checkpw(b"", text.encode())  # raises for anything but a whole bcrypt hash
        except ValueError:
            problems.append(f"{path}: the password of basic_auth_users.{user} is not a bcrypt hash")
        found[str(user)] = text.encode()
    if problems:
        raise ConfigError(problems)
    return found


def tls_context(path: Path, settings: Any) -> ssl.SSLContext:
    if not isinstance(settings, dict):
        raise ConfigError([f"{path}: tls_server_config must be a mapping"])
    problems = [f"{path}: tls_server_config.{key} not supported" for key in sorted(set(settings) - TLS_KEYS)]
    auth = str(settings.get("client_auth_type") or "NoClientCert")
    if auth not in CLIENT_AUTH:
        problems.append(f"{path}: tls_server_config.client_auth_type {auth} not supported ({', '.join(CLIENT_AUTH)})")
    version = str(settings.get("min_version") or "TLS12")
    if version not in MIN_VERSION:
        problems.append(f"{path}: tls_server_config.min_version {version} not supported ({', '.join(MIN_VERSION)})")
    if problems:
        raise ConfigError(problems)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_VERSION[version]
    try:
        with pem_file(path, settings, "cert") as cert, pem_file(path, settings, "key") as key:
            context.load_cert_chain(cert, key)
        context.verify_mode = CLIENT_AUTH[auth]
        if context.verify_mode != ssl.CERT_NONE:
            with pem_file(path, settings, "client_ca") as client_ca:
                context.load_verify_locations(client_ca)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError([f"{path}: tls_server_config cannot be used: {error}"]) from None
    return context


@contextlib.contextmanager
def pem_file(path: Path, settings: Mapping[str, Any], name: str) -> Iterator[str]:
    """The file of <name>_file (relative to the web configuration's folder),
    or the inline <name> in a private temporary file for as long as ssl reads
    it (ssl loads certificates and keys from files only)."""
    inline, named = str(settings.get(name) or ""), str(settings.get(f"{name}_file") or "")
    if bool(inline) == bool(named):
        raise ConfigError([f"{path}: tls_server_config needs one of {name} and {name}_file"])
    if named:
        yield str(path.parent / named)
        return
    descriptor, temporary = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(inline)
        yield temporary
    finally:
        os.unlink(temporary)
