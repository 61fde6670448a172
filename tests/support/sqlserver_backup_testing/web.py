"""HTTP as the tests and the benchmark ask it: is something answering, one
request, and the samples of a Prometheus /metrics page."""

from __future__ import annotations

import http.client
import urllib.request


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
