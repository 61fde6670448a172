"""The configuration checks (gobackup_config, gobackup_rules, config_yaml,
gobackup_env, temp_paths, cli): they read a config as GoBackup v3.1.1 will,
through the Go-behaviour ports (each tested against Go in its own
tests/test_go_*.py), and stop the mistakes GoBackup makes silently. Run
through the `backup-config` console script and the roles' Ansible filter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlserver_backup import gobackup_env
from sqlserver_backup.config_errors import ConfigError
from sqlserver_backup.gobackup_config import endpoints, gobackup_config_problems, load
from sqlserver_backup.gobackup_env import SECRET_VARIABLES, resolve_file_env
from sqlserver_backup.notify_settings import NOTIFY_PLAIN_SETTINGS, redact, secret_values
from sqlserver_backup_testing import REPO, VENV_BIN


def write_config(tmp_path: Path, text: str, dotenv: str = "") -> Path:
    config = tmp_path / "gobackup.yml"
    config.write_text(text)
    if dotenv:
        (tmp_path / ".env").write_text(dotenv)
    return config


VALID = """
workdir: /tmp/gobackup
web:
  host: 127.0.0.1
models:
  sales:
    schedule:
      cron: "0 2 * * *"
    databases:
      sales:
        type: mssql
        host: sql1
        database: SalesDemo
        password: ${SALES_PASSWORD}
        trust_server_certificate: true
    storages:
      minio:
        type: minio
        endpoint: http://minio:9000
        bucket: backups
        path: prod/host-a/sales
"""


def reasons_for(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    try:
        load(write_config(tmp_path, text), environ if environ is not None else {"SALES_PASSWORD": "S3cret"})
    except ConfigError as error:
        return error.reasons
    return []


def test_a_valid_config_passes(tmp_path: Path) -> None:
    assert reasons_for(tmp_path, VALID) == []


def test_dotenv_beside_the_config_supplies_secrets(tmp_path: Path) -> None:
    config = write_config(tmp_path, VALID, dotenv="SALES_PASSWORD='Fr0mDotenv'\n")
    document, _ = load(config, {})
    assert document["models"]["sales"]["databases"]["sales"]["password"] == "Fr0mDotenv"


def test_the_environment_wins_over_dotenv(tmp_path: Path) -> None:
    config = write_config(tmp_path, VALID, dotenv="SALES_PASSWORD=fromfile\n")
    document, _ = load(config, {"SALES_PASSWORD": "fromenv"})
    assert document["models"]["sales"]["databases"]["sales"]["password"] == "fromenv"


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("cron:", "corn:", "schedule key 'corn' is unknown to GoBackup"),
        ('"0 2 * * *"', '"0 2 * * * *"', "expected exactly 5 fields"),
        ('"0 2 * * *"', '"0 2 * * 7"', "end of range (7) above maximum (6)"),
        ('"0 2 * * *"', '"*/0 * * * *"', "step of range should be a positive number"),
        ('"0 2 * * *"', '"TZ=UTC"', "panic"),
        ('"0 2 * * *"', '"@every 1day"', "failed to parse duration"),
        ('"0 2 * * *"', '""', "schedule has neither cron nor every"),
        ('cron: "0 2 * * *"', "every: 1day", "is not a Go duration"),
        ('cron: "0 2 * * *"', "every: 0s", "must be positive"),
        ('cron: "0 2 * * *"', "every: 24h\n      at: '04:00'", "schedule.at fails in GoBackup v3.1.1"),
        ('cron: "0 2 * * *"', 'cron: "0 2 * * *"\n      enabled: false', "GoBackup v3.1.1 (any schedule block is"),
        ('cron: "0 2 * * *"', 'cron: "0 2 * * *"\n      every: 1h', "schedule.every is ignored"),
        ("trust_server_certificate:", "trustServerCertificate:", "use 'trust_server_certificate'"),
        ("host: sql1", "host: sql1\n        skip_databases: Scratch", "skip_databases must be a list"),
        ("host: 127.0.0.1", "host: 0.0.0.0", "web.host must be 127.0.0.1"),
        ("endpoint: http://minio:9000", "endpoint: minio:9000", "endpoint must be a full URL"),
        ("bucket: backups", "bucket: ''", "'bucket' is empty"),
        ("${SALES_PASSWORD}", "${SALES_PASSWORD:-x}", "GoBackup does not support defaults"),
        ("${SALES_PASSWORD}", "p$ss", "ss is not set"),
        ("database: SalesDemo", "database: Sales Archive", "database contains whitespace"),
        ("databases:", "databses:", "key 'databses' is unknown to GoBackup"),
        ("workdir: /tmp/gobackup\n", "", "workdir is not set: set it to the work volume, e.g. /tmp/gobackup"),
        ("workdir: /tmp/gobackup", "workdir: gobackup", "workdir must be an absolute path"),
        ("  sales:\n    schedule", "  Sales:\n    schedule", "model Sales: GoBackup lower-cases model names"),
        ("      sales:\n        type", "      SalesDB:\n        type", "database key 'SalesDB' has upper-case"),
        ("    databases:", "    compress_with:\n      type: bz2\n    databases:", "compress_with.type 'bz2'"),
        ("    databases:", "    compress_with:\n      type: lz\n    databases:", "compress_with.type 'lz'"),
        ("models:\n", "models:\n  sales:\n    description: first\n", "duplicate key 'sales'"),
        ("        host: sql1\n", "        host: sql1\n        host: sql2\n", "duplicate key 'host'"),
    ],
)
def test_silent_upstream_mistakes_are_refused(tmp_path: Path, old: str, new: str, reason: str) -> None:
    assert old in VALID
    reasons = reasons_for(tmp_path, VALID.replace(old, new, 1))
    assert any(reason in line for line in reasons), reasons


@pytest.mark.parametrize(
    "cron",
    [
        "0 22 * * MON-fri",
        "0 3 * jan,JUL sun",
        "0 12 ? * *",
        "@daily",
        "@every 1h",
        "@every 90s",
        "TZ=Europe/Berlin 0 2 * * *",
        "CRON_TZ=UTC @weekly",
    ],
)
def test_what_robfig_accepts_passes(tmp_path: Path, cron: str) -> None:
    assert reasons_for(tmp_path, VALID.replace('"0 2 * * *"', f'"{cron}"')) == []


@pytest.mark.parametrize("compress", ["tar", "tgz", "gz", "tar.gz", "zst", "tzst", "tar.zst", "xz", "txz", "tar.xz"])
def test_compress_types_the_image_can_run_pass(tmp_path: Path, compress: str) -> None:
    text = VALID.replace("    databases:", f"    compress_with:\n      type: {compress}\n    databases:")
    assert reasons_for(tmp_path, text) == []


ENCRYPTED = "    encrypt_with:\n      type: openssl\n      password: env:SALES_PASSPHRASE\n    databases:"


def test_encryption_with_a_passphrase_from_the_environment_passes(tmp_path: Path) -> None:
    text = VALID.replace("    databases:", ENCRYPTED)
    assert reasons_for(tmp_path, text, {"SALES_PASSWORD": "S3cret", "SALES_PASSPHRASE": "long passphrase"}) == []


@pytest.mark.parametrize(
    ("old", "new", "environ", "reason"),
    [
        ("type: openssl", "type: gpg", {}, "encrypt_with.type 'gpg' is unknown to GoBackup v3.1.1, which would upload"),
        ("env:SALES_PASSPHRASE", "Literal-Passphrase", {}, "encrypt_with.password must be env:<VARIABLE>"),
        ("env:SALES_PASSPHRASE", "env:SALES-PASSPHRASE", {}, "names 'SALES-PASSPHRASE', which is not a variable"),
        ("", "", {}, "encrypt_with.password names SALES_PASSPHRASE, which is not set (.env)"),
        ("", "", {"SALES_PASSPHRASE": "CHANGE_ME"}, "SALES_PASSPHRASE still holds the placeholder CHANGE_ME"),
    ],
)
def test_encryption_mistakes_are_named(tmp_path: Path, old: str, new: str, environ: dict, reason: str) -> None:
    text = VALID.replace("    databases:", ENCRYPTED.replace(old, new, 1) if old else ENCRYPTED)
    reasons = reasons_for(tmp_path, text, {"SALES_PASSWORD": "S3cret", **environ})
    assert any(f"model sales: {reason}" in line or reason in line for line in reasons), reasons


def test_two_models_from_variables_with_one_value_are_refused(tmp_path: Path) -> None:
    body = VALID.split("models:\n", 1)[1]
    text = VALID.replace("  sales:\n    schedule", "  ${FIRST}:\n    schedule") + body.replace(
        "  sales:\n    schedule", "  ${SECOND}:\n    schedule"
    ).replace("prod/host-a/sales", "prod/host-a/other")
    reasons = reasons_for(tmp_path, text, {"SALES_PASSWORD": "x", "FIRST": "sales", "SECOND": "sales"})
    assert any("duplicate key 'sales'" in reason for reason in reasons), reasons


# Passwords YAML would alter or retype when the reference is not quoted.
YAML_HOSTILE_PASSWORDS = [
    "#Starts-with-hash1",
    "&anchor1",
    "*alias1",
    "!tag1",
    "%percent1",
    "@at1",
    "`tick1",
    "[bracket1",
    "{brace1",
    "]close1",
    "|pipe1",
    ">fold1",
    "-",
    "0123",
    "1e5",
    "1_000",
    "0x1F",
    "0o17",
    ".inf",
    "12:30:45",
    "2026-01-02",
    "true",
    "False",
    "null",
    "~",
    "yes",
    "off",
    "3.14",
    "ends-with-colon:",
    "quote'inside",
]


@pytest.mark.parametrize("password", YAML_HOSTILE_PASSWORDS)
def test_hostile_passwords_pass_when_quoted(tmp_path: Path, password: str) -> None:
    text = VALID.replace("${SALES_PASSWORD}", '"${SALES_PASSWORD}"')
    if "'" not in password:
        text = VALID.replace("${SALES_PASSWORD}", "'${SALES_PASSWORD}'")
    config = write_config(tmp_path, text, dotenv=f"SALES_PASSWORD='{password}'\n")
    document, _ = load(config, {})
    assert document["models"]["sales"]["databases"]["sales"]["password"] == password


@pytest.mark.parametrize("password", [p for p in YAML_HOSTILE_PASSWORDS if p != "quote'inside"])
def test_hostile_passwords_are_refused_unquoted_naming_the_variable(tmp_path: Path, password: str) -> None:
    reasons = reasons_for(tmp_path, VALID, {"SALES_PASSWORD": password})
    assert reasons
    assert all("SALES_PASSWORD" in reason for reason in reasons), reasons
    if password not in ("-", "null"):  # words of the message itself
        assert not [reason for reason in reasons if password in reason.replace("SALES_PASSWORD", "")]


@pytest.mark.parametrize(
    ("reference", "password", "reason"),
    [
        ("'${SALES_PASSWORD}'", "it's", "contains a ' but is referenced inside single quotes"),
        ('"${SALES_PASSWORD}"', 'say"hi', "inside double quotes"),
        ("'${SALES_PASSWORD}'", "two words", "password (from SALES_PASSWORD) contains whitespace"),
        ("${SALES_PASSWORD}", "tab\there", "SALES_PASSWORD"),
        ("'${SALES_PASSWORD}'", "CHANGE_ME", "SALES_PASSWORD still holds the placeholder CHANGE_ME"),
    ],
)
def test_unusable_secret_values_are_refused(tmp_path: Path, reference: str, password: str, reason: str) -> None:
    reasons = reasons_for(tmp_path, VALID.replace("${SALES_PASSWORD}", reference), {"SALES_PASSWORD": password})
    assert any(reason in line for line in reasons), reasons
    if password != "CHANGE_ME":  # the placeholder is named on purpose
        assert not [line for line in reasons if password in line.replace("SALES_PASSWORD", "")]


@pytest.mark.parametrize("password", ["plain-Passw0rd", "it's", "p@ss:w0rd#1", "a$b"])
def test_ordinary_passwords_pass_unquoted(tmp_path: Path, password: str) -> None:
    assert reasons_for(tmp_path, VALID, {"SALES_PASSWORD": password}) == []


def test_two_models_writing_one_path_are_refused(tmp_path: Path) -> None:
    second = VALID.split("models:\n", 1)[1].replace("  sales:\n    schedule", "  sales_copy:\n    schedule")
    reasons = reasons_for(tmp_path, VALID + second)
    assert any("models sales and sales_copy upload to the same bucket path 'prod/host-a/sales'" in r for r in reasons)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    reasons = reasons_for(tmp_path, "models: [unclosed\n")
    assert reasons
    assert "is not valid YAML" in reasons[0]


def test_endpoints_lists_sql_servers_and_storages(tmp_path: Path) -> None:
    document, _ = load(write_config(tmp_path, VALID), {"SALES_PASSWORD": "x"})
    assert list(endpoints(document)) == [
        ("SQL Server sales", "sales", "sql1", 1433),
        ("storage minio (backups)", "sales", "minio", 9000),
    ]


def run_backup_config(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "backup-config"), *arguments],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"], **(env or {})},
    )


def test_secret_variables_prints_the_one_list() -> None:
    result = run_backup_config("secret-variables")
    assert (result.returncode, result.stdout) == (0, "".join(f"{name}\n" for name in SECRET_VARIABLES))
    assert len(set(SECRET_VARIABLES)) == len(SECRET_VARIABLES)


def role_env_names() -> tuple[set[str], set[str]]:
    """(fixed names, relay settings) the backup_config role writes to .env:
    the names in the literal `{'NAME': backup_config_...}` of its
    _backup_config_env and the keys of _backup_config_notify_sources."""
    role = yaml.safe_load((REPO / "roles" / "backup_config" / "vars" / "main.yml").read_text())
    fixed = set(re.findall(r"'([A-Z][A-Z0-9_]*)': backup_config_", role["_backup_config_env"]))
    return fixed, set(role["_backup_config_notify_sources"])


def test_the_secrets_the_role_and_the_template_write_are_in_the_list() -> None:
    """What the roles write to .env, and what the bundled template references
    inside single quotes (its secrets), is either a secret variable or a
    relay setting that is not secret: the list misses none of them."""
    fixed, relay_settings = role_env_names()
    template = (REPO / "image" / "gobackup.yml.template").read_text()
    quoted = set(re.findall(r"'\$\{([A-Z][A-Z0-9_]*)\}'", template))
    assert fixed
    assert quoted
    assert fixed | quoted <= set(SECRET_VARIABLES)
    assert relay_settings == {name for name in SECRET_VARIABLES if name.startswith("NOTIFY_")} | set(
        NOTIFY_PLAIN_SETTINGS
    )
    assert not set(NOTIFY_PLAIN_SETTINGS) & set(SECRET_VARIABLES)


@pytest.mark.parametrize("name", SECRET_VARIABLES)
def test_every_secret_variable_is_kept_out_of_notifications(name: str) -> None:
    assert redact(f"failed with {name}'s value", secret_values({name: "value"})) == f"failed with {name}'s [redacted]"


def test_only_secret_variables_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("Fr0mFile\n")
    (tmp_path / "ca.pem").write_text("certificate\n")
    resolved = resolve_file_env(
        {"MSSQL_PASSWORD_FILE": str(tmp_path / "secret"), "SSL_CERT_FILE": str(tmp_path / "ca.pem")}
    )
    assert resolved["MSSQL_PASSWORD"] == "Fr0mFile"
    assert "SSL_CERT" not in resolved


@pytest.fixture
def workdir_config(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "work"
    (work / "local" / "sales").mkdir(parents=True)
    (work / "notes").mkdir()
    (work / "12ab").mkdir()
    return write_config(tmp_path, VALID.replace("/tmp/gobackup", str(work))), work


def test_workdir_is_printed(workdir_config: tuple[Path, Path]) -> None:
    config, work = workdir_config
    result = run_backup_config("workdir", str(config))
    assert (result.returncode, result.stdout) == (0, f"{work}\n")


def test_workdir_unset_is_an_error(tmp_path: Path) -> None:
    result = run_backup_config("workdir", str(write_config(tmp_path, VALID.replace("workdir: /tmp/gobackup\n", ""))))
    assert result.returncode == 1
    assert "workdir is not set" in result.stderr
    assert result.stdout == ""


def test_running_jobs_and_clean_temp(workdir_config: tuple[Path, Path]) -> None:
    config, work = workdir_config
    assert run_backup_config("running-jobs", str(config)).stdout == ""
    (work / "1764000000000000001" / "sales" / "mssql" / "sales").mkdir(parents=True)
    (work / "1764000000000000002" / "hr").mkdir(parents=True)
    result = run_backup_config("running-jobs", str(config))
    assert (result.returncode, result.stdout) == (0, "sales\nhr\n")
    result = run_backup_config("clean-temp", str(config))
    assert result.returncode == 0
    assert result.stdout == f"{work / '1764000000000000001'}\tsales\n{work / '1764000000000000002'}\thr\n"
    assert sorted(entry.name for entry in work.iterdir()) == ["12ab", "local", "notes"]
    assert (work / "local" / "sales").is_dir()
    assert run_backup_config("clean-temp", str(config)).stdout == ""


CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIBextra\n-----END CERTIFICATE-----\n"


def test_ca_bundle_appends_extra_certificates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "base.crt").write_text("base bundle\n")
    (tmp_path / "extra.pem").write_text(CERTIFICATE)
    env = {
        "GOBACKUP_STATE_DIR": str(tmp_path / "state"),
        "SSL_CERT_FILE": str(tmp_path / "base.crt"),
        "EXTRA_CA_CERTS": str(tmp_path / "extra.pem"),
    }
    result = run_backup_config("ca-bundle", env=env)
    output = tmp_path / "state" / "ca-certificates.crt"
    assert (result.returncode, result.stdout) == (0, f"{output}\n")
    assert output.read_text() == "base bundle\n" + CERTIFICATE
    # Again with SSL_CERT_FILE already pointing at the output (a docker exec
    # in the running container): the base is the system bundle, not the output.
    (tmp_path / "system.crt").write_text("system bundle\n")
    monkeypatch.setattr(gobackup_env, "DEFAULT_CA_BUNDLE", tmp_path / "system.crt")
    again = gobackup_env.environment_with_ca({**env, "SSL_CERT_FILE": str(output), "OTHER": "kept"})
    assert again == {**env, "SSL_CERT_FILE": str(output), "OTHER": "kept"}
    assert output.read_text() == "system bundle\n" + CERTIFICATE


@pytest.mark.parametrize(("content", "exists"), [(None, False), ("no certificate here\n", True)])
def test_ca_bundle_refuses_a_missing_or_empty_file(tmp_path: Path, content: str | None, exists: bool) -> None:
    if exists:
        (tmp_path / "extra.pem").write_text(content)
    result = run_backup_config(
        "ca-bundle", env={"GOBACKUP_STATE_DIR": str(tmp_path), "EXTRA_CA_CERTS": str(tmp_path / "extra.pem")}
    )
    assert result.returncode == 1
    assert "EXTRA_CA_CERTS" in result.stderr
    assert result.stdout == ""


def test_ca_bundle_without_extra_certificates_prints_nothing(tmp_path: Path) -> None:
    result = run_backup_config("ca-bundle", env={"GOBACKUP_STATE_DIR": str(tmp_path)})
    assert (result.returncode, result.stdout) == (0, "")
    assert not (tmp_path / "ca-certificates.crt").exists()


def test_filter_returns_the_checker_reasons_naming_ansible_variables() -> None:
    problems = gobackup_config_problems
    text = VALID.replace("${SALES_PASSWORD}", "'${MSSQL_PASSWORD_SALES}'")
    assert problems(text, {"MSSQL_PASSWORD_SALES": "#Fine-when-quoted1"}) == []
    sources = {"MSSQL_PASSWORD_SALES": "backup_config_databases[0].password (sales)"}
    [reason] = problems(text, {"MSSQL_PASSWORD_SALES": "CHANGE_ME"}, sources)
    assert reason.startswith("MSSQL_PASSWORD_SALES (set by backup_config_databases[0].password (sales))")
    reasons = problems(text.replace("cron:", "corn:"), {"MSSQL_PASSWORD_SALES": "x\ny"}, sources)
    assert any("cannot be written to .env" in reason and "backup_config_databases[0]" in reason for reason in reasons)


def test_ansible_loads_the_filter_through_the_role(tmp_path: Path) -> None:
    """The roles reach the checker through the collection's filter, by its full name."""
    (tmp_path / "gobackup.yml").write_text(VALID.replace("cron:", "corn:"))
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"{{ lookup('ansible.builtin.file', 'gobackup.yml')"
        " | sqlserver_backup.backups.gobackup_config_problems({'SALES_PASSWORD': 'x'}, {'SALES_PASSWORD': 'vault_x'})"
        ' }}"\n'
    )
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"), "ANSIBLE_NOCOLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "schedule key 'corn' is unknown to GoBackup" in result.stdout
