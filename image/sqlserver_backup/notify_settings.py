"""Notifications through the relay: the rules for GoBackup's notifiers and
the relay's own settings (NOTIFY_*), and the secret values the relay removes.

GoBackup sends its failure reason as it is (sqlpackage's stderr, an S3 error,
openssl's command line with its -k password) and logs the full URL of every
webhook it calls. So its notifiers only post to notify-relay on the
container's loopback, which removes every secret value from the title and
message before it forwards them to the channel whose settings (NOTIFY_*) it
alone reads."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from sqlserver_backup.gobackup_env import SECRET_VARIABLES

RELAY_URL = re.compile(r"^http://127\.0\.0\.1:([0-9]{1,5})/(webhook|slack|mail)$")
NOTIFY_CHANNELS: dict[str, tuple[str, ...]] = {
    "webhook": ("NOTIFY_WEBHOOK_URL",),
    "slack": ("NOTIFY_SLACK_URL",),
    "mail": ("NOTIFY_SMTP_HOST", "NOTIFY_SMTP_FROM", "NOTIFY_SMTP_TO"),
}
# Relay settings that are not secrets (the others are removed from messages).
NOTIFY_PLAIN_SETTINGS = (
    "NOTIFY_SMTP_HOST",
    "NOTIFY_SMTP_PORT",
    "NOTIFY_SMTP_SECURITY",
    "NOTIFY_SMTP_FROM",
    "NOTIFY_SMTP_TO",
)
SMTP_SECURITY = ("starttls", "tls", "none")
NOTIFIER_KEYS = {"type", "url", "on_success", "on_failure"}
_SECRET_NAME = re.compile(r"(PASSWORD|SECRET|SECRET_KEY|ACCESS_KEY|TOKEN)$")
_MAIL_ADDRESS = re.compile(r"^[^@\s,]+@[^@\s,]+$")


def relay_channels(document: Mapping[str, Any]) -> dict[str, int]:
    """{channel: relay port} of the notifiers of every model."""
    channels: dict[str, int] = {}
    models = document.get("models")
    for body in models.values() if isinstance(models, dict) else ():
        notifiers = body.get("notifiers") if isinstance(body, dict) else None
        for notifier in (notifiers or {}).values() if isinstance(notifiers, dict) else ():
            match = RELAY_URL.match(str(notifier.get("url", ""))) if isinstance(notifier, dict) else None
            if match:
                channels[match.group(2)] = int(match.group(1))
    return channels


def check_notifiers(model: str, notifiers: dict[Any, Any]) -> list[str]:
    """A model's notifiers must post to the relay, and nothing else."""
    reasons = []
    for key, notifier in notifiers.items():
        where = f"model {model}: notifier {key}"
        if not isinstance(notifier, dict):
            reasons.append(f"{where} must be a mapping")
            continue
        reasons += [
            f"{where}: key '{name}' is not one the notification relay takes ({', '.join(sorted(NOTIFIER_KEYS))})"
            for name in notifier
            if name not in NOTIFIER_KEYS
        ]
        if notifier.get("type") != "webhook" or not RELAY_URL.match(str(notifier.get("url", ""))):
            reasons.append(
                f"{where}: must be type webhook with url http://127.0.0.1:<port>/webhook, /slack or /mail (the"
                " notification relay): GoBackup would send its failure reason, which can hold a secret, straight out"
            )
        reasons += [
            f"{where}: {flag} must be true or false"
            for flag in ("on_success", "on_failure")
            if flag in notifier and not isinstance(notifier[flag], bool)
        ]
    return reasons


def _http_url_problem(name: str, value: str) -> str | None:
    url = urlsplit(value)
    if url.scheme not in ("http", "https") or not url.hostname:
        return f"{name} must be a full http(s) URL"
    return None


def _mail_problems(environment: Mapping[str, str]) -> list[str]:
    reasons = []
    port = environment.get("NOTIFY_SMTP_PORT", "587")
    if not port.isdigit() or not 0 < int(port) < 65536:
        reasons.append("NOTIFY_SMTP_PORT must be a port number")
    if environment.get("NOTIFY_SMTP_SECURITY", "starttls") not in SMTP_SECURITY:
        reasons.append(f"NOTIFY_SMTP_SECURITY must be one of {', '.join(SMTP_SECURITY)}")
    if bool(environment.get("NOTIFY_SMTP_USERNAME")) != bool(environment.get("NOTIFY_SMTP_PASSWORD")):
        reasons.append("NOTIFY_SMTP_USERNAME and NOTIFY_SMTP_PASSWORD go together: set both or neither")
    addresses = [environment.get("NOTIFY_SMTP_FROM", ""), *environment.get("NOTIFY_SMTP_TO", "").split(",")]
    if any(address and not _MAIL_ADDRESS.match(address.strip()) for address in addresses):
        reasons.append("NOTIFY_SMTP_FROM and NOTIFY_SMTP_TO (comma-separated) must be mail addresses")
    return reasons


def notify_problems(document: Mapping[str, Any], environment: Mapping[str, str]) -> list[str]:
    """The relay's settings each configured channel needs, named by variable."""
    channels = relay_channels(document)
    reasons = []
    if len(set(channels.values())) > 1:
        reasons.append("every notifier must use the same relay port")
    for channel in channels:
        reasons += [
            f"{name} is not set (the {channel} notifier needs it)"
            for name in NOTIFY_CHANNELS[channel]
            if not environment.get(name)
        ]
    for name in ("NOTIFY_WEBHOOK_URL", "NOTIFY_SLACK_URL"):
        problem = _http_url_problem(name, environment[name]) if environment.get(name) else None
        reasons += [problem] if problem else []
    if environment.get("NOTIFY_WEBHOOK_HEADERS"):
        try:
            headers = json.loads(environment["NOTIFY_WEBHOOK_HEADERS"])
        except ValueError:
            headers = None
        if not isinstance(headers, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
        ):
            reasons.append('NOTIFY_WEBHOOK_HEADERS must be a JSON object of strings, e.g. {"Authorization": "…"}')
    return reasons + (_mail_problems(environment) if "mail" in channels else [])


def secret_values(environment: Mapping[str, str], dotenv_names: Iterator[str] | list[str] = ()) -> list[str]:
    """Every secret value a message must not carry, longest first: the secret
    variables, whatever .env holds and any *_PASSWORD, *_SECRET, *_TOKEN."""
    names = set(SECRET_VARIABLES) | set(dotenv_names)
    names |= {name for name in environment if _SECRET_NAME.search(name)}
    values = {environment[name] for name in names - set(NOTIFY_PLAIN_SETTINGS) if environment.get(name)}
    values |= {quote(value, safe="") for value in values}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    """The text with every secret value replaced by [redacted]."""
    for value in secrets:
        text = text.replace(value, "[redacted]")
    return text
