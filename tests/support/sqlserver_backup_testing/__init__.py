"""What the tests (tests/), molecule's verifiers (molecule/*/tests) and the
benchmark (bench/) share, one module per job:

- paths: the repository, the venv's programs, the test vars, the roles' defaults,
  the collection's plugins
- waiting: waiting until something holds, free ports
- web: HTTP requests, Prometheus samples
- ansible: the project's playbooks run for real, their recap
- stacks: the dev stack deployed as one of its own, the stand-ins prepared
- standins: the stand-in binaries built and run on this machine
- entrypoint: the image's entrypoint run on this machine
- go: the Go programs the Go-behaviour ports are compared with
- fleet: test hosts reached over SSH

Everything is importable from here: `from sqlserver_backup_testing import REPO, wait_until`.
"""

from .ansible import ansible_playbook, ansible_program, dev_playbook, local_playbook, play_recap, said, vault_view
from .entrypoint import ENTRYPOINT, REQUIRED_ENV
from .fleet import FLEET_PLAYBOOK, fleet_connection, fleet_vars
from .go import ask_portref, build_reference
from .paths import (
    ARTIFACTS,
    REPO,
    TEST_VARS,
    USES_STANDINS,
    VENV_BIN,
    base_image,
    collection_plugin,
    load_test_vars,
    role_defaults,
)
from .stacks import StackNames, dev_stack_vars, prepare_standins, scratch_stack, stack_names
from .standins import StandinSqlServer, build_standins, standin_sql_server, standins_only
from .waiting import TimedOut, free_port, wait_until
from .web import answers, metric_samples, request, scrape_metrics, self_signed_certificate

__all__ = [
    "ARTIFACTS",
    "ENTRYPOINT",
    "FLEET_PLAYBOOK",
    "REPO",
    "REQUIRED_ENV",
    "TEST_VARS",
    "USES_STANDINS",
    "VENV_BIN",
    "StackNames",
    "StandinSqlServer",
    "TimedOut",
    "ansible_playbook",
    "ansible_program",
    "answers",
    "ask_portref",
    "base_image",
    "build_reference",
    "build_standins",
    "collection_plugin",
    "dev_playbook",
    "dev_stack_vars",
    "fleet_connection",
    "fleet_vars",
    "free_port",
    "load_test_vars",
    "local_playbook",
    "metric_samples",
    "play_recap",
    "prepare_standins",
    "request",
    "role_defaults",
    "said",
    "scrape_metrics",
    "scratch_stack",
    "self_signed_certificate",
    "stack_names",
    "standin_sql_server",
    "standins_only",
    "vault_view",
    "wait_until",
]
