"""The collection's filters that build what the roles and playbooks render
and report: backup_config's models and .env (backup_models), the secrets only
restores read (backup_config), restore.yml's refusals, commands and verdicts
(restore_plan) and status.yml's fleet table (fleet_status). The playbooks run
for real in tests/integration/test_roles.py and tests/e2e."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlserver_backup_testing import REPO, collection_plugin

backup_models = collection_plugin("filter", "backup_models")
backup_config = collection_plugin("filter", "backup_config")
restore_plan = collection_plugin("filter", "restore_plan")
fleet_status = collection_plugin("filter", "fleet_status")
deploy_risks = collection_plugin("filter", "deploy_risks")

# The role's defaults as vars/main.yml hands them over (-e and YAML give strings too).
ENTRY_DEFAULTS = {
    "port": 1433,
    "username": "sa",
    "trust_server_certificate": "no",
    "sqlpackage_args": "/p:CommandTimeout=3600",
    "schedule": "0 2 * * *",
    "keep": "7",
    "encryption_passphrase": "",
    "encryption_previous_passphrases": [],
    "drill_schedule": "17 4 * * 0",
    "rpo_grace_seconds": 3600,
    "proven_within_days": 8,
    "restore_host": " scratch ",
    "restore_port": "1433",
    "restore_username": "",
    "restore_password": "",
    "restore_trust_server_certificate": False,
}
HOST_PATH = "sqlserver/host-a"


def model_of(entry: dict[str, Any], **defaults: Any) -> dict[str, Any]:
    return backup_models.backup_models([entry], {**ENTRY_DEFAULTS, **defaults}, HOST_PATH)[0]


# --- backup_models: the database entries as models ----------------------------------


def test_a_minimal_entry_gets_every_default() -> None:
    assert model_of({"name": "sales-eu", "database": "Sales", "host": "sql1", "password": "Pw1"}) == {
        "name": "sales-eu",
        "description": "SQL Server database Sales on sql1",
        "database": "Sales",
        "all_databases": False,
        "skip_databases": [],
        "host": "sql1",
        "port": 1433,
        "username": "sa",
        "password": "Pw1",
        "password_variable": "MSSQL_PASSWORD_SALES_EU",
        "trust_server_certificate": False,
        "sqlpackage_args": "/p:CommandTimeout=3600",
        "schedule": "0 2 * * *",
        "keep": 7,
        "path": "sqlserver/host-a/sales-eu",
        "encryption_passphrase": "",
        "encryption_variable": "ENCRYPTION_PASSPHRASE_SALES_EU",
        "previous_passphrases": [],
        "previous_passphrase_variables": [],
        "drill_schedule": "17 4 * * 0",
        "rpo_grace_seconds": 3600,
        "proven_within_days": 8,
        "restore": {
            "host": "scratch",
            "port": 1433,
            "username": "sa",
            "password": "Pw1",
            "password_variable": "MSSQL_RESTORE_PASSWORD_SALES_EU",
            "trust_server_certificate": False,
        },
    }


def test_a_whole_server_is_one_model() -> None:
    model = model_of(
        {"name": "server1", "all_databases": "true", "skip_databases": ["Junk", 7], "host": "sql1", "password": "p"}
    )
    assert (model["all_databases"], model["database"], model["skip_databases"]) == (True, "", ["Junk", "7"])
    assert model["description"] == "Every database on sql1"


@pytest.mark.parametrize(
    ("key", "value", "field", "expected"),
    [
        ("port", "1434", "port", 1434),
        ("username", "exporter", "username", "exporter"),
        ("trust_server_certificate", "yes", "trust_server_certificate", True),
        ("sqlpackage_args", "/p:CommandTimeout=10", "sqlpackage_args", "/p:CommandTimeout=10"),
        ("schedule", "30 * * * *", "schedule", "30 * * * *"),
        ("keep", "3", "keep", 3),
        ("encryption_passphrase", 4242, "encryption_passphrase", "4242"),
        ("drill_schedule", "45 5 * * 1", "drill_schedule", "45 5 * * 1"),
        ("rpo_grace_seconds", "600", "rpo_grace_seconds", 600),
        ("proven_within_days", 3, "proven_within_days", 3),
        ("description", "Sales in Europe", "description", "Sales in Europe"),
    ],
)
def test_an_entry_overrides_the_default(key: str, value: Any, field: str, expected: Any) -> None:
    assert model_of({"name": "m", "database": "D", "host": "h", "password": "p", key: value})[field] == expected


def test_previous_passphrases_get_numbered_variables() -> None:
    model = model_of(
        {"name": "sales", "database": "D", "host": "h", "password": "p"},
        encryption_previous_passphrases=["Old-1", 12345],
    )
    assert model["previous_passphrases"] == ["Old-1", "12345"]
    assert model["previous_passphrase_variables"] == [
        "ENCRYPTION_PASSPHRASE_SALES_PREVIOUS_1",
        "ENCRYPTION_PASSPHRASE_SALES_PREVIOUS_2",
    ]
    own = model_of(
        {"name": "sales", "database": "D", "host": "h", "password": "p", "encryption_previous_passphrases": []}
    )
    assert own["previous_passphrase_variables"] == [], "the entry's own (empty) list wins"


@pytest.mark.parametrize(
    ("entry", "defaults", "expected"),
    [
        ({}, {}, ("sa", "Pw1")),
        ({"username": "exporter"}, {}, ("exporter", "Pw1")),
        ({}, {"restore_username": "restorer", "restore_password": "RolePw"}, ("restorer", "RolePw")),
        ({"restore_username": "own", "restore_password": "OwnPw"}, {"restore_username": "role"}, ("own", "OwnPw")),
        # An empty login falls back, as an unset one does.
        ({"restore_username": "", "restore_password": ""}, {"restore_username": "role"}, ("role", "Pw1")),
    ],
)
def test_the_restore_login_falls_back_to_the_roles_then_the_exports(
    entry: dict[str, Any], defaults: dict[str, Any], expected: tuple[str, str]
) -> None:
    restore = model_of({"name": "m", "database": "D", "host": "h", "password": "Pw1", **entry}, **defaults)["restore"]
    assert (restore["username"], restore["password"]) == expected


def test_an_entrys_restore_server_beats_the_roles() -> None:
    entry = {
        "name": "m",
        "database": "D",
        "host": "h",
        "password": "p",
        "restore_host": " own ",
        "restore_port": "14330",
    }
    restore = model_of({**entry, "restore_trust_server_certificate": "on"})["restore"]
    assert (restore["host"], restore["port"], restore["trust_server_certificate"]) == ("own", 14330, True)


# --- backup_models: .env and where each entry comes from -----------------------------

FIXED_ENV = {"MINIO_ACCESS_KEY": "key", "MINIO_SECRET_KEY": "secret"}
FIXED_SOURCES = {
    "MINIO_ACCESS_KEY": "backup_config_minio_access_key",
    "MINIO_SECRET_KEY": "backup_config_minio_secret_key",
}
NOTIFY_SOURCES = {"NOTIFY_SLACK_URL": "backup_config_notify_slack_url"}


def test_names_that_share_their_env_variables_are_refused_naming_both_models() -> None:
    entries = [
        {"name": name, "database": "D", "host": "h", "password": f"Pw-{name}"}
        for name in ("sales-eu", "hr", "sales_eu", "hr-archive")
    ]
    models = backup_models.backup_models(entries, ENTRY_DEFAULTS, HOST_PATH)
    assert backup_models.backup_model_name_problems(models) == [
        "backup_config_databases: the models sales-eu and sales_eu would share the .env variables"
        " MSSQL_PASSWORD_SALES_EU and ENCRYPTION_PASSPHRASE_SALES_EU (- and _ both become _ there),"
        " so one would use the other's password and passphrase: rename one of them"
    ]
    assert backup_models.backup_model_name_problems(models[:2] + models[3:]) == []


# --- deploy_risks: what a deploy refuses unless accepted by name ----------------------

SAFE_ENTRY = {"name": "sales", "database": "S", "host": "h", "password": "p", "username": "exporter"}
SAFE_DEFAULTS = {"encryption_passphrase": "Passphrase", "restore_username": "restorer"}
NONE_ACCEPTED = dict.fromkeys(deploy_risks.RISKS, False)


def test_a_safe_host_has_no_risk() -> None:
    assert deploy_risks.deploy_risk_problems([model_of(SAFE_ENTRY, **SAFE_DEFAULTS)], True, NONE_ACCEPTED) == []


@pytest.mark.parametrize(
    ("entry", "defaults", "object_lock", "opt_out", "reason"),
    [
        ({}, {"encryption_passphrase": ""}, True, "deploy_accept_unencrypted_backups", "models sales would upload"),
        ({}, {}, "no", "deploy_accept_unlocked_bucket", "minio_setup_object_lock is false"),
        ({"username": "SA"}, {}, True, "deploy_accept_sa_login", "sales (export) would log in as sa"),
        ({}, {"restore_username": "sa"}, True, "deploy_accept_sa_login", "sales (restore) would log in as sa"),
    ],
)
def test_each_risk_is_named_with_its_opt_out_and_accepting_it_lets_the_host_pass(
    entry: dict[str, Any], defaults: dict[str, Any], object_lock: Any, opt_out: str, reason: str
) -> None:
    models = [model_of({**SAFE_ENTRY, **entry}, **{**SAFE_DEFAULTS, **defaults})]
    (problem,) = deploy_risks.deploy_risk_problems(models, object_lock, NONE_ACCEPTED)
    assert reason in problem
    assert f"or set {opt_out}: true to accept" in problem
    assert deploy_risks.deploy_risk_problems(models, object_lock, {**NONE_ACCEPTED, opt_out: "true"}) == []


@pytest.fixture
def models() -> list[dict[str, Any]]:
    entries = [
        {"name": "sales", "database": "Sales", "host": "h", "password": "Pw1", "encryption_passphrase": "Now"},
        {"name": "inventory", "database": "Inv", "host": "h", "password": "Pw2", "restore_password": "R2"},
    ]
    return backup_models.backup_models(entries, {**ENTRY_DEFAULTS, "encryption_previous_passphrases": ["Old"]}, "p")


def test_env_holds_each_models_secrets_in_order(models: list[dict[str, Any]]) -> None:
    env = backup_models.backup_env(FIXED_ENV, models, {"NOTIFY_SLACK_URL": "https://slack"})
    assert list(env.items()) == [
        ("MINIO_ACCESS_KEY", "key"),
        ("MINIO_SECRET_KEY", "secret"),
        ("MSSQL_PASSWORD_SALES", "Pw1"),
        ("MSSQL_RESTORE_PASSWORD_SALES", "Pw1"),
        ("ENCRYPTION_PASSPHRASE_SALES", "Now"),
        ("ENCRYPTION_PASSPHRASE_SALES_PREVIOUS_1", "Old"),
        ("MSSQL_PASSWORD_INVENTORY", "Pw2"),
        ("MSSQL_RESTORE_PASSWORD_INVENTORY", "R2"),
        # No current passphrase (encryption is off for it), the previous one still opens old archives.
        ("ENCRYPTION_PASSPHRASE_INVENTORY_PREVIOUS_1", "Old"),
        ("NOTIFY_SLACK_URL", "https://slack"),
    ]


def test_every_env_entry_names_the_variable_that_sets_it(models: list[dict[str, Any]]) -> None:
    notify = {"NOTIFY_SLACK_URL": "https://slack"}
    sources = backup_models.backup_env_sources(FIXED_SOURCES, models, notify, NOTIFY_SOURCES)
    assert set(backup_models.backup_env(FIXED_ENV, models, notify)) <= set(sources)
    assert sources["MSSQL_RESTORE_PASSWORD_INVENTORY"] == (
        "backup_config_databases[1] (inventory).restore_password or backup_config_restore_password"
    )
    assert sources["ENCRYPTION_PASSPHRASE_INVENTORY"] == (
        "backup_config_databases[1] (inventory).encryption_passphrase or backup_config_encryption_passphrase"
    )
    assert sources["ENCRYPTION_PASSPHRASE_SALES_PREVIOUS_1"] == (
        "backup_config_databases[0] (sales).encryption_previous_passphrases[0]"
        " or backup_config_encryption_previous_passphrases[0]"
    )
    assert list(sources)[-1] == "NOTIFY_SLACK_URL"


NOTIFY_OFF = {
    "NOTIFY_WEBHOOK_URL": "",
    "NOTIFY_WEBHOOK_HEADERS": {},
    "NOTIFY_SLACK_URL": "",
    "NOTIFY_SMTP_HOST": "",
    "NOTIFY_SMTP_PORT": 587,
    "NOTIFY_SMTP_SECURITY": "starttls",
    "NOTIFY_SMTP_FROM": "",
    "NOTIFY_SMTP_TO": [],
    "NOTIFY_SMTP_USERNAME": "",
    "NOTIFY_SMTP_PASSWORD": "",
}
MAIL = {"NOTIFY_SMTP_HOST": "smtp", "NOTIFY_SMTP_FROM": "a@example", "NOTIFY_SMTP_TO": ["b@example", "c@example"]}


@pytest.mark.parametrize(
    ("settings", "env", "channels"),
    [
        ({}, {}, []),
        ({"NOTIFY_WEBHOOK_HEADERS": {"X": "1"}}, {}, []),
        ({"NOTIFY_WEBHOOK_URL": "https://hook"}, {"NOTIFY_WEBHOOK_URL": "https://hook"}, ["webhook"]),
        (
            {"NOTIFY_WEBHOOK_URL": "https://hook", "NOTIFY_WEBHOOK_HEADERS": {"Authorization": "Bearer x"}},
            {"NOTIFY_WEBHOOK_URL": "https://hook", "NOTIFY_WEBHOOK_HEADERS": '{"Authorization": "Bearer x"}'},
            ["webhook"],
        ),
        (
            MAIL,
            {
                "NOTIFY_SMTP_HOST": "smtp",
                "NOTIFY_SMTP_PORT": "587",
                "NOTIFY_SMTP_SECURITY": "starttls",
                "NOTIFY_SMTP_FROM": "a@example",
                "NOTIFY_SMTP_TO": "b@example,c@example",
            },
            ["mail"],
        ),
    ],
)
def test_only_the_channels_that_are_on_reach_env(
    settings: dict[str, Any], env: dict[str, str], channels: list[str]
) -> None:
    notify_env = backup_models.backup_notify_env({**NOTIFY_OFF, **settings})
    assert notify_env == env
    assert backup_models.backup_notify_channels(notify_env) == channels


@pytest.mark.parametrize("login", [{"NOTIFY_SMTP_USERNAME": "user"}, {"NOTIFY_SMTP_PASSWORD": "pw"}])
def test_half_an_smtp_login_is_written_whole_for_the_check_to_name(login: dict[str, str]) -> None:
    env = backup_models.backup_notify_env({**NOTIFY_OFF, **MAIL, **login})
    assert {"NOTIFY_SMTP_USERNAME", "NOTIFY_SMTP_PASSWORD"} <= set(env)


def test_every_channel_in_the_notifiers_order() -> None:
    on = {**MAIL, "NOTIFY_SLACK_URL": "https://slack", "NOTIFY_WEBHOOK_URL": "https://hook"}
    env = backup_models.backup_notify_env({**NOTIFY_OFF, **on})
    assert backup_models.backup_notify_channels(env) == ["webhook", "slack", "mail"]


# --- backup_config: the secrets only restores read --------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("CHANGE_ME", "still holds the placeholder CHANGE_ME"),
        (" CHANGE_ME ", "still holds the placeholder CHANGE_ME"),
    ],
)
def test_a_restore_secret_left_empty_or_as_the_placeholder_is_named(
    models: list[dict[str, Any]], value: str, problem: str
) -> None:
    env = backup_models.backup_env(FIXED_ENV, models, {})
    sources = backup_models.backup_env_sources(FIXED_SOURCES, models, {}, {})
    env["ENCRYPTION_PASSPHRASE_INVENTORY_PREVIOUS_1"] = value
    assert backup_config.restore_secret_problems(models, env, sources) == [
        "ENCRYPTION_PASSPHRASE_INVENTORY_PREVIOUS_1 (set by backup_config_databases[1] (inventory)"
        ".encryption_previous_passphrases[0] or backup_config_encryption_previous_passphrases[0])"
        f" {problem}; set the real value"
    ]


def test_restore_secrets_that_are_set_pass(models: list[dict[str, Any]]) -> None:
    env = backup_models.backup_env(FIXED_ENV, models, {})
    assert backup_config.restore_secret_problems(models, env, {}) == []


def test_a_restore_password_that_is_the_placeholder_is_named(models: list[dict[str, Any]]) -> None:
    env = {**backup_models.backup_env(FIXED_ENV, models, {}), "MSSQL_RESTORE_PASSWORD_SALES": "CHANGE_ME"}
    sources = backup_models.backup_env_sources(FIXED_SOURCES, models, {}, {})
    assert backup_config.restore_secret_problems(models, env, sources) == [
        "MSSQL_RESTORE_PASSWORD_SALES (set by backup_config_databases[0] (sales).restore_password or"
        " backup_config_restore_password) still holds the placeholder CHANGE_ME; set the real value"
    ]


# --- restore_plan: what restore.yml refuses, runs and reports ---------------------------

RESTORE_DEFAULTS = {
    "restore_model": "",
    "restore_archive": "",
    "restore_version_id": "",
    "restore_database": "",
    "restore_target_database": "",
    "restore_replace": False,
    "restore_drop_replaced": False,
    "restore_into_source": False,
    "restore_confirm": "",
    "restore_drill": False,
    "restore_verify": False,
    "restore_verify_all": False,
}
INTO_SOURCE = {"restore_model": "sales", "restore_into_source": "true"}


def refusals(hosts: int = 1, models: tuple[str, ...] = ("sales",), **settings: Any) -> list[str]:
    return restore_plan.restore_refusals({**RESTORE_DEFAULTS, **settings}, list(models), hosts)


@pytest.mark.parametrize(
    ("hosts", "settings", "reason"),
    [
        (
            2,
            {**INTO_SOURCE, "restore_target_database": "Sales", "restore_confirm": "Sales"},
            "a restore into a source server runs on exactly one host, and this play targets 2 hosts:"
            " add --limit <host>",
        ),
        (
            1,
            INTO_SOURCE,
            "a restore into a source server needs the database to write: add -e restore_target_database=<database>",
        ),
        (
            1,
            {**INTO_SOURCE, "restore_target_database": "Sales"},
            "a restore into a source server needs restore_confirm repeating restore_target_database:"
            " add -e restore_confirm=Sales",
        ),
        (
            1,
            {**INTO_SOURCE, "restore_target_database": "Sales", "restore_confirm": "sales"},
            "a restore into a source server needs restore_confirm repeating restore_target_database:"
            " add -e restore_confirm=Sales",
        ),
        (
            2,
            {"restore_model": "sales", "restore_target_database": "Sales", "restore_replace": "true"},
            "a replace swaps a database on one host only, and this play targets 2 hosts: add --limit <host>",
        ),
        (
            1,
            {"restore_model": "sales", "restore_drop_replaced": "true"},
            "restore_drop_replaced drops the database a replace renamed aside: it needs restore_replace=true",
        ),
        (
            1,
            {"restore_model": "sales", "restore_confirm": "Sales"},
            "restore_confirm confirms a restore into a source server only: add -e restore_into_source=true,"
            " or remove restore_confirm to restore into the restore server",
        ),
        (
            2,
            {"restore_drill": "true", "restore_into_source": "true"},
            "a drill imports every database into scratch databases it drops, and a verify imports nothing:"
            " neither takes restore_target_database, restore_replace, restore_into_source or restore_database",
        ),
        (1, {}, "name the model to restore with restore_model (only a drill or a verify covers all models)"),
        (1, {"restore_drill": "true", "restore_verify": "true"}, "choose one of restore_drill and restore_verify"),
        (
            1,
            {"restore_verify": "true", "restore_archive": "a.tar"},
            "a verify checks the latest archive or, with restore_verify_all, every kept one: remove restore_archive",
        ),
        (1, {"restore_model": "sales", "restore_version_id": "v1"}, "restore_version_id needs restore_archive"),
    ],
)
def test_a_risky_restore_is_refused(hosts: int, settings: dict[str, Any], reason: str) -> None:
    assert reason in refusals(hosts, **settings)


def test_a_target_database_needs_one_model() -> None:
    assert refusals(models=("sales", "inventory"), restore_drill="true", restore_target_database="X") == [
        "a drill imports every database into scratch databases it drops, and a verify imports nothing:"
        " neither takes restore_target_database, restore_replace, restore_into_source or restore_database",
        "restore_target_database names one database: name one model with restore_model",
    ]


@pytest.mark.parametrize(
    ("hosts", "settings", "argv"),
    [
        (
            1,
            {**INTO_SOURCE, "restore_target_database": "Sales", "restore_confirm": "Sales"},
            ["backup-restore", "--model", "sales", "--target-database", "Sales", "--into-source", "--confirm", "Sales"],
        ),
        (
            1,
            {"restore_model": "sales", "restore_replace": "true", "restore_drop_replaced": "true"},
            ["backup-restore", "--model", "sales", "--replace", "--drop-replaced"],
        ),
        (2, {"restore_drill": "true"}, ["backup-restore", "--model", "sales", "--drill"]),
        (
            2,
            {"restore_drill": "true", "restore_archive": "2026.11.23.02.00.00.tar.enc"},
            ["backup-restore", "--model", "sales", "--archive", "2026.11.23.02.00.00.tar.enc", "--drill"],
        ),
        (
            1,
            {"restore_model": "sales", "restore_archive": "a.tar", "restore_version_id": "v1"},
            ["backup-restore", "--model", "sales", "--archive", "a.tar", "--version-id", "v1"],
        ),
        (
            1,
            {"restore_model": "server1", "restore_database": "Sales", "restore_target_database": "SalesCopy"},
            ["backup-restore", "--model", "sales", "--database", "Sales", "--target-database", "SalesCopy"],
        ),
        (2, {"restore_verify": "true"}, ["backup-verify", "--model", "sales"]),
        (2, {"restore_verify": True, "restore_verify_all": "yes"}, ["backup-verify", "--model", "sales", "--all"]),
    ],
)
def test_a_complete_restore_passes_and_runs_its_command(hosts: int, settings: dict[str, Any], argv: list[str]) -> None:
    assert refusals(hosts, **settings) == []
    assert restore_plan.restore_argv({**RESTORE_DEFAULTS, **settings}, "sales") == argv


def test_the_verdict_is_each_drill_line_or_the_last_line() -> None:
    results = [
        {
            "item": "sales",
            "rc": 0,
            "stdout_lines": ["downloading", "DRILL PASS model=sales database=A", "DRILL FAIL x"],
        },
        {"item": "inventory", "rc": 0, "stdout_lines": ["downloading", "RESTORED model=inventory database=Inv"]},
        {"item": "hr", "rc": 1, "msg": 'Could not find container "x"'},
        {"item": "payroll", "rc": 1, "stdout_lines": []},
    ]
    assert restore_plan.restore_summary(results) == [
        "DRILL PASS model=sales database=A",
        "DRILL FAIL x",
        "RESTORED model=inventory database=Inv",
        'hr: Could not find container "x"',
        "payroll: no output",
    ]


# --- fleet_status: status.yml's table and breaches ----------------------------------------


def status_row(host: str, model: str = "", database: str = "", status: str = "OK", **fields: Any) -> dict[str, Any]:
    row = {
        "host": host,
        "model": model,
        "database": database,
        "last_backup": None,
        "last_backup_size": None,
        "proven_at": None,
        "restore_seconds": None,
        "status": status,
        "reasons": [],
    }
    return {**row, **fields}


def test_a_host_without_rows_is_a_row_of_its_own() -> None:
    reported = [status_row("a", "sales", "Sales")]
    rows = fleet_status.fleet_status_rows(["a", "b"], {"a": {"status_rows": reported}, "b": {}})
    assert rows == [
        *reported,
        status_row("b", status="ERROR", reasons=["ERROR: no report: the host failed before backup-status ran"]),
    ]


def test_the_table_pads_each_column_to_its_widest_cell() -> None:
    rows = [
        status_row(
            "a",
            "sales",
            "Sales",
            last_backup=1767225600,
            last_backup_size=123456789,
            proven_at=1767139200.5,
            restore_seconds=12.345,
        ),
        status_row("a", "inventory", "Inventory", "OVERDUE", last_backup_size=512, restore_seconds=0),
        status_row("a", "", "Stray", "UNCOVERED"),
        status_row("host-b", status="UNREACHABLE"),
    ]
    assert fleet_status.fleet_status_table(rows) == [
        "HOST    MODEL      DATABASE   LAST BACKUP           SIZE          PROVEN RESTORABLE     RESTORE  STATUS",
        "a       sales      Sales      2026-01-01 00:00 UTC  117.74 MB     2025-12-31 00:00 UTC  12.3 s   OK",
        "a       inventory  Inventory  never                 512.00 Bytes  never                 0.0 s    OVERDUE",
        "a       -          Stray      -                     -             -                     -        UNCOVERED",
        "host-b  -          -          -                     -             -                     -        UNREACHABLE",
    ]


def test_an_unreachable_host_is_named_in_the_table() -> None:
    """What tests/integration/test_roles.py looks for in the playbook's output."""
    table = "\n".join(
        fleet_status.fleet_status_table([status_row("sqlbackup-01.example.internal", status="UNREACHABLE")])
    )
    assert re.search(r"^\s*sqlbackup-01\.example\.internal\s+-\s+-\s+.*UNREACHABLE$", table, re.M), table


def test_each_row_that_is_not_ok_is_a_breach_naming_where_and_why() -> None:
    rows = [
        status_row("a", "sales", "Sales"),
        status_row("a", "inventory", "Inventory", "OVERDUE", reasons=["OVERDUE: late", "NOT PROVEN: never drilled"]),
        status_row("a", "", "Stray", "UNCOVERED", reasons=["UNCOVERED: no model backs it up"]),
        status_row("a", "inventory", "", "NOT PROVEN"),
        status_row("b", status="UNREACHABLE", reasons=["UNREACHABLE: ssh: connection refused"]),
    ]
    assert fleet_status.fleet_status_breaches(rows) == [
        "a: inventory/Inventory: OVERDUE: late; NOT PROVEN: never drilled",
        "a: Stray: UNCOVERED: no model backs it up",
        "a: inventory: NOT PROVEN: no reason given",
        "b: UNREACHABLE: ssh: connection refused",
    ]


# --- Every filter the roles and playbooks call exists --------------------------------------


def collection_filters() -> set[str]:
    names: set[str] = set()
    for path in sorted((REPO / "plugins" / "filter").glob("*.py")):
        names |= set(collection_plugin("filter", path.stem).FilterModule().filters())
    return names


def test_every_filter_called_by_its_full_name_exists() -> None:
    texts = [path.read_text() for folder in ("roles", "playbooks") for path in (REPO / folder).rglob("*.y*ml")]
    called = {name for text in texts for name in re.findall(r"sqlserver_backup\.backups\.(\w+)\s*(?:\(|}}|\|)", text)}
    assert "backup_models" in called
    assert called <= collection_filters()
