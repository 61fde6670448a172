"""TLS and basic authentication of backup-metrics from metrics-web.yml, the
exporter toolkit's web configuration (image/sqlserver_backup/metrics_web.py):
the served endpoint on this machine, a certificate made here. Through a
deployed stack and a real Prometheus: tests/integration/test_metrics_stack.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
import yaml
from sqlserver_backup import metrics, metrics_web
from sqlserver_backup.config_errors import ConfigError
from sqlserver_backup_testing import self_signed_certificate

pytestmark = pytest.mark.unit

PASSWORD = "scrape-Passw0rd"


@pytest.fixture(scope="module")
def certificate() -> tuple[str, str]:
    return self_signed_certificate("127.0.0.1")


def web_config(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / metrics_web.WEB_CONFIG
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
def served(tmp_path: Path, certificate) -> Iterator[tuple[int, str]]:
    """The exporter with TLS (the key inline, the certificate from a file
    beside the configuration) and one user: (port, the certificate's file)."""
    cert, key = certificate
    (tmp_path / "server.crt").write_text(cert)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    path = web_config(
        tmp_path,
        {"tls_server_config": {"cert_file": "server.crt", "key": key}, "basic_auth_users": {"prometheus": hashed}},
    )
    web = metrics_web.load_web_config(path)
    source = metrics.Exporter({"models": {"sales": {}}}, tmp_path / "state.json", None)
    server = metrics.MetricsServer(("127.0.0.1", 0), metrics.handler_for(source.registry, web), web)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], str(tmp_path / "server.crt")
    server.shutdown()
    server.server_close()


def get(url: str, trusted: str, user: str = "", password: str = "") -> int:
    auth = (user, password) if user else None
    return requests.get(url, verify=trusted, auth=auth, timeout=10).status_code


def test_metrics_over_tls_need_a_known_user_and_password(served) -> None:
    port, trusted = served
    url = f"https://127.0.0.1:{port}/metrics"
    assert get(url, trusted, "prometheus", PASSWORD) == 200
    assert get(url, trusted, "prometheus", PASSWORD) == 200, "the second time from the cache of checked pairs"
    assert get(url, trusted) == 401
    assert get(url, trusted, "prometheus", "wrong") == 401
    assert get(url, trusted, "someone", PASSWORD) == 401
    with pytest.raises(requests.ConnectionError):
        get(f"http://127.0.0.1:{port}/metrics", trusted, "prometheus", PASSWORD)


def test_no_file_is_plain_http_without_authentication(tmp_path: Path) -> None:
    web = metrics_web.load_web_config(tmp_path / metrics_web.WEB_CONFIG)
    assert (web.tls, web.users, web.authorized(None)) == (None, {}, True)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"http_server_config": {"http2": False}}, "http_server_config not supported"),
        (
            {"tls_server_config": {"cert_file": "a", "key_file": "b", "cipher_suites": []}},
            "cipher_suites not supported",
        ),
        ({"tls_server_config": {"key_file": "b"}}, "needs one of cert and cert_file"),
        (
            {"tls_server_config": {"cert_file": "a", "key_file": "b", "client_auth_type": "RequireAnyClientCert"}},
            "client_auth_type RequireAnyClientCert not supported",
        ),
        ({"basic_auth_users": {"prometheus": "plain-text"}}, "basic_auth_users.prometheus is not a bcrypt hash"),
        (
            {"tls_server_config": {"cert_file": "missing.crt", "key_file": "missing.key"}},
            "tls_server_config cannot be used",
        ),
    ],
)
def test_what_the_server_would_not_apply_is_refused_by_name(tmp_path: Path, document: dict, reason: str) -> None:
    with pytest.raises(ConfigError) as refused:
        metrics_web.load_web_config(web_config(tmp_path, document))
    assert reason in "; ".join(refused.value.reasons)
