"""The work volume fills up during an export: the run fails naming the volume,
the space it had and the space the export needs, nothing is uploaded, the
scheduler keeps running, and the next run succeeds once space is freed. A
manual run (backup-now, backup_now.yml) exports through the work volume as a
scheduled one does, and never beside a scheduled run of its model. A stack of
its own (playbooks/deploy.yml), its work volume a 16 MiB tmpfs through
backup_stack_work_volume_driver_opts, its /tmp smaller than a table."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

import docker
import pytest
from minio import Minio
from sqlserver_backup_testing import dev_playbook, dev_stack_vars, said, scratch_stack, stack_names, wait_until

MINIO_PORT = 31662
BUCKET = "sqlserver-backups"
SA_PASSWORD = "Workvol-Sa-Passw0rd"
SQLCMD = ["/opt/mssql-tools18/bin/sqlcmd", "-S", "localhost", "-U", "sa", "-C", "-b", "-h", "-1", "-W"]
STACK_VARS = {
    **dev_stack_vars("workvol", mssql_port=31661, minio_port=MINIO_PORT),
    "dev_mssql_sa_password": SA_PASSWORD,
    "backup_image_tag": "workvol",
    "backup_stack_work_volume_driver_opts": {
        "type": "tmpfs",
        "device": "tmpfs",
        "o": "size=16m,uid=10001,gid=10001,mode=0700",
    },
    # Smaller than the table of the attachments fixture: an export that
    # buffers table data in /tmp fails.
    "backup_stack_tmp_size": "256k",
    # One model, run by the test only: its schedule does not come round.
    "backup_config_databases": [
        {
            "name": "sales",
            "database": "SalesDemo",
            "host": "mssql",
            "password": "{{ dev_mssql_sa_password }}",
            "trust_server_certificate": True,
            "schedule": "0 3 1 1 *",
        }
    ],
}
PROJECT = STACK_VARS["backup_stack_project"]
ROOT = Path(STACK_VARS["backup_stack_dir"]).parent
NAMES = stack_names(STACK_VARS)
BACKUP, MSSQL = NAMES.backup, NAMES.mssql
WORK_VOLUME = f"{PROJECT}_workdir"  # Compose's name for the stack's volume "workdir"
PREFIX = f"{STACK_VARS['backup_config_minio_path_prefix']}/localhost/sales/"
OUTPUTS: list[str] = []
# Random text does not compress: the export's table buffer and .bacpac need
# about this much each.
FILLER_ROWS, ROW_CHARACTERS = 120, 4000


@pytest.fixture(scope="module")
def stack():
    with scratch_stack(STACK_VARS):
        result = dev_playbook("deploy.yml", STACK_VARS)
        OUTPUTS.append(result.stdout + result.stderr)
        assert result.returncode == 0, result.stdout[-4000:]
        yield docker.from_env()


def sql(client: docker.DockerClient, query: str) -> str:
    result = client.containers.get(MSSQL).exec_run(
        [*SQLCMD, "-d", "SalesDemo", "-Q", query], environment={"SQLCMDPASSWORD": SA_PASSWORD}
    )
    assert result.exit_code == 0, result.output.decode()
    return result.output.decode()


def in_backup(client: docker.DockerClient, script: str) -> str:
    result = client.containers.get(BACKUP).exec_run(["sh", "-c", script])
    assert result.exit_code == 0, result.output.decode()
    return result.output.decode()


def perform_in_scheduler(client: docker.DockerClient) -> None:
    """A run of the daemon's own scheduler, through its loopback API."""
    in_backup(
        client,
        "python3 -c \"import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:2703/api/perform',"
        " data=b'model=sales'), timeout=10)\"",
    )


def log_length(client: docker.DockerClient) -> int:
    return len(client.containers.get(BACKUP).logs())


def wait_for_log(client: docker.DockerClient, start: int, pattern: str, seconds: float = 120) -> str:
    """The log from byte `start` on, once it matches pattern."""

    def since_start() -> str:
        return client.containers.get(BACKUP).logs()[start:].decode()

    def matching() -> str:
        logs = since_start()
        return logs if re.search(pattern, logs) else ""

    return wait_until(
        matching, lambda: f"{pattern!r} in the backup container's log:\n{since_start()[-3000:]}", seconds, interval=1
    )


def archives(bucket: Minio) -> list[str]:
    return sorted(o.object_name for o in bucket.list_objects(BUCKET, prefix=PREFIX) if o.object_name.endswith(".tar"))


def size_in_bytes(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"bytes": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}[unit]


@pytest.fixture(scope="module")
def attachments(stack: docker.DockerClient) -> None:
    """A table of about 0.5 MiB that does not compress, in SalesDemo."""
    if "Attachments" in sql(stack, "SELECT name FROM sys.tables"):
        return
    sql(stack, "CREATE TABLE dbo.Attachments (id INT, body NVARCHAR(4000))")
    for first in range(0, FILLER_ROWS, 20):  # a command line argument holds at most 128 KiB
        rows = ", ".join(f"({i}, N'{secrets.token_hex(ROW_CHARACTERS // 2)}')" for i in range(first, first + 20))
        sql(stack, f"INSERT INTO dbo.Attachments (id, body) VALUES {rows}")  # noqa: S608 - the test's own rows


def minio_bucket() -> Minio:
    password = (ROOT / "secrets" / "minio_root_password").read_text().split()[0]
    return Minio(f"127.0.0.1:{MINIO_PORT}", "minio-admin", password, secure=False)


def test_a_full_work_volume_fails_the_run_naming_it_and_the_next_run_succeeds(
    stack: docker.DockerClient, attachments: None
) -> None:
    client = stack
    bucket = minio_bucket()
    before = archives(bucket)

    # Leave 256 KiB free on the 16 MiB volume: the export (about 0.5 MiB of
    # table buffer, then a .bacpac as large) fills it up part-way.
    mount = in_backup(client, "df -P /tmp/gobackup | tail -1").split()[-1]
    assert mount == "/tmp/gobackup", "the work volume is a mount of its own"
    in_backup(
        client,
        "free=$(df -P -B1 /tmp/gobackup | awk 'NR == 2 { print $4 }');"
        " head -c $((free - 262144)) /dev/zero > /tmp/gobackup/filler",
    )
    start = log_length(client)
    perform_in_scheduler(client)
    logs = wait_for_log(client, start, r"Perform error: ")

    report = re.search(
        rf"\*\*\* the work volume {re.escape(WORK_VOLUME)} \(mounted at /tmp/gobackup\) ran out of space during"
        r" the export of SalesDemo: it had (\S+ \S+) free when the export started; the export needs about"
        r" (\S+ \S+) free there: twice its largest table \((\S+ \S+)\)",
        logs,
    )
    assert report, logs[-3000:]
    had, needs, largest = (size_in_bytes(text) for text in report.groups())
    assert 200 * 1024 < had <= 256 * 1024, "what df said was left"
    assert largest >= FILLER_ROWS * ROW_CHARACTERS, "the new table's data, from SQL Server's page counts"
    assert needs >= 2 * largest
    assert "No space left on device" in logs, "sqlpackage's own error is there too"
    assert "backup_stack_work_volume_driver_opts" in logs, "the variable that gives the volume more room"

    assert archives(bucket) == before, "nothing uploaded"
    backup = client.containers.get(BACKUP)
    assert backup.status == "running"
    assert backup.attrs["RestartCount"] == 0, "the scheduler kept running"
    left = in_backup(client, "ls -A /tmp/gobackup").split()
    assert "filler" in left
    assert not [name for name in left if name.isdigit()], "GoBackup removed the failed run's <unix-nanos> folder"

    in_backup(client, "rm /tmp/gobackup/filler")
    start = log_length(client)
    perform_in_scheduler(client)
    # GoBackup's last line of a run (its notifiers run after the upload).
    logs = wait_for_log(client, start, r"\[Notifier\] Running 0 Notifiers")
    time.sleep(1)
    assert "Perform error" not in client.containers.get(BACKUP).logs()[start:].decode(), logs[-3000:]
    uploaded = sorted(set(archives(bucket)) - set(before))
    assert len(uploaded) == 1, uploaded
    verify = backup.exec_run(["backup-verify", "--model", "sales"]).output.decode()
    assert "VERIFY PASS" in verify, verify

    secret_values = [SA_PASSWORD] + [path.read_text().split()[0] for path in (ROOT / "secrets").iterdir()]
    shown = backup.logs().decode() + "\n".join(OUTPUTS)
    assert not [value for value in secret_values if value in shown], "no secret in the log or Ansible's output"


def test_a_manual_run_exports_as_a_scheduled_one_and_never_beside_it(
    stack: docker.DockerClient, attachments: None
) -> None:
    backup = stack.containers.get(BACKUP)
    bucket = minio_bucket()
    before = archives(bucket)

    # GoBackup's perform on its own, as backup_now.yml ran it before: no
    # TMPDIR, so the table data goes to the container's small /tmp.
    bare = backup.exec_run(["gobackup", "perform", "-c", "/etc/gobackup/gobackup.yml", "-m", "sales"])
    assert bare.exit_code != 0, bare.output.decode()
    assert "No space left on device" in bare.output.decode()

    # A scheduled run of sales in progress (its TempPath): backup-now waits,
    # then gives up naming it.
    in_backup(stack, "mkdir -p /tmp/gobackup/1765000000000000000/sales")
    try:
        held = backup.exec_run(["backup-now", "--model", "sales", "--wait", "2"]).output.decode()
    finally:
        in_backup(stack, "rm -r /tmp/gobackup/1765000000000000000")
    assert (
        "BACKUP-NOW FAIL model=sales: model sales is held by the run in progress in /tmp/gobackup/1765000000000000000"
        in held
    )
    assert "gave up after 2 s" in held, held

    # A manual run holds sales (its lock, until the test lets go): a scheduled
    # run's export waits for it, then runs.
    lock, release = "/var/lib/gobackup/locks/sales.lock", "/var/lib/gobackup/locks/release"
    backup.exec_run(
        [
            "sh",
            "-c",
            f"mkdir -p /var/lib/gobackup/locks && flock {lock} sh -c"
            f" 'echo backup-now pid 7 > {lock}; until [ -e {release} ]; do sleep 0.2; done; rm {release}'",
        ],
        detach=True,
    )
    wait_until(lambda: "pid 7" in in_backup(stack, f"cat {lock} 2>/dev/null || true"), "the lock is held", 30)
    start = log_length(stack)
    perform_in_scheduler(stack)
    # The export (the wrapper, sqlpackage on GoBackup's PATH) has started and
    # stays: it waits for the lock. What it said shows once it ends.
    exporting = "grep -l -- '/Action:Expor[t]' /proc/[0-9]*/cmdline 2>/dev/null || true"  # [t]: not grep itself
    wait_until(lambda: in_backup(stack, exporting).strip(), "the scheduled run's export started", 60, interval=0.5)
    time.sleep(8)
    assert in_backup(stack, exporting).strip(), "the export still waits"
    in_backup(stack, f"touch {release}")
    logs = wait_for_log(stack, start, r"\[Notifier\] Running 0 Notifiers")
    assert "model sales is held by a manual run (backup-now pid 7); this scheduled export waits for it" in logs, logs
    assert "Perform error" not in logs, logs[-3000:]

    # backup_now.yml: backup-now, through the entrypoint's environment.
    result = dev_playbook("backup_now.yml", STACK_VARS)
    OUTPUTS.append(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "BACKUP-NOW OK model=sales" in result.stdout
    assert len(set(archives(bucket)) - set(before)) == 2, "the scheduled run's archive and the manual run's"


def test_a_model_short_of_room_on_the_work_volume_is_named_before_its_run(
    stack: docker.DockerClient, attachments: None
) -> None:
    backup = stack.containers.get(BACKUP)
    if not in_backup(stack, "ls /tmp/gobackup/local/sales 2>/dev/null || true").strip():
        result = dev_playbook("backup_now.yml", STACK_VARS)
        assert result.returncode == 0, result.stdout[-4000:]
    roomy = backup.exec_run(["backup-space"])
    assert roomy.exit_code == 0, roomy.output.decode()
    assert re.fullmatch(r"OK model=sales: \S+ \S+ free, the next run needs about \S+ \S+\n", roomy.output.decode())

    # Leave 256 KiB: less than three times the last archive.
    in_backup(
        stack,
        "free=$(df -P -B1 /tmp/gobackup | awk 'NR == 2 { print $4 }');"
        " head -c $((free - 262144)) /dev/zero > /tmp/gobackup/filler",
    )
    try:
        short = backup.exec_run(["backup-space"])
        deploy = dev_playbook("deploy.yml", STACK_VARS)
        OUTPUTS.append(deploy.stdout + deploy.stderr)
        start = log_length(stack)
        perform_in_scheduler(stack)
        logs = wait_for_log(stack, start, r"Perform error: |\[Notifier\] Running 0 Notifiers")
    finally:
        in_backup(stack, "rm -f /tmp/gobackup/filler")
    # A last scheduled run that succeeded again (the health check reports a failed one).
    start = log_length(stack)
    perform_in_scheduler(stack)
    wait_for_log(stack, start, r"\[Notifier\] Running 0 Notifiers")

    named = f"SHORT model=sales: the work volume {WORK_VOLUME} (mounted at /tmp/gobackup) has "
    assert short.exit_code == 1, short.output.decode()
    assert short.output.decode().startswith(named), short.output.decode()
    assert "(Ansible: backup_stack_work_volume_driver_opts)" in short.output.decode()
    assert f"backup-sqlpackage: warning: {named}" in logs, logs[-3000:]
    assert deploy.returncode == 0, deploy.stdout[-4000:]
    assert "the work volume is short of space" in deploy.stdout
    assert said(deploy, named)
