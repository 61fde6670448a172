#!/usr/bin/python
# Copyright: sqlserver-backup maintainers
# MIT License (see galaxy.yml)
"""Ansible module: everything the deploy needs to know about a Docker host in
one round trip (Docker Engine, Compose v2, Python requests, free space), so a
re-deploy on a ready host costs one task."""

from __future__ import annotations

DOCUMENTATION = r"""
module: docker_host_probe
short_description: Report whether a host is ready to run the backup stack's containers
version_added: 1.0.0
author: sqlserver-backup maintainers (!UNKNOWN)
description:
  - Reports the Docker Engine (CLI, daemon, whether it answers, its version and root directory, whether its
    service starts at boot), the Compose v2 plugin (C(docker compose)), the Python C(requests) library of the
    interpreter running this module (community.docker's modules need it) and the free space of Docker's root
    directory and of the stack directory's file system.
  - RV(missing) names each piece (engine, compose, requests) that is not installed; RV(problems) holds one
    sentence for the engine being down and one per file system with too little free space.
  - Each command it runs is given 30 seconds, so a hung daemon does not hang the deploy.
options:
  host:
    description: Name of the host in the messages.
    type: str
    required: true
  stack_dir:
    description: Directory of the compose project (need not exist yet).
    type: path
    required: true
  min_free_mb:
    description: Free MiB each of those file systems needs.
    type: int
    required: true
  wait:
    description: Seconds to wait for an engine that does not answer yet (just started).
    type: int
    default: 0
notes:
  - Changes nothing; supports check mode.
"""

EXAMPLES = r"""
- name: Look at the Docker host
  sqlserver_backup.backups.docker_host_probe:
    host: "{{ inventory_hostname }}"
    stack_dir: /opt/sqlserver-backup
    min_free_mb: 2048
  register: __docker_host_probe
"""

RETURN = r"""
engine:
  description: The Docker Engine.
  type: dict
  returned: always
  contains:
    cli: {description: Path of the docker CLI (empty when missing)., type: str}
    daemon: {description: Path of dockerd (empty when missing)., type: str}
    running: {description: Whether the daemon answers., type: bool}
    version: {description: The daemon's version (empty when it does not answer)., type: str}
    root_dir: {description: Docker's root directory (empty when the daemon does not answer)., type: str}
    enabled: {description: Whether the service starts at boot (true for an engine that is not this host's)., type: bool}
    error: {description: Why the daemon does not answer (empty when it does)., type: str}
    log: {description: The last line of the daemon's log when it is down., type: str}
compose:
  description: The Compose v2 plugin.
  type: dict
  returned: always
  contains:
    version: {description: Version of docker compose (empty when missing)., type: str}
python:
  description: The interpreter running this module.
  type: dict
  returned: always
  contains:
    interpreter: {description: Its path., type: str}
    requests: {description: Its requests version (empty when missing)., type: str}
disk:
  description: One entry per file system of Docker's root directory and the stack directory.
  type: list
  elements: dict
  returned: always
  contains:
    paths: {description: The paths on this file system., type: list, elements: str}
    free_mb: {description: Its free MiB (for an unprivileged user)., type: int}
missing:
  description: Pieces not installed (engine, compose, requests), each with what to install.
  type: dict
  returned: always
problems:
  description: Why the host cannot run the stack although nothing is missing.
  type: list
  elements: str
  returned: always
"""

import glob
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import time
from collections.abc import Callable

from ansible.module_utils.basic import AnsibleModule

# dockerd is in /usr/sbin (Debian's docker.io) or /usr/bin (docker-ce); a
# non-login PATH may lack either.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"])
DOCKER_LOG = "/var/log/docker.log"
# A hung daemon must not hang the deploy.
COMMAND_TIMEOUT = 30

Run = Callable[[list[str]], tuple[int, str, str]]


def runner(module: AnsibleModule) -> Run:
    """module.run_command, each command stopped after COMMAND_TIMEOUT seconds
    by coreutils' timeout (run_command itself has no time limit)."""
    timeout = shutil.which("timeout", path=SEARCH_PATH)
    limit = [timeout, "--kill-after=5", str(COMMAND_TIMEOUT)] if timeout else []

    def run(argv: list[str]) -> tuple[int, str, str]:
        rc, out, err = module.run_command([*limit, *argv])
        if limit and rc in (124, 137):  # timed out (137: killed after the grace period)
            return rc, "", f"{' '.join(argv[:2])} did not answer within {COMMAND_TIMEOUT} s"
        return rc, out, err

    return run


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def docker_info(run: Run, cli: str) -> dict:
    """The daemon's version and root directory, or why it does not answer.
    `docker info` exits 0 even when the daemon is down: ServerErrors tells."""
    rc, out, err = run([cli, "info", "--format", "{{json .}}"])
    try:
        info = json.loads(out) if rc == 0 else {}
    except ValueError:
        info = {}
    errors = [e for e in info.get("ServerErrors") or [] if e]
    if rc == 0 and not errors and info.get("ServerVersion"):
        return {"running": True, "version": info["ServerVersion"], "root_dir": info.get("DockerRootDir", "")}
    return {"running": False, "error": first_line("\n".join(errors) or err or out) or "docker info failed"}


def configured_root_dir() -> str:
    """Docker's root directory when the daemon cannot tell (down or absent)."""
    try:
        with open("/etc/docker/daemon.json", encoding="utf-8") as config:
            return json.load(config).get("data-root") or "/var/lib/docker"
    except (OSError, ValueError, AttributeError):
        return "/var/lib/docker"


def systemd() -> bool:
    return os.path.isdir("/run/systemd/system")


def service_enabled(run: Run) -> bool:
    """Whether the docker service starts at boot, as ansible.builtin.service
    would see it (systemd, else the sysvinit links update-rc.d makes)."""
    if systemd():
        return run(["systemctl", "is-enabled", "--quiet", "docker.service"])[0] == 0
    if os.path.isdir("/etc/rc2.d"):
        return bool(glob.glob("/etc/rc?.d/S??docker"))
    return True  # another init system: not this role's to judge


def last_log_line(run: Run) -> str:
    """The daemon's last word, which usually says why it stopped."""
    if systemd():
        return first_line(run(["journalctl", "--unit=docker.service", "--lines=1", "--output=cat", "--no-pager"])[1])
    try:
        with open(DOCKER_LOG, "rb") as log:
            log.seek(max(0, os.path.getsize(DOCKER_LOG) - 4096))
            lines = log.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def requests_version() -> str:
    """requests' version for this interpreter (the one community.docker's
    modules run with), found without importing it: an import costs more than
    the rest of the probe."""
    if importlib.util.find_spec("requests") is None:
        return ""
    try:
        return importlib.metadata.version("requests")
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def existing_ancestor(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def free_space(paths: list[str]) -> list[dict]:
    """Free MiB per file system (for an unprivileged user: f_bavail), with the
    paths on it, in the order given."""
    file_systems: dict[int, dict] = {}
    for path in paths:
        where = existing_ancestor(path)
        device = os.stat(where).st_dev
        if device not in file_systems:
            stats = os.statvfs(where)
            file_systems[device] = {"paths": [], "free_mb": stats.f_bavail * stats.f_frsize // (1024 * 1024)}
        if path not in file_systems[device]["paths"]:
            file_systems[device]["paths"].append(path)
    return list(file_systems.values())


def probe(run: Run, host: str, stack_dir: str, min_free_mb: int, wait: int) -> dict:
    cli = shutil.which("docker", path=SEARCH_PATH) or ""
    daemon = shutil.which("dockerd", path=SEARCH_PATH) or ""
    # An engine that is not this host's service (a socket mounted from
    # elsewhere) is neither started nor enabled here: "enabled" stays true.
    engine: dict = {"cli": cli, "daemon": daemon, "enabled": True, "running": False, "version": "", "root_dir": ""}
    engine.update({"error": "not installed", "log": ""})
    compose = {"version": ""}
    if cli:
        deadline = time.monotonic() + wait
        engine.update(docker_info(run, cli))
        while not engine["running"] and time.monotonic() < deadline:
            time.sleep(0.5)
            engine.update(docker_info(run, cli))
        if engine["running"]:
            engine["error"] = ""
        rc, out, _err = run([cli, "compose", "version", "--short"])
        compose["version"] = out.strip() if rc == 0 else ""
    if daemon:
        engine["enabled"] = service_enabled(run)
    python = {"interpreter": sys.executable, "requests": requests_version()}

    missing = {}
    # An engine that answers is there, wherever its daemon runs.
    if not cli or not (daemon or engine["running"]):
        missing["engine"] = "Docker Engine (docker, dockerd)"
    if not compose["version"]:
        missing["compose"] = "Compose v2 plugin (docker compose)"
    if not python["requests"]:
        missing["requests"] = f"python3-requests (Python's requests for {sys.executable}, which community.docker needs)"

    problems = []
    if cli and daemon and not engine["running"]:
        engine["log"] = last_log_line(run)
        reason = engine["error"]
        if wait:
            reason += f" It did not answer within docker_host_start_timeout ({wait} s) of starting it."
        if engine["log"]:
            reason += f" Its log ends with: {engine['log']}"
        problems.append(f"Docker Engine on {host} is down: {reason}")
    disk = free_space([engine["root_dir"] or configured_root_dir(), stack_dir])
    for file_system in disk:
        if file_system["free_mb"] < min_free_mb:
            problems.append(
                f"disk full: {' and '.join(file_system['paths'])} on {host} has {file_system['free_mb']} MiB free,"
                f" the deploy needs docker_host_min_free_mb ({min_free_mb} MiB): free space there or lower it"
            )
    return dict(engine=engine, compose=compose, python=python, disk=disk, missing=missing, problems=problems)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "required": True},
            "stack_dir": {"type": "path", "required": True},
            "min_free_mb": {"type": "int", "required": True},
            "wait": {"type": "int", "default": 0},
        },
        supports_check_mode=True,
    )
    params = module.params
    result = probe(runner(module), params["host"], params["stack_dir"], params["min_free_mb"], params["wait"])
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
