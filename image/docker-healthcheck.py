#!/usr/bin/env python3
"""Docker HEALTHCHECK for the backup container.

Daemon mode is healthy while GoBackup's scheduler answers /status on its
loopback web server; a one-shot container is healthy while it runs.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, "/usr/local/lib/gobackup-image")
import backupcfg

STATE_DIR = Path(os.environ.get("GOBACKUP_STATE_DIR", os.environ.get("HOME", "/var/lib/gobackup")))


def main() -> int:
    if os.environ.get("RUN_MODE", "daemon") == "once":
        return 0
    active = STATE_DIR / "active-config"
    if not active.is_file():
        print("unhealthy: the entrypoint has not validated a configuration yet")
        return 1
    # Secrets given as *_FILE live only in GoBackup's environment, not in this
    # probe's, so read the web address without checking the whole config.
    document = backupcfg.load_lenient(Path(active.read_text(encoding="utf-8").strip()), os.environ)
    address = backupcfg.web_address(document)
    if address is None:
        return 0  # web server disabled: Docker's own restart policy watches the process
    host, port = address
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/status", timeout=5) as response:
            if response.status == 200:
                return 0
            print(f"unhealthy: /status answered HTTP {response.status}")
    except OSError as error:
        print(f"unhealthy: the scheduler does not answer on {host}:{port}: {error}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
