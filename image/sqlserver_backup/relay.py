"""Notification relay of the backup container: GoBackup's notifiers post to it
on the loopback, it removes every secret from the title and message and sends
them on to the webhook, Slack or mail settings of the NOTIFY_* variables.

Usage: notify-relay CONFIG. It listens on 127.0.0.1 at the port of the
config's notifier URLs (http://127.0.0.1:<port>/<channel>) and exits at once
when the config has none. Why a relay: GoBackup forwards its failure reason
unchanged (it can hold a password) and logs each webhook's URL (which often
holds a token); here neither leaves the container, and the channel settings
never reach GoBackup.
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import sys
import urllib.request
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlserver_backup import config_errors, gobackup_config, gobackup_env, notify_settings

TIMEOUT_SECONDS = 30


def log(message: str) -> None:
    print(f"notify-relay: {message}", file=sys.stderr, flush=True)


class Relay:
    def __init__(self, environment: dict[str, str], secrets: list[str]) -> None:
        self.environment, self.secrets = environment, secrets

    def send(self, channel: str, title: str, message: str) -> None:
        title, message = notify_settings.redact(title, self.secrets), notify_settings.redact(message, self.secrets)
        if channel == "mail":
            self.mail(title, message)
            return
        if channel == "slack":
            url, headers = self.environment["NOTIFY_SLACK_URL"], {}
            body: dict[str, str] = {"text": f"{title}\n\n{message}"}
        else:
            url = self.environment["NOTIFY_WEBHOOK_URL"]
            headers = json.loads(self.environment.get("NOTIFY_WEBHOOK_HEADERS") or "{}")
            body = {"title": title, "message": message}
        request = urllib.request.Request(  # noqa: S310 - the checker allows http(s) only
            url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers}
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            response.read()

    def mail(self, title: str, message: str) -> None:
        settings = self.environment
        mail = EmailMessage()
        mail["Subject"], mail["From"], mail["To"] = title, settings["NOTIFY_SMTP_FROM"], settings["NOTIFY_SMTP_TO"]
        mail.set_content(message)
        host, port = settings["NOTIFY_SMTP_HOST"], int(settings.get("NOTIFY_SMTP_PORT") or 587)
        security = settings.get("NOTIFY_SMTP_SECURITY") or "starttls"
        context = ssl.create_default_context()
        smtp_class = smtplib.SMTP_SSL if security == "tls" else smtplib.SMTP
        extra: dict[str, Any] = {"context": context} if security == "tls" else {}
        with smtp_class(host, port, timeout=TIMEOUT_SECONDS, **extra) as smtp:
            if security == "starttls":
                smtp.starttls(context=context)
            if settings.get("NOTIFY_SMTP_USERNAME"):
                smtp.login(settings["NOTIFY_SMTP_USERNAME"], settings["NOTIFY_SMTP_PASSWORD"])
            smtp.send_message(mail)


def handler_for(relay: Relay, channels: set[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            channel = self.path.strip("/")
            if channel not in channels:
                self.answer(404, "unknown channel")
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                relay.send(channel, str(body.get("title", "")), str(body.get("message", "")))
            except Exception as error:
                # The class only: an error's text can quote a URL or a server's reply.
                self.answer(502, f"{channel} notification not sent: {type(error).__name__}")
                return
            self.answer(200, f"{channel} notification sent")

        def answer(self, status: int, text: str) -> None:
            log(text)
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass  # answer() logs what matters, without the request line

    return Handler


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    config = Path(argv[0])
    try:
        document, environment = gobackup_config.load(config, gobackup_env.resolve_file_env(os.environ))
    except config_errors.ConfigError as error:
        for reason in error.reasons:
            log(f"config error: {reason}")
        return 1
    channels = notify_settings.relay_channels(document)
    if not channels:
        return 0
    dotenv = config.parent / ".env"
    dotenv_names = list(gobackup_env.parse_dotenv(dotenv)) if dotenv.is_file() else []
    relay = Relay(environment, notify_settings.secret_values(environment, dotenv_names))
    server = ThreadingHTTPServer(("127.0.0.1", next(iter(channels.values()))), handler_for(relay, set(channels)))
    log(f"relaying {', '.join(sorted(channels))} notifications")
    server.serve_forever()
    return 0
