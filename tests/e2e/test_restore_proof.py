"""Restores that never hurt production, and proof that every database restores,
end to end on a development stack of its own: the SQL Server stand-in as the
source, a second one as the restore server (the dev stack's mssql-restore),
MinIO, the backup container with its metrics, a webhook receiver for alerts,
and a real Prometheus from Debian's package with the repository's alert rules.

Each test builds what it needs with fixtures (an archive, a proven state); the
stack itself is deployed once for the module."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml
from minio import Minio
from sqlserver_backup_testing import (
    REPO,
    TEST_VARS,
    USES_STANDINS,
    ansible_playbook,
    dev_playbook,
    dev_stack_vars,
    free_port,
    scrape_metrics,
    scratch_stack,
    stack_names,
    standins_only,
    wait_until,
)

MINIO_PORT, METRICS_PORT = 29300, 29851
SA_PASSWORD, RESTORE_PASSWORD = "Proof-Sa-Passw0rd1", "Proof-Restore-Passw0rd1"
BUCKET = "sqlserver-backups"
# On a schedule that does not come round while the suite runs: only the tests start runs.
BACKUP_SCHEDULE = "0 3 1 7 *"
MODELS = [
    {
        "name": name,
        "database": database,
        "host": "mssql",
        "password": "{{ dev_mssql_sa_password }}",
        "trust_server_certificate": True,
        "schedule": BACKUP_SCHEDULE,
    }
    for name, database in (("sales", "SalesDemo"), ("inventory", "InventoryDemo"))
]
STACK_VARS = {
    **dev_stack_vars("proof", mssql_port=22433, minio_port=MINIO_PORT),
    "dev_mssql_sa_password": SA_PASSWORD,
    "dev_mssql_restore_sa_password": RESTORE_PASSWORD,
    "backup_config_databases": MODELS,
    # Drills and coverage only when a test asks for them.
    "backup_config_drill_schedule": "0 4 1 8 *",
    "backup_config_coverage_schedule": "0 4 1 8 *",
    "backup_stack_metrics_enabled": True,
    "backup_stack_metrics_port": METRICS_PORT,
    "backup_config_notify_webhook_url": "http://receiver:8080/hook",
}
PROJECT = STACK_VARS["backup_stack_project"]
ROOT = Path(str(STACK_VARS["backup_stack_dir"])).parent
NAMES = stack_names(STACK_VARS)
BACKUP, SOURCE, RESTORE_SERVER, MINIO = NAMES.backup, NAMES.mssql, NAMES.restore_server, NAMES.minio
PREFIX = f"{STACK_VARS['backup_config_minio_path_prefix']}/localhost"
SQLCMD = ["/opt/mssql-tools18/bin/sqlcmd", "-S", "localhost", "-U", "sa", "-C", "-b", "-h", "-1", "-W"]
FAULTS = "/var/opt/mssql/standin-faults.json"
RECEIVER = """
import http.server, pathlib
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length'])).decode()
        with open('/received/requests.jsonl', 'a') as out:
            out.write(body.replace('\\n', ' ') + '\\n')
        self.send_response(200); self.end_headers()
http.server.HTTPServer(('0.0.0.0', 8080), Handler).serve_forever()
"""


def playbook(name: str, *arguments: str | dict, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = dev_playbook(name, STACK_VARS, *arguments, verbose=True)
    if check:
        assert result.returncode == 0, result.stdout[-4000:]
    return result


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture(scope="module")
def received(client: docker.DockerClient, tmp_path_factory) -> Path:
    """What the webhook receiver on the stack's network got, one body a line."""
    folder = tmp_path_factory.mktemp("received")
    folder.chmod(0o777)
    return folder / "requests.jsonl"


@pytest.fixture(scope="module")
def stack(client: docker.DockerClient, received: Path) -> Iterator[docker.DockerClient]:
    with scratch_stack(STACK_VARS):
        playbook("deploy.yml")
        receiver = client.containers.run(
            "sqlserver-backup:1.0.0",
            ["python3", "-c", RECEIVER],
            entrypoint=[],
            detach=True,
            name=f"{PROJECT}-receiver",
            volumes={str(received.parent): {"bind": "/received", "mode": "rw"}},
            network=f"{PROJECT}_default",
            networking_config={f"{PROJECT}_default": client.api.create_endpoint_config(aliases=["receiver"])},
        )
        try:
            yield client
        finally:
            receiver.remove(force=True)


@pytest.fixture(scope="module")
def bucket(stack) -> Minio:
    password = (ROOT / "secrets" / "minio_root_password").read_text().split()[0]
    return Minio(f"127.0.0.1:{MINIO_PORT}", "minio-admin", password, secure=False)


def run(client: docker.DockerClient, *argv: str) -> tuple[int, str]:
    result = client.containers.get(BACKUP).exec_run(list(argv))
    return result.exit_code, result.output.decode()


def sql(client: docker.DockerClient, server: str, query: str, database: str = "master") -> list[str]:
    result = client.containers.get(server).exec_run(
        [*SQLCMD, "-d", database, "-Q", f"SET NOCOUNT ON; {query}"],
        environment={"SQLCMDPASSWORD": RESTORE_PASSWORD if server == RESTORE_SERVER else SA_PASSWORD},
    )
    assert result.exit_code == 0, result.output.decode()
    return result.output.decode().split()


def databases(client: docker.DockerClient, server: str) -> list[str]:
    return sorted(sql(client, server, "SELECT name FROM sys.databases"))


# GoBackup's default filename_format, 2006.01.02.15.04.05.
ARCHIVE_TIME = "%Y.%m.%d.%H.%M.%S"


def archives(bucket: Minio, model: str) -> list[str]:
    names = [obj.object_name for obj in bucket.list_objects(BUCKET, prefix=f"{PREFIX}/{model}/")]
    return sorted(name.rsplit("/", 1)[1] for name in names if ".tar" in name)


@pytest.fixture
def archive(stack, bucket: Minio) -> dict[str, str]:
    """The newest archive of each model, made when there is none."""
    if not all(archives(bucket, model["name"]) for model in MODELS):
        playbook("backup_now.yml")
    return {model["name"]: archives(bucket, model["name"])[-1] for model in MODELS}


@pytest.fixture
def proven(stack, archive: dict[str, str]) -> None:
    """Every model drilled: each database proven restorable."""
    playbook("restore.yml", "-e", "restore_drill=true")


@contextlib.contextmanager
def fault(client: docker.DockerClient, **patterns: list[str]) -> Iterator[None]:
    """A fault of the SQL Server stand-in on the restore server (its test-only
    fault file): DBCC CHECKDB, a rename or an import fails for these names."""
    server = client.containers.get(RESTORE_SERVER)
    data = json.dumps(patterns).encode()
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tar:
        entry = tarfile.TarInfo(Path(FAULTS).name)
        entry.size, entry.mode = len(data), 0o644
        tar.addfile(entry, io.BytesIO(data))
    assert server.put_archive(str(Path(FAULTS).parent), packed.getvalue())
    try:
        yield
    finally:
        empty = io.BytesIO()
        with tarfile.open(fileobj=empty, mode="w") as tar:
            entry = tarfile.TarInfo(Path(FAULTS).name)
            entry.size, entry.mode = 2, 0o644
            tar.addfile(entry, io.BytesIO(b"{}"))
        server.put_archive(str(Path(FAULTS).parent), empty.getvalue())


def damaged_import_archive(bucket: Minio, name: str) -> bytes:
    """The archive `name` of sales with its package's last table data damaged
    (one row with a value too many): the tar, the zip's CRCs and the model's
    checksum are all right, so it verifies, and the import fails part-way,
    after the first tables were loaded."""
    data = bucket.get_object(BUCKET, f"{PREFIX}/sales/{name}").read()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(root, filter="data")
        [package] = root.glob("sales/mssql/*/*.bacpac")
        with zipfile.ZipFile(package) as original:
            entries = [(info, original.read(info)) for info in original.infolist()]
        tables = sorted(info.filename for info, _ in entries if info.filename.startswith("Data/"))
        damaged = io.BytesIO()
        with zipfile.ZipFile(damaged, "w", zipfile.ZIP_DEFLATED) as rewritten:
            for info, content in entries:
                if info.filename == tables[-1]:
                    rows = json.loads(content)
                    rows.append([*rows[0], "a value too many"])
                    content = json.dumps(rows).encode()
                rewritten.writestr(info.filename, content)
        package.write_bytes(damaged.getvalue())
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            tar.add(root / "sales", arcname="sales")
        return out.getvalue()


@contextlib.contextmanager
def newest(bucket: Minio, model: str, extension: str, data: bytes) -> Iterator[str]:
    """An archive put in as the model's newest, removed on leaving: named a
    second after the newest archive (a name later than the upload is no
    archive; tests/unit/test_archive_listing.py)."""
    made = datetime.datetime.strptime(archives(bucket, model)[-1][:19], ARCHIVE_TIME) + datetime.timedelta(seconds=1)
    name = made.strftime(ARCHIVE_TIME) + extension
    key = f"{PREFIX}/{model}/{name}"
    bucket.put_object(BUCKET, key, io.BytesIO(data), len(data))
    try:
        yield name
    finally:
        bucket.remove_object(BUCKET, key)


def foreign_key_archive(bucket: Minio, name: str) -> bytes:
    """A sales archive encrypted under a passphrase this host never had."""
    data = bucket.get_object(BUCKET, f"{PREFIX}/sales/{name}").read()
    return subprocess.run(
        ["openssl", "aes-256-cbc", "-salt", "-pbkdf2", "-iter", "100000", "-md", "sha256", "-pass", "env:KEY"],
        input=data,
        capture_output=True,
        check=True,
        env={"KEY": "a passphrase nobody kept", "PATH": "/usr/bin:/bin"},
    ).stdout


# --- 1. A restore never touches a source server unless told to -------------------------


def test_a_drill_and_a_restore_never_touch_the_source_server(stack, archive) -> None:
    before = databases(stack, SOURCE)
    drill = playbook("restore.yml", "-e", "restore_drill=true")
    assert "DRILL PASS model=sales database=SalesDemo" in drill.stdout
    assert "on mssql-restore,1433" in drill.stdout
    restored = playbook("restore.yml", "-e", "restore_model=inventory", "-e", "restore_target_database=InvProof")
    assert "RESTORED model=inventory" in restored.stdout
    assert "InvProof" in databases(stack, RESTORE_SERVER)
    assert databases(stack, SOURCE) == before, "the source server's databases did not change"
    sql(stack, RESTORE_SERVER, "DROP DATABASE InvProof")


@pytest.fixture
def live_target(stack, archive) -> str:
    """SalesLive on the restore server, changed since the archive (one more
    customer): a replace that fails must leave exactly this."""
    if "SalesLive" not in databases(stack, RESTORE_SERVER):
        code, output = run(stack, "backup-restore", "--model", "sales", "--target-database", "SalesLive")
        assert code == 0, output
        sql(stack, RESTORE_SERVER, "INSERT INTO dbo.Customers VALUES (99, 'Marker', 'Nowhere')", "SalesLive")
    return "SalesLive"


def leftovers(client: docker.DockerClient) -> list[str]:
    return [name for name in databases(client, RESTORE_SERVER) if re.search(r"_(restoring|replaced|drill)_", name)]


STEPS = ["download", "decrypt", "import", "check", "swap"]


@pytest.mark.parametrize("step", STEPS)
def test_a_replace_that_fails_at_any_step_leaves_the_target_intact(
    stack, bucket: Minio, archive, live_target: str, step: str
) -> None:
    if step in {"import", "check", "swap"} and not USES_STANDINS:
        pytest.skip("the fault is injected through the SQL Server stand-in")
    replace = ["backup-restore", "--model", "sales", "--target-database", live_target, "--replace"]
    with contextlib.ExitStack() as faults:
        if step == "download":
            minio = stack.containers.get(MINIO)
            minio.stop()
            faults.callback(lambda: wait_until(lambda: bucket.bucket_exists(BUCKET), "MinIO is back", 60, interval=0.5))
            faults.callback(minio.start)
            replace += ["--timeout", "5"]
        elif step == "decrypt":
            name = faults.enter_context(
                newest(bucket, "sales", ".tar.enc", foreign_key_archive(bucket, archive["sales"]))
            )
            replace += ["--archive", name]
        elif step == "import":
            name = faults.enter_context(
                newest(bucket, "sales", ".tar", damaged_import_archive(bucket, archive["sales"]))
            )
            replace += ["--archive", name]
        elif step == "check":
            faults.enter_context(fault(stack, checkdb=["*_restoring_*"]))
        else:
            faults.enter_context(fault(stack, modify_name=["*_restoring_*"]))
        code, output = run(stack, *replace)
    assert code == 1, output
    assert "RESTORE FAIL model=sales" in output, output
    reason = {
        "download": "cannot reach",
        # The stack encrypts nothing: an encrypted archive has no passphrase here.
        "decrypt": ".tar.enc of model sales is encrypted, but no passphrase for it is set",
        "import": "sqlpackage import into SalesLive_restoring_",
        "check": "DBCC CHECKDB of SalesLive_restoring_",
        "swap": "SalesLive_restoring_",
    }[step]
    assert reason in output, output
    assert sql(stack, RESTORE_SERVER, "SELECT COUNT(*) FROM dbo.Customers", live_target) == ["6"], "target intact"
    assert leftovers(stack) == [], "no temporary database left behind"


def test_a_restore_into_the_source_needs_one_host_a_target_and_its_name_again(stack, archive, tmp_path) -> None:
    into = ("-e", "restore_model=sales", "-e", "restore_into_source=true")
    for arguments, missing in (
        ((), "restore_target_database"),
        (("-e", "restore_target_database=SalesDemo"), "restore_confirm"),
        (("-e", "restore_target_database=SalesDemo", "-e", "restore_confirm=Sales"), "restore_confirm"),
    ):
        refused = playbook("restore.yml", *into, *arguments, check=False)
        assert refused.returncode != 0
        assert missing in refused.stdout, refused.stdout[-3000:]
        assert "downloading" not in refused.stdout, "refused before any download"
    # Aimed at two hosts: refused before anything runs in a container.
    inventory = tmp_path / "two-hosts.yml"
    local = {"ansible_connection": "local", "ansible_python_interpreter": shutil.which("python3")}
    inventory.write_text(yaml.safe_dump({"backup_hosts": {"hosts": {"localhost": local, "backup-b": local}}}))
    confirmed = ("-e", "restore_target_database=SalesDemo", "-e", "restore_confirm=SalesDemo")
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(STACK_VARS))
    two = ansible_playbook(
        "-i", str(inventory), "-e", f"@{TEST_VARS}", "-e", f"@{extra}",
        *into, *confirmed, str(REPO / "playbooks" / "restore.yml"),
    )  # fmt: skip
    assert two.returncode != 0
    assert "exactly one host" in two.stdout, two.stdout[-3000:]
    assert "downloading" not in two.stdout

    # Confirmed, on one host: a swap on the source, the old database kept aside.
    before = sql(stack, SOURCE, "SELECT COUNT(*) FROM dbo.Orders", "SalesDemo")
    done = playbook("restore.yml", *into, *confirmed, "-e", "restore_replace=true")
    aside = re.search(r"replaced=(SalesDemo_replaced_\d{14})", done.stdout)
    assert aside, done.stdout[-3000:]
    assert sql(stack, SOURCE, "SELECT COUNT(*) FROM dbo.Orders", "SalesDemo") == before
    assert aside.group(1) in databases(stack, SOURCE)
    sql(stack, SOURCE, f"DROP DATABASE [{aside.group(1)}]")


@standins_only
def test_a_drill_that_fails_mid_import_leaves_nothing_on_the_restore_server(stack, bucket, archive) -> None:
    with newest(bucket, "sales", ".tar", damaged_import_archive(bucket, archive["sales"])):
        code, output = run(stack, "backup-restore", "--model", "sales", "--drill")
    assert code == 1, output
    assert re.search(
        r"DRILL FAIL model=sales database=SalesDemo reason=sqlpackage import into SalesDemo_drill_", output
    )
    assert "dropped SalesDemo_drill_" in output, "the partial import was there and is gone"
    assert leftovers(stack) == []


def test_an_object_planted_under_a_later_name_is_never_the_latest_archive(stack, bucket, archive) -> None:
    planted = "2099.01.01.00.00.00.tar"
    key = f"{PREFIX}/sales/{planted}"
    data = bucket.get_object(BUCKET, f"{PREFIX}/sales/{archive['sales']}").read()
    bucket.put_object(BUCKET, key, io.BytesIO(data), len(data))
    try:
        why = f"{planted}: its name is a time later than its upload at "
        code, listed = run(stack, "backup-restore", "--model", "sales", "--list")
        assert code == 0, listed
        assert listed.splitlines()[-2] == archive["sales"], listed
        assert listed.splitlines()[-1].startswith(f"IGNORED {why}"), listed
        code, verified = run(stack, "backup-verify", "--model", "sales")
        assert code == 0, verified
        assert f"OK model=sales key={PREFIX}/sales/{archive['sales']} " in verified, verified
        assert f"IGNORED model=sales key={key} reason=" in verified, verified
    finally:
        bucket.remove_object(BUCKET, key)


# --- 2. Proven restorable, on a schedule ------------------------------------------------


def status_rows(client: docker.DockerClient) -> dict[tuple[str, str], dict]:
    code, output = run(client, "backup-status", "--json")
    assert code in (0, 1), output
    return {(row["model"], row["database"]): row for row in json.loads(output)["rows"]}


def drill_results(client: docker.DockerClient) -> dict:
    code, output = run(client, "cat", "/var/lib/gobackup/drills.json")
    return json.loads(output).get("models", {}) if code == 0 else {}


def test_scheduled_drills_record_prove_and_alert_on_a_broken_archive(stack, bucket, archive, received) -> None:
    # robfig/cron's @every, as a drill_schedule accepts it: drills every 20 s keep the test short.
    frequent = [{**model, "drill_schedule": "@every 20s"} if model["name"] == "sales" else model for model in MODELS]
    run(stack, "rm", "-f", "/var/lib/gobackup/drills.json")
    playbook("deploy.yml", {"backup_config_databases": frequent})
    try:
        wait_until(
            lambda: drill_results(stack).get("sales", {}).get("SalesDemo", {}).get("result") == "pass",
            "a scheduled drill of sales passed",
            150,
            interval=0.5,
        )
        record = drill_results(stack)["sales"]["SalesDemo"]
        assert record["proven_at"] > time.time() - 300
        assert record["restore_seconds"] >= 0
        assert record["archive"] == archive["sales"]
        assert record["row_counts"]["[dbo].[Customers]"] == 5
        metrics = scrape_metrics(METRICS_PORT)
        labels = '{database="SalesDemo",model="sales"}'
        assert metrics[f"sqlserver_backup_drill_success{labels}"] == 1
        assert metrics[f"sqlserver_backup_drill_last_success_timestamp_seconds{labels}"] == pytest.approx(
            record["proven_at"], abs=1
        )
        assert f"sqlserver_backup_drill_restore_duration_seconds{labels}" in metrics
        assert status_rows(stack)[("sales", "SalesDemo")]["proven_at"]

        broken = damaged_import_archive(bucket, archive["sales"]) if USES_STANDINS else b"not an archive"
        received.unlink(missing_ok=True)
        with newest(bucket, "sales", ".tar", broken):
            wait_until(
                lambda: drill_results(stack)["sales"]["SalesDemo"]["result"] == "fail",
                "the next scheduled drill failed",
                150,
                interval=0.5,
            )
            wait_until(
                lambda: received.is_file() and "sales" in received.read_text(),
                "the failed drill alerted",
                30,
                interval=0.5,
            )
        assert "drill" in received.read_text().lower()
        assert scrape_metrics(METRICS_PORT)[f"sqlserver_backup_drill_success{labels}"] == 0
        row = status_rows(stack)[("sales", "SalesDemo")]
        assert row["status"] != "OK"
        assert leftovers(stack) == []
    finally:
        playbook("deploy.yml")


# --- 3. Coverage ---------------------------------------------------------------------


@pytest.fixture
def payroll(stack) -> Iterator[str]:
    """A database created on the source server after the deploy."""
    sql(stack, SOURCE, "CREATE DATABASE Payroll")
    try:
        yield "Payroll"
    finally:
        sql(stack, SOURCE, "IF DB_ID('Payroll') IS NOT NULL DROP DATABASE Payroll")
        run(stack, "backup-coverage")


def test_a_database_created_after_the_deploy_is_uncovered_until_covered(stack, proven, payroll: str) -> None:
    # The logical file name is the one the deploy's script created InventoryDemo with.
    sql(stack, SOURCE, "CREATE DATABASE InventorySnap ON (NAME = N'InventoryDemo', FILENAME ="
        " N'/var/opt/mssql/data/i.ss') AS SNAPSHOT OF InventoryDemo")  # fmt: skip
    try:
        code, output = run(stack, "backup-coverage")
    finally:
        sql(stack, SOURCE, "DROP DATABASE InventorySnap")
    assert code == 1, output
    assert "UNCOVERED server=mssql,1433 database=Payroll" in output
    assert "InventorySnap" not in output, "a snapshot is not a database to back up"
    assert (
        scrape_metrics(METRICS_PORT)['sqlserver_backup_database_uncovered{database="Payroll",server="mssql,1433"}'] == 1
    )
    assert status_rows(stack)[("", "Payroll")]["status"] == "UNCOVERED"
    status = playbook("status.yml", check=False)
    assert status.returncode != 0
    assert re.search(r"Payroll.*UNCOVERED", status.stdout), status.stdout[-3000:]

    try:
        playbook("deploy.yml", {"backup_config_coverage_ignore": ["Payroll"]})
        assert run(stack, "backup-coverage")[0] == 0
        assert "Payroll" not in {database for _, database in status_rows(stack)}
        assert playbook("status.yml").returncode == 0

        covered = [*MODELS, {**MODELS[0], "name": "payroll", "database": "Payroll"}]
        playbook("deploy.yml", {"backup_config_databases": covered})
        assert run(stack, "backup-coverage")[0] == 0
        assert not any(
            name.startswith("sqlserver_backup_database_uncovered{") and value
            for name, value in scrape_metrics(METRICS_PORT).items()
        )
    finally:
        playbook("deploy.yml")  # the next tests see neither the ignore nor the payroll model


def test_all_databases_backs_up_verifies_drills_and_restores_each_database(stack, bucket) -> None:
    everything = {"name": "everything", "host": "mssql", "password": "{{ dev_mssql_sa_password }}"}
    everything |= {"all_databases": True, "skip_databases": ["InventoryDemo"], "trust_server_certificate": True}
    everything |= {"schedule": BACKUP_SCHEDULE}
    playbook("deploy.yml", {"backup_config_databases": [*MODELS, everything]})
    try:
        playbook("backup_now.yml", "-e", "backup_now_models=everything")
        [name] = archives(bucket, "everything")[-1:]
        data = bucket.get_object(BUCKET, f"{PREFIX}/everything/{name}").read()
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            held = sorted(tar.getnames())
        assert "everything/mssql/everything/SalesDemo.bacpac" in held
        assert not [entry for entry in held if "InventoryDemo" in entry], "skip_databases is honoured"
        verify = playbook("restore.yml", "-e", "restore_verify=true", "-e", "restore_model=everything")
        assert "OK model=everything" in verify.stdout
        drill = playbook("restore.yml", "-e", "restore_drill=true", "-e", "restore_model=everything")
        assert "DRILL PASS model=everything database=SalesDemo" in drill.stdout
        restore = ("-e", "restore_model=everything", "-e", "restore_database=SalesDemo")
        playbook("restore.yml", *restore, "-e", "restore_target_database=SalesFromAll")
        assert sql(stack, RESTORE_SERVER, "SELECT COUNT(*) FROM dbo.Orders", "SalesFromAll") == sql(
            stack, SOURCE, "SELECT COUNT(*) FROM dbo.Orders", "SalesDemo"
        )
        sql(stack, RESTORE_SERVER, "DROP DATABASE SalesFromAll")
        assert "database=SalesDemo" not in run(stack, "backup-coverage")[1]
    finally:
        playbook("deploy.yml")


# --- 4. Alert rules, evaluated by a real Prometheus ------------------------------------


@pytest.fixture
def prometheus(stack, tmp_path) -> Iterator[str]:
    """Debian's Prometheus, scraping the backup container every second and
    evaluating the repository's alert rules; yields its URL."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(REPO / "monitoring" / "alert-rules.yml")],
                "scrape_configs": [
                    {"job_name": "sqlserver-backup", "static_configs": [{"targets": [f"127.0.0.1:{METRICS_PORT}"]}]}
                ],
            }
        )
    )
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: bool(prometheus_query(url, "up")), "Prometheus scraped the backup container", 60, interval=0.5
        )
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def prometheus_query(url: str, path_or_query: str) -> list:
    with contextlib.suppress(OSError, ValueError):
        if path_or_query.startswith("/"):
            with urllib.request.urlopen(url + path_or_query, timeout=5) as response:  # noqa: S310 - the test's own
                return json.loads(response.read())["data"]["alerts"]
        query = urllib.parse.urlencode({"query": path_or_query})
        with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=5) as response:  # noqa: S310
            return json.loads(response.read())["data"]["result"]
    return []


def firing(url: str) -> set[tuple[str, str]]:
    return {
        (alert["labels"]["alertname"], alert["labels"].get("database", ""))
        for alert in prometheus_query(url, "/api/v1/alerts")
        if alert["state"] == "firing"
    }


def test_the_alert_rules_fire_for_an_uncovered_database_and_a_broken_drill_only(
    stack, bucket, proven, archive, prometheus: str, payroll: str
) -> None:
    sql(stack, SOURCE, "DROP DATABASE Payroll")  # created by the fixture: all is well first
    assert run(stack, "backup-coverage")[0] == 0
    time.sleep(5)  # several scrapes and evaluations
    assert firing(prometheus) == set(), "silent when all is well"

    sql(stack, SOURCE, "CREATE DATABASE Payroll")
    run(stack, "backup-coverage")
    broken = damaged_import_archive(bucket, archive["sales"]) if USES_STANDINS else b"not an archive"
    with newest(bucket, "sales", ".tar", broken):
        assert run(stack, "backup-restore", "--model", "sales", "--drill")[0] == 1
    wait_until(
        lambda: {("DatabaseUncovered", "Payroll"), ("RestoreDrillFailed", "SalesDemo")} <= firing(prometheus),
        "both alerts fire",
        60,
        interval=0.5,
    )
    assert {name for name, _ in firing(prometheus)} == {"DatabaseUncovered", "RestoreDrillFailed"}
    playbook("restore.yml", "-e", "restore_drill=true", "-e", "restore_model=sales")
