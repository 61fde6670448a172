#!/usr/bin/python
"""Ansible module: everything the deploy needs to know about a Docker host in
one round trip (Docker Engine, Compose v2, Python requests, free space), so a
re-deploy on a ready host costs one task."""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

DOCUMENTATION = r"""
module: docker_host_probe
short_description: Report whether a host is ready to run the backup stack's containers
description:
  - Reports the Docker Engine (CLI, daemon, whether it answers, its version and root directory, whether its
    service starts at boot), the Compose v2 plugin (C(docker compose)), the Python C(requests) library of the
    interpreter running this module (community.docker's modules need it) and the free space of Docker's root
    directory and of the stack directory's file system.
  - C(missing) names each piece (engine, compose, requests) that is not installed; C(problems) holds one
    sentence for the engine being down and one per file system with too little free space.
  - Changes nothing; runs in check mode.
options:
  host: {description: Name of the host in the messages., type: str, required: true}
  stack_dir: {description: Directory of the compose project (need not exist yet)., type: path, required: true}
  min_free_mb: {description: Free MiB each of those file systems needs., type: int, required: true}
  wait: {description: Seconds to wait for an engine that does not answer yet (just started)., type: int, default: 0}
"""

EXAMPLES = r"""
- name: Look at the Docker host
  docker_host_probe:
    host: "{{ inventory_hostname }}"
    stack_dir: /opt/sqlserver-backup
    min_free_mb: 2048
  register: __docker_host_probe
"""

RETURN = r"""
engine: {description: cli, daemon, running, version, root_dir, enabled, error, log., type: dict, returned: always}
compose: {description: version of docker compose (empty when missing)., type: dict, returned: always}
python: {description: interpreter and its requests version (empty when missing)., type: dict, returned: always}
disk: {description: One entry per file system, paths on it and its free MiB., type: list, returned: always}
missing: {description: 'Pieces not installed (engine, compose, requests): their names.', type: dict, returned: always}
problems: {description: Why the host cannot run the stack although nothing is missing., type: list, returned: always}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# dockerd is in /usr/sbin (Debian's docker.io) or /usr/bin (docker-ce); a
# non-login PATH may lack either.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"])
DOCKER_LOG = "/var/log/docker.log"
# A hung daemon must not hang the deploy.
COMMAND_TIMEOUT = 30


def start(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return 124, "", f"{' '.join(process.args[:2])} did not answer within {COMMAND_TIMEOUT} s"
    return process.returncode, out, err


def run(argv: list[str]) -> tuple[int, str, str]:
    return finish(start(argv))


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def docker_info(cli: str, process: subprocess.Popen[str] | None = None) -> dict:
    """The daemon's version and root directory, or why it does not answer.
    `docker info` exits 0 even when the daemon is down: ServerErrors tells."""
    rc, out, err = finish(process or start([cli, "info", "--format", "{{json .}}"]))
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


def service_enabled() -> bool:
    """Whether the docker service starts at boot, as ansible.builtin.service
    would see it (systemd, else the sysvinit links update-rc.d makes)."""
    if systemd():
        return run(["systemctl", "is-enabled", "--quiet", "docker.service"])[0] == 0
    if os.path.isdir("/etc/rc2.d"):
        return bool(glob.glob("/etc/rc?.d/S??docker"))
    return True  # another init system: not this role's to judge


def last_log_line() -> str:
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


def probe(host: str, stack_dir: str, min_free_mb: int, wait: int) -> dict:
    cli = shutil.which("docker", path=SEARCH_PATH) or ""
    daemon = shutil.which("dockerd", path=SEARCH_PATH) or ""
    # An engine that is not this host's service (a socket mounted from
    # elsewhere) is neither started nor enabled here: "enabled" stays true.
    engine: dict = {"cli": cli, "daemon": daemon, "enabled": True, "running": False, "version": "", "root_dir": ""}
    engine.update({"error": "not installed", "log": ""})
    compose = {"version": ""}
    if cli:
        # Both at once: this task is all a re-deploy waits for.
        compose_version = start([cli, "compose", "version", "--short"])
        deadline = time.monotonic() + wait
        engine.update(docker_info(cli, start([cli, "info", "--format", "{{json .}}"])))
        while not engine["running"] and time.monotonic() < deadline:
            time.sleep(0.5)
            engine.update(docker_info(cli))
        if engine["running"]:
            engine["error"] = ""
        rc, out, _ = finish(compose_version)
        compose["version"] = out.strip() if rc == 0 else ""
    if daemon:
        engine["enabled"] = service_enabled()
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
        engine["log"] = last_log_line()
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
    module.exit_json(changed=False, **probe(params["host"], params["stack_dir"], params["min_free_mb"], params["wait"]))


if __name__ == "__main__":
    main()
