"""The environment GoBackup and the image's tools see: secrets that may come
from <NAME>_FILE, the `.env` beside the config (read as GoBackup reads it),
the `${VAR:-default}` references of the bundled template, and the CA bundle
that adds EXTRA_CA_CERTS. Messages name variables, never their values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from sqlserver_backup.config_errors import ConfigError
from sqlserver_backup.go_godotenv import DotenvError, parse_dotenv_text
from sqlserver_backup.state_files import state_dir

# The only variables that may come from a file named by <NAME>_FILE (Docker
# secrets). Other *_FILE variables (SSL_CERT_FILE, ...) keep their meaning.
SECRET_VARIABLES = (
    "MSSQL_PASSWORD",
    "MINIO_ACCESS_KEY",
    "MINIO_SECRET_KEY",
    "RESTORE_MSSQL_PASSWORD",
    "NOTIFY_WEBHOOK_URL",
    "NOTIFY_WEBHOOK_HEADERS",
    "NOTIFY_SLACK_URL",
    "NOTIFY_SMTP_USERNAME",
    "NOTIFY_SMTP_PASSWORD",
)
PLACEHOLDER = "CHANGE_ME"
DEFAULT_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"
DEFAULTED_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}")


def render_defaults(template: str, environ: Mapping[str, str]) -> str:
    """Resolve `${VAR:-default}` (GoBackup cannot); plain `${VAR}` is left for
    GoBackup to expand."""
    return DEFAULTED_REFERENCE.sub(lambda m: environ.get(m.group(1)) or m.group(2), template)


def resolve_file_env(environ: Mapping[str, str]) -> dict[str, str]:
    """NAME from NAME_FILE for the SECRET_VARIABLES only, as docker-entrypoint
    does, for tools started later with `docker exec` (they do not inherit the
    entrypoint's environment)."""
    resolved = dict(environ)
    for name in SECRET_VARIABLES:
        path = environ.get(f"{name}_FILE")
        if path and not environ.get(name) and Path(path).is_file():
            resolved[name] = Path(path).read_text(encoding="utf-8").rstrip("\n")
    return resolved


def parse_dotenv(path: Path) -> dict[str, str]:
    """A `.env` file as GoBackup loads it; ConfigError naming the line it refuses."""
    try:
        return parse_dotenv_text(path.read_text(encoding="utf-8"))
    except DotenvError as error:
        raise ConfigError([f".env line {error.line}: godotenv cannot separate key from value"]) from None


def dotenv_line(name: str, value: str) -> str:
    """How the role writes a variable to `.env`: single-quoted, taken literally."""
    return f"{name}='{value}'"


def environment_for(config_path: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment GoBackup will see: .env beside the config does not override."""
    merged = dict(environ)
    dotenv = config_path.parent / ".env"
    if dotenv.is_file():
        for key, value in parse_dotenv(dotenv).items():
            merged.setdefault(key, value)
    return merged


def ca_bundle(environ: Mapping[str, str]) -> Path | None:
    """Write base bundle + EXTRA_CA_CERTS to <state dir>/ca-certificates.crt;
    None when EXTRA_CA_CERTS is unset. ConfigError naming the variable."""
    extra_name = environ.get("EXTRA_CA_CERTS")
    if not extra_name:
        return None
    output = state_dir(environ) / "ca-certificates.crt"
    extra = Path(extra_name)
    if not extra.is_file():
        raise ConfigError(["EXTRA_CA_CERTS names a file that does not exist"])
    extra_text = extra.read_text(encoding="utf-8", errors="replace")
    if PEM_CERTIFICATE not in extra_text:
        raise ConfigError([f"EXTRA_CA_CERTS names a file without a PEM certificate ({PEM_CERTIFICATE})"])
    base_name = environ.get("SSL_CERT_FILE")
    base = Path(base_name) if base_name and Path(base_name) != output else DEFAULT_CA_BUNDLE
    if not base.is_file():
        which = "SSL_CERT_FILE" if base != DEFAULT_CA_BUNDLE else str(DEFAULT_CA_BUNDLE)
        raise ConfigError([f"the base CA bundle ({which}) does not exist"])
    bundle = base.read_text(encoding="utf-8", errors="replace").rstrip("\n") + "\n" + extra_text.rstrip("\n") + "\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    partial.write_text(bundle, encoding="utf-8")
    partial.chmod(0o644)
    partial.replace(output)
    return output


def environment_with_ca(environ: Mapping[str, str]) -> dict[str, str]:
    """environ with SSL_CERT_FILE pointing at the bundle that includes
    EXTRA_CA_CERTS (unchanged when EXTRA_CA_CERTS is unset)."""
    bundle = ca_bundle(environ)
    return {**environ, "SSL_CERT_FILE": str(bundle)} if bundle else dict(environ)
