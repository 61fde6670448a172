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
from sqlserver_backup import gobackup_config
from sqlserver_backup.workers import worker_problems
from sqlserver_backup_testing import REPO, VENV_BIN, ansible_playbook, free_port, local_playbook, said, vault_view

EXAMPLE_VAULT_PASSWORD = "example-vault-password"  # documented in the README
TEST_SECRETS = {
    "vault_minio_backup_access_key": "backup-access-key-4d3c",
    "vault_minio_backup_secret_key": "Secr3tMinioKeyForTests9x",
    "vault_mssql_restore_password": "Rest0reOnlyPassw0rd",
    "vault_backup_encryption_passphrase": "Encrypt1onPassphraseForTests",
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


def config_of(out: Path, host: str) -> dict:
    return yaml.safe_load((out / host / "gobackup.yml").read_text())


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
            str(VENV_BIN / "backup-config"),
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
    assert said(
        result,
        "MSSQL_RESTORE_PASSWORD_SALES (set by backup_config_databases[0] (sales).restore_password or"
        " backup_config_restore_password) still holds the placeholder CHANGE_ME",
    )


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
        (
            '{"backup_config_databases": [{"name": "sales-eu", "database": "S", "host": "h", "password": "has space"},'
            ' {"name": "sales_eu", "database": "S", "host": "h", "password": "it\'s quoted"}]}',
            "the models sales-eu and sales_eu would share the .env variables MSSQL_PASSWORD_SALES_EU",
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
    # No drill: an @every schedule's minutes depend on when it starts (the
    # drill's own minute is test_a_drill_at_its_backups_minute_is_refused's).
    settings = {"backup_config_schedule": schedule, "backup_config_drill_schedule": ""}
    result = render("staging", tmp_path / "hosts", vault_password_file, "-e", json.dumps(settings))
    assert result.returncode == 0, result.stdout[-2000:]
    assert config_of(tmp_path / "hosts", "sqlbackup-staging.example.internal")["models"]["crm"]["schedule"] == {
        "cron": schedule
    }


def test_restores_get_their_own_server_and_login(production) -> None:
    out, _ = production
    host = out / "sqlbackup-01.example.internal"
    restore = yaml.safe_load((host / "restore.yml").read_text())
    assert restore == {
        "models": {
            model: {
                "host": "sqlscratch.example.internal",
                "port": 1433,
                "username": "backup_restorer",
                "password": f"${{MSSQL_RESTORE_PASSWORD_{model.upper()}}}",
                "trust_server_certificate": True,
                "previous_passphrases": [],
                "drill_schedule": "17 4 * * 0",
                "rpo_grace_seconds": 3600,
                "proven_within_days": 8,
            }
            for model in ("sales", "inventory")
        },
        "coverage": {"schedule": "*/30 * * * *", "ignore": []},
    }
    assert "MSSQL_RESTORE_PASSWORD_SALES='Rest0reOnlyPassw0rd'" in (host / ".env").read_text()
    assert (host / "restore.yml").stat().st_mode & 0o777 == 0o600


def test_the_dev_stack_restores_into_its_own_scratch_server(tmp_path: Path, vault_password_file: Path) -> None:
    out = tmp_path / "hosts"
    result = render("dev", out, vault_password_file, "-e", f"dev_secrets_dir={tmp_path / 'secrets'}", secrets=False)
    assert result.returncode == 0, result.stdout[-3000:]
    restore = yaml.safe_load((out / "localhost" / "restore.yml").read_text())["models"]
    sources = {model["databases"][name]["host"] for name, model in config_of(out, "localhost")["models"].items()}
    assert sources == {"mssql"}
    assert {model["host"] for model in restore.values()} == {"mssql-restore"}
    env_file = (out / "localhost" / ".env").read_text()
    restore_password = (tmp_path / "secrets" / "mssql_restore_sa_password").read_text().split()[0] + "Aa1"
    assert f"MSSQL_RESTORE_PASSWORD_SALES='{restore_password}'" in env_file
    assert f"MSSQL_PASSWORD_SALES='{restore_password}'" not in env_file, "a login of its own"


def staging_override(**settings: object) -> tuple[str, str]:
    return "-e", json.dumps(settings)


@pytest.mark.parametrize(
    "override",
    [
        staging_override(backup_config_restore_host=""),
        staging_override(backup_config_restore_host="  "),
    ],
)
def test_a_missing_restore_server_is_refused_naming_the_variable(
    tmp_path: Path, vault_password_file: Path, override: tuple[str, str]
) -> None:
    result = render("staging", tmp_path / "hosts", vault_password_file, *override)
    assert result.returncode != 0
    assert said(result, "No restore server for crm, billing: set backup_config_restore_host"), result.stdout[-3000:]
    assert not (tmp_path / "hosts").exists(), "nothing was rendered"


@pytest.mark.parametrize(
    ("override", "model", "server"),
    [
        # The hosts' own servers, whatever the case of the name.
        (
            staging_override(backup_config_restore_host="sqlstaging-01.example.internal"),
            "crm",
            "sqlstaging-01.example.internal,1433",
        ),
        (
            staging_override(
                backup_config_restore_host="SQLStaging-02.example.internal", backup_config_restore_port=14330
            ),
            "crm",
            "SQLStaging-02.example.internal,14330",
        ),
        # One entry's own restore server.
        (
            staging_override(
                backup_config_databases=[
                    {
                        "name": "crm",
                        "database": "CRM",
                        "host": "sqlstaging-01.example.internal",
                        "password": "Pw1-xyzw",
                    },
                    {
                        "name": "billing",
                        "database": "Billing",
                        "host": "sqlstaging-02.example.internal",
                        "password": "Pw2-xyzw",
                        "restore_host": "sqlstaging-01.example.internal",
                    },
                ]
            ),
            "billing",
            "sqlstaging-01.example.internal,1433",
        ),
    ],
)
def test_a_restore_server_that_is_a_source_server_is_refused(
    tmp_path: Path, vault_password_file: Path, override: tuple[str, str], model: str, server: str
) -> None:
    result = render("staging", tmp_path / "hosts", vault_password_file, *override)
    assert result.returncode != 0
    assert said(result, f"model {model}: the restore server {server} is a server this host backs up"), result.stdout[
        -3000:
    ]
    assert said(result, "backup_config_restore_host, or restore_host of the database entry")
    assert not (tmp_path / "hosts").exists(), "nothing was rendered"


def test_the_same_host_on_another_port_may_restore(tmp_path: Path, vault_password_file: Path) -> None:
    result = render(
        "staging",
        tmp_path / "hosts",
        vault_password_file,
        *staging_override(backup_config_restore_host="sqlstaging-02.example.internal", backup_config_restore_port=1433),
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_a_drill_at_its_backups_minute_is_refused(tmp_path: Path, vault_password_file: Path) -> None:
    # Staging backs up at 01:30 every day.
    result = render(
        "staging", tmp_path / "hosts", vault_password_file, *staging_override(backup_config_drill_schedule="30 1 * * 0")
    )
    assert result.returncode != 0
    assert said(result, "model crm: its drill_schedule '30 1 * * 0' starts at the same minute as its backup")
    assert said(result, "backup_config_drill_schedule")


def test_previous_passphrases_and_targets_reach_restore_yml_by_name_only(
    tmp_path: Path, vault_password_file: Path
) -> None:
    out = tmp_path / "hosts"
    result = render(
        "staging",
        out,
        vault_password_file,
        *staging_override(
            backup_config_encryption_passphrase="Curr3nt-Passphrase",
            backup_config_encryption_previous_passphrases=["Old3r-Passphrase", "Old3st-Passphrase"],
            backup_config_coverage_ignore=["ReportServer"],
            backup_config_coverage_schedule="@hourly",
            backup_config_databases=[
                {"name": "crm", "database": "CRM", "host": "sqlstaging-01.example.internal", "password": "Pw1-xyzw"},
                {
                    "name": "billing-eu",
                    "database": "Billing",
                    "host": "sqlstaging-02.example.internal",
                    "password": "Pw2-xyzw",
                    "encryption_previous_passphrases": ["B1lling-Old"],
                    "drill_schedule": "",
                    "rpo_grace_seconds": 600,
                    "proven_within_days": 2,
                },
            ],
        ),
    )
    assert result.returncode == 0, result.stdout[-3000:]
    host = out / "sqlbackup-staging.example.internal"
    restore = yaml.safe_load((host / "restore.yml").read_text())
    assert restore["models"]["crm"]["previous_passphrases"] == [
        "ENCRYPTION_PASSPHRASE_CRM_PREVIOUS_1",
        "ENCRYPTION_PASSPHRASE_CRM_PREVIOUS_2",
    ]
    billing = restore["models"]["billing-eu"]
    assert billing["previous_passphrases"] == ["ENCRYPTION_PASSPHRASE_BILLING_EU_PREVIOUS_1"]
    assert (billing["drill_schedule"], billing["rpo_grace_seconds"], billing["proven_within_days"]) == ("", 600, 2)
    assert restore["coverage"] == {"schedule": "@hourly", "ignore": ["ReportServer"]}
    env_file = (host / ".env").read_text()
    assert "ENCRYPTION_PASSPHRASE_CRM_PREVIOUS_1='Old3r-Passphrase'" in env_file
    assert "ENCRYPTION_PASSPHRASE_CRM_PREVIOUS_2='Old3st-Passphrase'" in env_file
    assert "ENCRYPTION_PASSPHRASE_BILLING_EU_PREVIOUS_1='B1lling-Old'" in env_file
    for secret in ("Old3r-Passphrase", "Old3st-Passphrase", "B1lling-Old"):
        assert secret not in (host / "restore.yml").read_text() + (host / "gobackup.yml").read_text()
        assert secret not in result.stdout + result.stderr


def test_a_previous_passphrase_left_as_the_placeholder_is_named(tmp_path: Path, vault_password_file: Path) -> None:
    result = render(
        "staging",
        tmp_path / "hosts",
        vault_password_file,
        *staging_override(backup_config_encryption_previous_passphrases=["CHANGE_ME"]),
    )
    assert result.returncode != 0
    assert said(
        result,
        "ENCRYPTION_PASSPHRASE_CRM_PREVIOUS_1 (set by backup_config_databases[0]"
        " (crm).encryption_previous_passphrases[0] or backup_config_encryption_previous_passphrases[0])"
        " still holds the placeholder CHANGE_ME",
    )


def test_all_databases_of_a_server_are_one_model(tmp_path: Path, vault_password_file: Path) -> None:
    out = tmp_path / "hosts"
    entry = {
        "name": "staging-01",
        "all_databases": True,
        "skip_databases": ["Scratch"],
        "host": "sqlstaging-01.example.internal",
        "password": "Pw1-xyzw",
    }
    result = render("staging", out, vault_password_file, *staging_override(backup_config_databases=[entry]))
    assert result.returncode == 0, result.stdout[-3000:]
    text = (out / "sqlbackup-staging.example.internal" / "gobackup.yml").read_text()
    database = yaml.safe_load(text)["models"]["staging-01"]["databases"]["staging-01"]
    assert database["all_databases"] is True
    assert database["skip_databases"] == ["Scratch"]
    assert "database" not in database
    assert "staging-01/mssql/staging-01/<database>.bacpac for each database" in text


@pytest.mark.parametrize(
    "entry",
    [
        {"database": "CRM", "all_databases": True},
        {},
        {"database": "CRM", "skip_databases": ["Scratch"]},
        {"all_databases": True, "skip_databases": "Scratch"},
    ],
)
def test_an_entry_names_one_database_or_all(tmp_path: Path, vault_password_file: Path, entry: dict) -> None:
    entry = {"name": "crm", "host": "sqlstaging-01.example.internal", "password": "Pw1-xyzw", **entry}
    result = render(
        "staging", tmp_path / "hosts", vault_password_file, *staging_override(backup_config_databases=[entry])
    )
    assert result.returncode != 0
    assert said(result, "and either database or all_databases: true"), result.stdout[-3000:]


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


def test_minio_setup_refuses_the_example_vault_placeholders(vault_password_file: Path) -> None:
    result = local_playbook(
        "minio_setup.yml", REPO / "inventories" / "production", "--vault-password-file", str(vault_password_file)
    )
    assert result.returncode != 0
    assert said(result, "still holds the placeholder CHANGE_ME")


def dev_deploy(tmp_path: Path, **settings: object) -> subprocess.CompletedProcess[str]:
    """deploy.yml on the dev inventory with these settings, its stack in tmp_path."""
    variables = {"dev_secrets_dir": str(tmp_path / "secrets"), "backup_stack_dir": str(tmp_path / "stack"), **settings}
    return ansible_playbook(
        "-i", str(REPO / "inventories" / "dev"), "-e", json.dumps(variables), str(REPO / "playbooks" / "deploy.yml")
    )


def test_the_containers_own_settings_are_checked_before_the_deploy(tmp_path: Path) -> None:
    """The entrypoint's rules (container_settings), applied by the backup_stack role
    before anything is built or changed, naming the Ansible variables."""
    result = dev_deploy(
        tmp_path,
        backup_stack_run_mode="sometimes",
        backup_stack_metrics_enabled=True,
        backup_stack_metrics_port=2703,
        backup_stack_tmp_size="lots",
    )
    assert result.returncode != 0
    assert said(result, "RUN_MODE (set by backup_stack_run_mode) must be 'once' or 'daemon', not 'sometimes'")
    assert said(
        result,
        "METRICS_PORT (set by backup_stack_metrics_port) must differ from web.port (set by"
        " backup_stack_gobackup_web_port and backup_stack_gobackup_workers, which deploy.yml sets from"
        " backup_config_web_port and backup_config_workers), the port of GoBackup's own web server in the"
        " container (2703)",
    )
    assert said(result, "backup_stack_tmp_size must be a size such as 512m or 4g")
    assert not (tmp_path / "stack").exists(), "nothing was deployed"
    # With 2 GoBackup workers, the second one's port (one below) is taken too.
    workers = dev_deploy(
        tmp_path, backup_config_workers=2, backup_stack_metrics_enabled=True, backup_stack_metrics_port=2702
    )
    assert workers.returncode != 0
    assert said(workers, "the port of GoBackup's own web server in the container (2703, 2702)")
    assert not (tmp_path / "stack").exists(), "nothing was deployed"


def test_the_development_services_settings_are_checked_before_the_deploy(tmp_path: Path) -> None:
    result = dev_deploy(tmp_path, dev_services_mssql_restore_sa_password="", dev_services_mssql_restore_port=70000)
    assert result.returncode != 0
    assert said(result, "dev_services_mssql_restore_sa_password is empty or still the placeholder CHANGE_ME")
    assert said(result, "dev_services_mssql_restore_port must be a port number, or 0 to publish none")
    assert not (tmp_path / "stack").exists(), "nothing was deployed"


RISK_OPT_OUTS = ("deploy_accept_unencrypted_backups", "deploy_accept_unlocked_bucket", "deploy_accept_sa_login")


def test_each_risk_is_refused_naming_its_opt_out_unless_accepted(tmp_path: Path) -> None:
    """The dev inventory accepts all three risks; without that the deploy
    stops before anything changes, naming each risk and its opt-out."""
    result = dev_deploy(tmp_path, **dict.fromkeys(RISK_OPT_OUTS, False))
    assert result.returncode != 0
    assert said(result, "models sales, inventory would upload unencrypted archives")
    assert said(result, "or set deploy_accept_unencrypted_backups: true")
    assert said(result, "the bucket has no Object Lock (minio_setup_object_lock is false)")
    assert said(result, "or set deploy_accept_unlocked_bucket: true")
    assert said(result, "sales (export), sales (restore), inventory (export), inventory (restore) would log in as sa")
    assert said(result, "or set deploy_accept_sa_login: true")
    assert not (tmp_path / "stack").exists(), "nothing was deployed"

    secured = dev_deploy(
        tmp_path,
        deploy_accept_sa_login=False,
        backup_config_encryption_passphrase="Dev-Passphrase-1",
        minio_setup_object_lock=True,
        backup_stack_run_mode="sometimes",  # stops the deploy right after the risks
    )
    assert secured.returncode != 0
    assert not said(secured, "unencrypted archives")
    assert not said(secured, "no Object Lock")
    assert said(secured, "or set deploy_accept_sa_login: true")


@pytest.mark.parametrize("inventory", ["staging", "production"])
def test_the_example_inventories_take_no_risk_a_deploy_refuses(
    tmp_path: Path, vault_password_file: Path, inventory: str
) -> None:
    """Encryption, Object Lock (GOVERNANCE, 30 days) and logins of their own:
    the examples' hosts get past the refusal and stop only where a host must
    answer (none can be reached here)."""
    secrets = tmp_path / "secrets.yml"
    secrets.write_text(yaml.safe_dump(TEST_SECRETS))
    result = ansible_playbook(
        "-i", str(REPO / "inventories" / inventory), "--vault-password-file", str(vault_password_file),
        "-e", "ansible_host=127.0.0.1", "-e", f"ansible_port={free_port()}", "-e", "ansible_become=false",
        "-e", f"@{secrets}", str(REPO / "playbooks" / "deploy.yml"),
    )  # fmt: skip
    assert result.returncode != 0
    assert "UNREACHABLE" in result.stdout, result.stdout[-3000:]
    assert not any(opt_out in result.stdout for opt_out in RISK_OPT_OUTS), result.stdout[-3000:]


@pytest.mark.parametrize(
    ("old", "expected"),
    [
        ("backup_stack_mssql_port", "backup_stack_mssql_port is now dev_services_mssql_port"),
        ("backup_config_restart_on_change", "backup_config_restart_on_change: removed"),
    ],
)
def test_a_variable_of_an_earlier_release_is_refused_naming_what_replaces_it(
    tmp_path: Path, old: str, expected: str
) -> None:
    result = dev_deploy(tmp_path, **{old: 1433})
    assert result.returncode != 0
    assert said(result, expected), result.stdout[-3000:]
    assert said(result, 'README "Upgrading"')
    assert not (tmp_path / "stack").exists(), "nothing was deployed"


# --- The operator's playbooks, refused before anything reaches a host -------------------


def production_playbook(playbook: str, vault_password_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Runs playbooks/<playbook> on the production example, whose hosts cannot be
    reached (SSH to a closed local port): a task that needs a host reports it
    unreachable, so whatever is refused was refused on the controller."""
    return ansible_playbook(
        "-i",
        str(REPO / "inventories" / "production"),
        "--vault-password-file",
        str(vault_password_file),
        "-e",
        "ansible_host=127.0.0.1",
        "-e",
        f"ansible_port={free_port()}",
        "-e",
        "ansible_become=false",
        *extra,
        str(REPO / "playbooks" / playbook),
    )


ONE_HOST = ("--limit", "sqlbackup-01.example.internal")
INTO_SOURCE = ("-e", "restore_model=sales", "-e", "restore_into_source=true")


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (
            (*INTO_SOURCE, "-e", "restore_target_database=Sales", "-e", "restore_confirm=Sales"),
            "a restore into a source server runs on exactly one host, and this play targets 2 hosts:"
            " add --limit <host>",
        ),
        (
            (*ONE_HOST, *INTO_SOURCE),
            "a restore into a source server needs the database to write: add -e restore_target_database=<database>",
        ),
        (
            (*ONE_HOST, *INTO_SOURCE, "-e", "restore_target_database=Sales"),
            "needs restore_confirm repeating restore_target_database: add -e restore_confirm=Sales",
        ),
        (
            (*ONE_HOST, *INTO_SOURCE, "-e", "restore_target_database=Sales", "-e", "restore_confirm=sales"),
            "needs restore_confirm repeating restore_target_database: add -e restore_confirm=Sales",
        ),
        (
            ("-e", "restore_model=sales", "-e", "restore_target_database=Sales", "-e", "restore_replace=true"),
            "a replace swaps a database on one host only, and this play targets 2 hosts: add --limit <host>",
        ),
        (
            (*ONE_HOST, "-e", "restore_model=sales", "-e", "restore_drop_replaced=true"),
            "restore_drop_replaced drops the database a replace renamed aside: it needs restore_replace=true",
        ),
        (
            (*ONE_HOST, "-e", "restore_model=sales", "-e", "restore_confirm=Sales"),
            "restore_confirm confirms a restore into a source server only",
        ),
        (
            ("-e", "restore_drill=true", "-e", "restore_into_source=true"),
            "neither takes restore_target_database, restore_replace, restore_into_source or restore_database",
        ),
    ],
)
def test_a_risky_restore_is_refused_before_anything_runs(
    vault_password_file: Path, arguments: tuple[str, ...], reason: str
) -> None:
    result = production_playbook("restore.yml", vault_password_file, *arguments)
    assert result.returncode != 0
    assert said(result, reason), result.stdout[-3000:]
    assert "TASK [Run backup-restore or backup-verify in the backup container]" not in result.stdout
    assert not re.search(r"unreachable=[1-9]", result.stdout), "no host was contacted"


@pytest.mark.parametrize(
    "arguments",
    [
        (*ONE_HOST, *INTO_SOURCE, "-e", "restore_target_database=Sales", "-e", "restore_confirm=Sales"),
        (*ONE_HOST, "-e", "restore_model=sales", "-e", "restore_replace=true", "-e", "restore_drop_replaced=true"),
        ("-e", "restore_drill=true"),
    ],
)
def test_a_complete_restore_gets_past_the_checks(vault_password_file: Path, arguments: tuple[str, ...]) -> None:
    """The control of the test above: with its settings whole, the same run
    goes on to the container (and finds the example host unreachable)."""
    result = production_playbook("restore.yml", vault_password_file, *arguments)
    assert "TASK [Run backup-restore or backup-verify in the backup container]" in result.stdout, result.stdout[-3000:]
    assert re.search(r"sqlbackup-01.example.internal\s+: ok=1 .*unreachable=1", result.stdout), result.stdout[-3000:]


def test_the_fleet_status_names_each_host_it_could_not_ask(vault_password_file: Path) -> None:
    result = production_playbook("status.yml", vault_password_file)
    assert result.returncode != 0
    table = result.stdout[result.stdout.index("TASK [Print the fleet table]") :]
    for host in ("sqlbackup-01.example.internal", "sqlbackup-02.example.internal"):
        assert re.search(rf"^\s*{re.escape(host)}\s+-\s+-\s+.*UNREACHABLE$", table, re.M), table
        assert said(result, f"{host}: UNREACHABLE: ")
    assert "TASK [Fail when a database breaches its targets]" in table


# --- The development stack's services ------------------------------------------------


def render_compose(tmp_path: Path, role: str = "backup_stack", **settings: object) -> dict:
    out = tmp_path / f"{role}-compose.yml"
    variables = {
        "dev_secrets_dir": str(tmp_path / "secrets"),
        "compose_role": role,
        "compose_out": str(out),
        **settings,
    }
    result = ansible_playbook(
        "-i",
        str(REPO / "inventories" / "dev"),
        "-e",
        json.dumps(variables),
        str(REPO / "tests" / "playbooks" / "render_compose.yml"),
    )
    assert result.returncode == 0, result.stdout[-3000:]
    return yaml.safe_load(out.read_text())


def test_the_dev_stack_has_a_restore_server_of_its_own(tmp_path: Path) -> None:
    services = render_compose(tmp_path, "dev_services")["services"]
    restore, source = services["mssql-restore"], services["mssql"]
    assert restore["image"] == source["image"]
    assert restore["env_file"] == ["mssql-restore.env"]
    assert restore["volumes"] == ["mssql-restore-data:/var/opt/mssql"]
    assert restore["healthcheck"]["test"] == source["healthcheck"]["test"]
    assert "ports" not in restore, "published only when asked"


def test_the_dev_restore_server_is_published_on_loopback_when_asked(tmp_path: Path) -> None:
    services = render_compose(tmp_path, "dev_services", dev_services_mssql_restore_port=11434)["services"]
    assert services["mssql-restore"]["ports"] == ["127.0.0.1:11434:1433"]


def test_the_backup_stack_holds_only_the_backup_service_and_joins_the_dev_network(tmp_path: Path) -> None:
    """Production's compose file is the same with or without development
    services: the dev inventory only adds a network to join."""
    backup_compose = render_compose(tmp_path)
    dev_compose = render_compose(tmp_path, "dev_services")
    assert list(backup_compose["services"]) == ["backup"]
    assert list(dev_compose["services"]) == ["mssql", "mssql-restore", "minio"]
    assert backup_compose["services"]["backup"]["networks"] == ["default", "sqlserver-backup-dev"]
    assert backup_compose["networks"] == {"sqlserver-backup-dev": {"external": True}}
    assert dev_compose["networks"] == {"default": {"name": "sqlserver-backup-dev"}}


def test_each_worker_gets_its_share_of_the_models_and_a_port(tmp_path: Path, vault_password_file: Path) -> None:
    out = tmp_path / "hosts"
    host = out / "sqlbackup-01.example.internal"
    result = render("production", out, vault_password_file, "-e", "backup_config_workers=2", "--limit", host.name)
    assert result.returncode == 0, result.stdout[-3000:]
    everything = yaml.safe_load((host / "gobackup.yml").read_text())
    workers = [yaml.safe_load((host / f"gobackup-worker-{n}.yml").read_text()) for n in (1, 2)]
    assert [sorted(worker["models"]) for worker in workers] == [["sales"], ["inventory"]]
    assert [worker["web"]["port"] for worker in workers] == [2703, 2702], "counting down, away from the relay's 2704"
    assert {**workers[0]["models"], **workers[1]["models"]} == everything["models"], "the same models, split"
    # gobackup.yml names the split (and its digest, which recreates the
    # container, changes with it); the image accepts the files.
    text = (host / "gobackup.yml").read_text()
    split = "#   gobackup-worker-1.yml (web port 2703): sales\n#   gobackup-worker-2.yml (web port 2702): inventory\n"
    assert split in text
    document, environment = gobackup_config.load(host / "gobackup.yml", {})
    assert worker_problems(host / "gobackup.yml", document, environment) == []

    again = render("production", out, vault_password_file, "--limit", host.name)
    assert again.returncode == 0, again.stdout[-3000:]
    assert not list(host.glob("gobackup-worker-*.yml")), "one worker again: the workers' files are gone"
