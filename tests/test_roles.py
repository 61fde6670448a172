"""Roles and inventories: documented defaults, the configuration role run for
real against the example inventories, secrets kept out of output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, ansible_playbook

ROLES = sorted(path.name for path in (REPO / "roles").iterdir() if path.is_dir())
EXAMPLE_VAULT_PASSWORD = "example-vault-password"  # documented in the README
TEST_SECRETS = {
    "vault_minio_backup_access_key": "backup-access-key-4d3c",
    "vault_minio_backup_secret_key": "Secr3tMinioKeyForTests9x",
    "vault_mssql_restore_password": "Rest0reOnlyPassw0rd",
    "vault_mssql_passwords": {
        "sqlprod_01": "Pr0dOnePasswordZq7",
        "sqlprod_02": "Pr0dTwoPasswordKw2",
        "sqlstaging_01": "StagingOnePassword5",
        "sqlstaging_02": "StagingTwoPassword6",
    },
}


def secret_values() -> list[str]:
    return [v for v in TEST_SECRETS.values() if isinstance(v, str)] + list(
        TEST_SECRETS["vault_mssql_passwords"].values()
    )


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_mirror_the_defaults(role: str) -> None:
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())
    spec = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert sorted(options) == sorted(defaults)
    for name, value in defaults.items():
        assert options[name].get("default") == value, name
        assert options[name].get("description"), name


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_commented(role: str) -> None:
    lines = (REPO / "roles" / role / "defaults" / "main.yml").read_text().splitlines()
    uncommented = []
    for index, line in enumerate(lines):
        if not re.match(r"^[a-z_]+:", line):
            continue
        above = index - 1
        # A run of keys shares the comment above the run.
        while above >= 0 and (re.match(r"^[a-z_]+:", lines[above]) or lines[above].startswith(" ")):
            above -= 1
        if above < 0 or not lines[above].startswith("#"):
            uncommented.append(line.split(":")[0])
    assert uncommented == []


@pytest.mark.parametrize("role", ROLES)
def test_role_variables_carry_the_role_prefix(role: str) -> None:
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())
    assert [name for name in defaults if not name.startswith(f"{role}_")] == []


@pytest.fixture(scope="module")
def vault_password_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vault") / "password"
    path.write_text(EXAMPLE_VAULT_PASSWORD)
    path.chmod(0o600)
    return path


def render(inventory: str, out: Path, vault_password_file: Path, *extra: str, secrets: bool = True):
    command = [
        "-v",
        "-i",
        str(REPO / "inventories" / inventory),
        "--vault-password-file",
        str(vault_password_file),
        "-e",
        f"backup_config_dir={out}/{{{{ inventory_hostname }}}}",
        "-e",
        "backup_config_restart_on_change=false",
        "-e",
        f"backup_config_owner_uid={os.getuid()}",
        "-e",
        "ansible_become=false",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
    ]
    if secrets:
        secrets_file = out.parent / f"{out.name}-secrets.yml"
        secrets_file.write_text(yaml.safe_dump(TEST_SECRETS))
        command += ["-e", f"@{secrets_file}"]
    command += extra  # later extra vars win over the test secrets
    command.append(str(REPO / "tests" / "playbooks" / "render_config.yml"))
    return ansible_playbook(*command)


@pytest.fixture(scope="module")
def production(tmp_path_factory, vault_password_file: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("production") / "hosts"
    result = render("production", out, vault_password_file)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result


def said(result: subprocess.CompletedProcess[str], phrase: str) -> bool:
    """The phrase appears in Ansible's output, however the YAML callback wrapped it."""
    return " ".join(phrase.split()) in " ".join(result.stdout.split())


def config_of(out: Path, host: str) -> dict:
    return yaml.safe_load((out / host / "gobackup.yml").read_text())


def test_every_file_the_dockerfile_copies_is_in_the_build_context() -> None:
    copied = set()
    for line in (REPO / "image" / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(part for part in line.split()[1:-1] if not part.startswith("artifacts/"))
    context = yaml.safe_load((REPO / "roles" / "backup_image" / "vars" / "main.yml").read_text())
    assert copied <= set(context["_backup_image_context_files"])
    assert copied | {"Dockerfile"} == {path.name for path in (REPO / "image").iterdir()}, "every image file is used"


def test_each_host_gets_its_own_models_and_paths(production) -> None:
    out, _ = production
    first = config_of(out, "sqlbackup-01.example.internal")["models"]
    second = config_of(out, "sqlbackup-02.example.internal")["models"]
    assert sorted(first) == ["inventory", "sales"]
    assert sorted(second) == ["hr", "payroll"]
    paths = [model["storages"]["minio"]["path"] for model in [*first.values(), *second.values()]]
    assert len(set(paths)) == 4
    assert first["sales"]["storages"]["minio"]["path"] == "production/sqlbackup-01.example.internal/sales"


def test_host_settings_override_group_settings(production) -> None:
    out, _ = production
    first = config_of(out, "sqlbackup-01.example.internal")["models"]
    assert first["sales"]["storages"]["minio"]["keep"] == 14  # group_vars
    assert first["inventory"]["storages"]["minio"]["keep"] == 7  # per database
    assert first["inventory"]["schedule"]["cron"] == "30 3 * * *"
    payroll = config_of(out, "sqlbackup-02.example.internal")["models"]["payroll"]
    assert payroll["databases"]["payroll"]["args"] == "/p:CommandTimeout=7200"


def test_host_vars_override_group_vars_in_the_inventory(vault_password_file: Path) -> None:
    def timezone(host: str) -> str:
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-inventory"),
                "-i",
                str(REPO / "inventories" / "production"),
                "--vault-password-file",
                str(vault_password_file),
                "--host",
                host,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return yaml.safe_load(result.stdout)["backup_stack_timezone"]

    assert timezone("sqlbackup-01.example.internal") == "Europe/Berlin"
    assert timezone("sqlbackup-02.example.internal") == "America/New_York"


def test_secrets_are_only_in_the_private_env_file(production) -> None:
    out, result = production
    host = out / "sqlbackup-01.example.internal"
    env_file = (host / ".env").read_text()
    assert "MSSQL_PASSWORD_SALES='Pr0dOnePasswordZq7'" in env_file
    assert "MINIO_SECRET_KEY='Secr3tMinioKeyForTests9x'" in env_file
    assert (host / ".env").stat().st_mode & 0o777 == 0o600
    assert (host / "gobackup.yml").stat().st_mode & 0o777 == 0o600
    assert not [s for s in secret_values() if s in (host / "gobackup.yml").read_text()]
    assert not [s for s in secret_values() if s in result.stdout + result.stderr]


def test_rendered_config_passes_the_image_check(production) -> None:
    out, _ = production
    check = subprocess.run(
        [
            sys.executable,
            str(REPO / "image" / "backupcfg.py"),
            "check",
            str(out / "sqlbackup-02.example.internal" / "gobackup.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"]},
    )
    assert check.returncode == 0, check.stderr


def test_a_second_run_changes_nothing(tmp_path: Path, vault_password_file: Path) -> None:
    out = tmp_path / "hosts"
    assert render("staging", out, vault_password_file).returncode == 0
    again = render("staging", out, vault_password_file)
    assert re.search(r"changed=0\s", again.stdout), again.stdout


def test_check_diff_shows_changes_but_never_a_secret(tmp_path: Path, vault_password_file: Path) -> None:
    out = tmp_path / "hosts"
    assert render("staging", out, vault_password_file).returncode == 0
    changed = render(
        "staging",
        out,
        vault_password_file,
        "--check",
        "--diff",
        "-e",
        "backup_config_keep=9",
        "-e",
        "backup_config_minio_secret_key=Ch4ngedSecretValueXy",
    )
    assert changed.returncode == 0, changed.stdout
    assert "+        keep: 9" in changed.stdout
    assert "Ch4ngedSecretValueXy" not in changed.stdout + changed.stderr
    assert not [s for s in secret_values() if s in changed.stdout + changed.stderr]
    assert "keep: 3" in (out / "sqlbackup-staging.example.internal" / "gobackup.yml").read_text(), "check mode wrote"


def test_placeholders_from_the_example_vault_are_refused(tmp_path: Path, vault_password_file: Path) -> None:
    result = render("production", tmp_path / "hosts", vault_password_file, secrets=False)
    assert result.returncode != 0
    assert said(result, "(set by backup_config_databases[0] (sales).password) still holds the placeholder CHANGE_ME")
    assert said(result, "MINIO_SECRET_KEY (set by backup_config_minio_secret_key) still holds the placeholder")


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        (
            '{"vault_mssql_passwords": {"sqlstaging_01": "has space", "sqlstaging_02": "ok-Passw0rd"}}',
            "password (from MSSQL_PASSWORD_CRM (set by backup_config_databases[0] (crm).password)) contains whitespace",
        ),
        (
            '{"vault_mssql_passwords": {"sqlstaging_01": "it\'s quoted", "sqlstaging_02": "ok-Passw0rd"}}',
            "MSSQL_PASSWORD_CRM (set by backup_config_databases[0] (crm).password)",
        ),
        ("backup_config_minio_endpoint=minio:9000", "storage minio: endpoint must be a full URL"),
        ("backup_config_minio_bucket=Bad_Bucket", "backup_config_minio_bucket must be a valid S3 bucket name"),
        (
            "backup_config_schedule='0 2 * *'",
            "is refused by GoBackup's cron parser (robfig/cron v3): expected exactly 5",
        ),
        ("backup_config_schedule='0 2 * * 7'", "end of range (7) above maximum (6)"),
        (
            '{"backup_config_databases": [{"name": "Sales", "database": "S", "host": "h", "password": "p"}]}',
            "lower case",
        ),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, vault_password_file: Path, override: str, reason: str) -> None:
    result = render("staging", tmp_path / "hosts", vault_password_file, "-e", override)
    assert result.returncode != 0
    assert said(result, reason), result.stdout[-2000:]
    assert "has space" not in result.stdout + result.stderr
    assert "it's quoted" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "schedule", ["@every 1h", "0 2 * * mon-fri", "0 3 ? * SUN", "@daily", "15 1 1 jan,jul *", "CRON_TZ=UTC 0 2 * * *"]
)
def test_every_schedule_gobackup_accepts_is_deployed(tmp_path: Path, vault_password_file: Path, schedule: str) -> None:
    result = render(
        "staging", tmp_path / "hosts", vault_password_file, "-e", json.dumps({"backup_config_schedule": schedule})
    )
    assert result.returncode == 0, result.stdout[-2000:]
    assert config_of(tmp_path / "hosts", "sqlbackup-staging.example.internal")["models"]["crm"]["schedule"] == {
        "cron": schedule
    }


def test_restores_get_their_own_server_and_login(production) -> None:
    out, _ = production
    host = out / "sqlbackup-01.example.internal"
    restore = yaml.safe_load((host / "restore.yml").read_text())["models"]["sales"]
    assert restore == {
        "host": "sqlscratch.example.internal",
        "port": 1433,
        "username": "backup_restorer",
        "password": "${MSSQL_RESTORE_PASSWORD_SALES}",
        "trust_server_certificate": True,
    }
    assert "MSSQL_RESTORE_PASSWORD_SALES='Rest0reOnlyPassw0rd'" in (host / ".env").read_text()
    assert (host / "restore.yml").stat().st_mode & 0o777 == 0o600


def vault_view(path: Path, password_file: Path) -> str:
    command = [str(Path(sys.executable).parent / "ansible-vault"), "view", "--vault-password-file", str(password_file)]
    return subprocess.run([*command, str(path)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("inventory", ["staging", "production"])
def test_each_example_host_has_its_own_vaulted_backup_key(vault_password_file: Path, inventory: str) -> None:
    group_vault = REPO / "inventories" / inventory / "group_vars" / "backup_hosts" / "vault.yml"
    hosts = yaml.safe_load((REPO / "inventories" / inventory / "hosts.yml").read_text())["backup_hosts"]["hosts"]
    for host in hosts:
        host_vault = REPO / "inventories" / inventory / "host_vars" / host / "vault.yml"
        assert host_vault.read_text().startswith("$ANSIBLE_VAULT"), host
        plain = vault_view(host_vault, vault_password_file)
        assert {"vault_minio_backup_access_key", "vault_minio_backup_secret_key"} <= set(yaml.safe_load(plain))
    group = vault_view(group_vault, vault_password_file)
    assert "vault_minio_backup_access_key" not in group, "no key shared by the group"


def test_the_production_example_keeps_the_pinned_checksums() -> None:
    text = (REPO / "inventories" / "production" / "group_vars" / "backup_hosts" / "vars.yml").read_text()
    assert "checksum" not in text, "a checksum is not a secret: the role's pinned default applies"


def test_minio_setup_refuses_the_example_vault_placeholders(vault_password_file: Path) -> None:
    result = ansible_playbook(
        "-i",
        str(REPO / "inventories" / "production"),
        "--vault-password-file",
        str(vault_password_file),
        "-e",
        "ansible_connection=local",
        "-e",
        "ansible_become=false",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        str(REPO / "playbooks" / "minio_setup.yml"),
    )
    assert result.returncode != 0
    assert said(result, "still holds the placeholder CHANGE_ME")


def test_the_containers_own_settings_are_checked_before_the_deploy(tmp_path: Path) -> None:
    """The entrypoint's rules (backupcfg), applied by the backup_stack role
    before anything is built or changed, naming the Ansible variables."""
    settings = {
        "dev_secrets_dir": str(tmp_path / "secrets"),
        "backup_stack_dir": str(tmp_path / "stack"),
        "backup_stack_run_mode": "sometimes",
        "backup_stack_metrics_enabled": True,
        "backup_stack_metrics_port": 2703,
    }
    result = ansible_playbook(
        "-i", str(REPO / "inventories" / "dev"), "-e", json.dumps(settings), str(REPO / "playbooks" / "deploy.yml")
    )
    assert result.returncode != 0
    assert said(result, "RUN_MODE (set by backup_stack_run_mode) must be 'once' or 'daemon', not 'sometimes'")
    assert said(
        result,
        "METRICS_PORT (set by backup_stack_metrics_port) must differ from web.port (set by backup_config_web_port),"
        " the port of GoBackup's own web server in the container (2703)",
    )
    assert not (tmp_path / "stack").exists(), "nothing was deployed"
