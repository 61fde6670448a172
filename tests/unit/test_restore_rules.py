"""The restore rules (sqlserver_backup.restore_rules) and backup-restore's decryption:
a restore server of its own for every model (never a server the host backs
up), drill schedules that never start with their model's backup, and archives
made before a passphrase rotation opened with a previous passphrase, while one
no known passphrase opens is a wrong key, not a damaged archive."""

from __future__ import annotations

import datetime
import io
import subprocess
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlserver_backup import archives, gobackup_config, restore_rules, state_files


def config(*models: tuple[str, str, int], schedule: str = "0 2 * * *") -> dict[str, Any]:
    """A gobackup.yml document with one model per (name, host, port)."""
    return {
        "models": {
            name: {
                "schedule": {"cron": schedule},
                "databases": {name: {"type": "mssql", "host": host, "port": port, "database": name.title()}},
            }
            for name, host, port in models
        }
    }


def settings(**models: dict[str, Any]) -> dict[str, Any]:
    return {"models": models}


NOW = datetime.datetime(2026, 12, 7, 1, 0, tzinfo=datetime.timezone.utc)


def test_a_restore_server_of_its_own_passes() -> None:
    document = config(("sales", "mssql", 1433), ("inventory", "mssql", 1433))
    restore = settings(sales={"host": "mssql-restore", "port": 1433}, inventory={"host": "mssql", "port": 1533})
    assert restore_rules.restore_problems(document, restore, NOW) == []


@pytest.mark.parametrize(
    "server",
    [
        {},
        {"host": ""},
        {"host": "  ", "port": 1433},
    ],
)
def test_a_model_without_a_restore_server_is_refused_naming_the_variable(server: dict[str, Any]) -> None:
    reasons = restore_rules.restore_problems(config(("sales", "mssql", 1433)), settings(sales=server), NOW)
    assert len(reasons) == 1
    assert "model sales: no restore server is set" in reasons[0]
    assert "backup_config_restore_host" in reasons[0]


@pytest.mark.parametrize(
    ("host", "port"),
    [("mssql", 1433), ("MSSQL", 1433), ("mssql.", 1433), ("sql-a", 2433)],
)
def test_a_restore_server_that_is_any_source_server_is_refused(host: str, port: int) -> None:
    """The same host and port as the model's own source or another model's."""
    document = config(("sales", "mssql", 1433), ("inventory", "sql-a", 2433))
    reasons = restore_rules.restore_problems(document, settings(sales={"host": host, "port": port}, inventory={}), NOW)
    refusal = [reason for reason in reasons if reason.startswith("model sales:")]
    assert len(refusal) == 1, reasons
    assert f"the restore server {host},{port} is a server this host backs up" in refusal[0]
    assert "backup_config_restore_host" in refusal[0]


def test_loopback_names_are_one_server() -> None:
    reasons = restore_rules.restore_problems(
        config(("sales", "localhost", 1433)), settings(sales={"host": "127.0.0.1", "port": 1433}), NOW
    )
    assert reasons
    assert "is a server this host backs up" in reasons[0]


def test_another_port_on_the_same_host_is_another_server() -> None:
    reasons = restore_rules.restore_problems(
        config(("sales", "mssql", 1433)), settings(sales={"host": "mssql", "port": 1434}), NOW
    )
    assert reasons == []


def test_a_drill_that_would_start_with_its_backup_is_refused() -> None:
    document = config(("sales", "mssql", 1433), schedule="0 * * * *")
    clash = settings(sales={"host": "scratch", "drill_schedule": "0 4 * * 0"})
    reasons = restore_rules.restore_problems(document, clash, NOW)
    assert len(reasons) == 1
    assert "starts at the same minute as its backup" in reasons[0]
    assert "backup_config_drill_schedule" in reasons[0]
    apart = settings(sales={"host": "scratch", "drill_schedule": "17 4 * * 0"})
    assert restore_rules.restore_problems(document, apart, NOW) == []


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("drill_schedule", "61 4 * * 0", "drill_schedule"),
        ("proven_within_days", 0, "proven_within_days must be a positive whole number"),
        ("rpo_grace_seconds", "soon", "rpo_grace_seconds must be a positive whole number"),
        ("previous_passphrases", ["not a name"], "previous_passphrases must list .env variable names"),
        ("hots", "typo", "restore.yml key 'hots' is unknown"),
    ],
)
def test_bad_restore_settings_are_named(key: str, value: Any, reason: str) -> None:
    reasons = restore_rules.restore_problems(
        config(("sales", "mssql", 1433)), settings(sales={"host": "scratch", key: value}), NOW
    )
    assert any(reason in each for each in reasons), reasons


def test_the_ansible_filter_names_the_source_of_a_refusal() -> None:
    gobackup = """
workdir: /tmp/gobackup
web: {host: 127.0.0.1}
models:
  sales:
    databases:
      sales: {type: mssql, host: mssql, port: 1433, database: SalesDemo, password: '${MSSQL_PASSWORD_SALES}'}
    storages:
      minio: {type: minio, endpoint: 'http://minio:9000', bucket: b, path: p/sales}
"""
    restore = "models:\n  sales: {host: mssql, port: 1433, password: '${MSSQL_RESTORE_PASSWORD_SALES}'}\n"
    reasons = restore_rules.restore_config_problems(restore, gobackup, {"MSSQL_PASSWORD_SALES": "x"})
    assert len(reasons) == 1
    assert "is a server this host backs up" in reasons[0]
    assert restore_rules.restore_config_problems(restore.replace("host: mssql", "host: scratch"), gobackup, {}) == []


def test_all_databases_is_a_model_of_its_own_now() -> None:
    """GoBackup's all_databases lists the server's databases with sqlcmd, which the image ships."""
    text = """
workdir: /tmp/gobackup
web: {host: 127.0.0.1}
models:
  everything:
    databases:
      everything: {type: mssql, host: mssql, all_databases: true, skip_databases: [Scratch], password: x}
    storages:
      minio: {type: minio, endpoint: 'http://minio:9000', bucket: b, path: p/everything}
"""
    assert gobackup_config.check_text(text, {})[1] == []
    assert restore_rules.source_servers(gobackup_config.check_text(text, {})[0])[0]["skip_databases"] == ["Scratch"]
    reasons = gobackup_config.check_text(text.replace("[Scratch]", "Scratch"), {})[1]
    assert reasons == ["model everything: database everything: skip_databases must be a list of database names"]


def test_state_files_are_replaced_whole(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(state_files, "STATE_DIR", tmp_path / "state")
    assert state_files.read_state("drills.json") == {}
    state_files.write_state("drills.json", {"models": {"sales": {}}})
    assert state_files.read_state("drills.json") == {"models": {"sales": {}}}
    assert (tmp_path / "state" / "drills.json").stat().st_mode & 0o777 == 0o600
    assert [path.name for path in (tmp_path / "state").iterdir()] == ["drills.json"]


# --- Decryption with the current and previous passphrases ----------------------------


def restore_tool() -> ModuleType:
    """The image's archive module: decryption and its errors."""
    return archives


ARGS = "-pbkdf2 -iter 1000 -md sha256"
MODEL = {"encrypt_with": {"type": "openssl", "password": "env:ENCRYPTION_PASSPHRASE_SALES", "args": ARGS}}


def encrypted_archive(directory: Path, passphrase: str, size: int = 200_000) -> Path:
    """A tar archive as GoBackup makes it, encrypted as its openssl step does."""
    plain = directory / "2026.12.01.02.00.00.tar"
    with tarfile.open(plain, "w") as archive:
        data = bytes(range(256)) * (size // 256)
        entry = tarfile.TarInfo("sales/mssql/sales/SalesDemo.bacpac")
        entry.size = len(data)
        archive.addfile(entry, io.BytesIO(data))
    target = directory / (plain.name + ".enc")
    subprocess.run(
        ["openssl", "aes-256-cbc", "-salt", *ARGS.split(), "-pass", "env:KEY", "-in", plain, "-out", target],
        env={"KEY": passphrase, "PATH": "/usr/bin:/bin"},
        check=True,
    )
    plain.unlink()
    return target


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    return restore_tool()


def test_the_current_passphrase_opens_its_archive(tool: ModuleType, tmp_path: Path) -> None:
    archive = encrypted_archive(tmp_path, "current one")
    plain = tool.decrypt(archive, "sales", MODEL, {"ENCRYPTION_PASSPHRASE_SALES": "current one"}, {})
    with tarfile.open(plain) as archive:
        assert archive.getnames() == ["sales/mssql/sales/SalesDemo.bacpac"]


def test_an_archive_made_before_a_rotation_opens_with_a_previous_passphrase(
    tool: ModuleType, tmp_path: Path, capsys
) -> None:
    archive = encrypted_archive(tmp_path, "the old one")
    environment = {
        "ENCRYPTION_PASSPHRASE_SALES": "the new one",
        "ENCRYPTION_PASSPHRASE_SALES_PREVIOUS_1": "the old one",
    }
    restore = {"previous_passphrases": ["ENCRYPTION_PASSPHRASE_SALES_PREVIOUS_1"]}
    plain = tool.decrypt(archive, "sales", MODEL, environment, restore)
    with tarfile.open(plain) as archive:
        assert archive.getnames() == ["sales/mssql/sales/SalesDemo.bacpac"]
    assert "opened with the previous passphrase in ENCRYPTION_PASSPHRASE_SALES_PREVIOUS_1" in capsys.readouterr().out


def test_an_archive_no_known_passphrase_opens_is_a_wrong_key(tool: ModuleType, tmp_path: Path) -> None:
    archive = encrypted_archive(tmp_path, "a lost one")
    environment = {"ENCRYPTION_PASSPHRASE_SALES": "the new one", "ENCRYPTION_PASSPHRASE_SALES_PREVIOUS_1": "old"}
    restore = {"previous_passphrases": ["ENCRYPTION_PASSPHRASE_SALES_PREVIOUS_1"]}
    with pytest.raises(tool.WrongKey) as raised:
        tool.decrypt(archive, "sales", MODEL, environment, restore)
    assert not isinstance(raised.value, tool.CorruptArchive)
    assert "tried ENCRYPTION_PASSPHRASE_SALES, ENCRYPTION_PASSPHRASE_SALES_PREVIOUS_1" in str(raised.value)
    assert "the new one" not in str(raised.value)
    assert "old" not in str(raised.value).replace("hold", "").replace("older", "")
    assert not list(tmp_path.iterdir()), "nothing is left in the work directory"


@pytest.mark.parametrize("damage", ["truncated", "flipped_tail", "no_salt"])
def test_a_damaged_archive_the_passphrase_opens_is_corrupt(tool: ModuleType, tmp_path: Path, damage: str) -> None:
    archive = encrypted_archive(tmp_path, "current one")
    data = bytearray(archive.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2 + 5]
    elif damage == "flipped_tail":
        data[-3] ^= 0xFF
    else:
        data[:8] = b"Garbage!"
    archive.write_bytes(bytes(data))
    with pytest.raises(tool.CorruptArchive):
        tool.decrypt(archive, "sales", MODEL, {"ENCRYPTION_PASSPHRASE_SALES": "current one"}, {})
