"""HTTP as the tests and the benchmark ask it: is something answering, one
request, the samples of a Prometheus /metrics page, and a certificate to
serve HTTPS with."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def answers(url: str, timeout: float = 2) -> bool:
    """The URL answers 200 (a refused connection, a timeout or an HTTP error: no)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http URLs of the tests' own
            return response.status == 200
    except OSError:
        return False


def request(host: str, port: int, path: str, method: str = "GET", accept: str = "") -> tuple[int, str, str]:
    """(status, body, Content-Type) of one request; a POST carries the form
    GoBackup's API takes (model=sales)."""
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        headers = {"Accept": accept} if accept else {}
        connection.request(method, path, body=b"model=sales" if method == "POST" else None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace"), response.getheader("Content-Type", "")
    finally:
        connection.close()


def metric_samples(text: str) -> dict[str, float]:
    """'name{labels}' -> value of every sample of a Prometheus text page (labels
    as the exposition writes them)."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def scrape_metrics(port: int, host: str = "127.0.0.1") -> dict[str, float]:
    """The samples of http://host:port/metrics."""
    status, text, _ = request(host, port, "/metrics")
    assert status == 200, text
    return metric_samples(text)


def self_signed_certificate(address: str = "127.0.0.1") -> tuple[str, str]:
    """A certificate for an IP address, valid for a day, signed by its own
    key: (certificate PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"sqlserver-backup test {address}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()
