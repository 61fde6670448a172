"""image/backupcfg.py: its reading of a config must match GoBackup's (Go's
os.Expand, checked against the real Go function), and its rules must stop the
mistakes GoBackup makes silently."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "image"))
import backupcfg

EXPANSION_CASES = [
    "plain text",
    "${A} and $A",
    "${A:-fallback}",
    "$",
    "trailing $",
    "$$ and $1 and $@x",
    "${} eaten",
    "${unterminated",
    "$A_B-c",
    "${A}${B}",
    "p@ss:w0rd#1",
    "a$Bc d",
]


@pytest.mark.parametrize("text", EXPANSION_CASES)
def test_expansion_matches_go(standin_bin: Path, text: str) -> None:
    environment = {"A": "alpha", "B": "beta", "A_B": "ab", "Bc": "bc"}
    result = subprocess.run(
        [str(standin_bin / "goexpand"), text], env=environment, capture_output=True, text=True, check=True
    )
    assert backupcfg.go_expand(text, lambda name: environment.get(name, "")) == json.loads(result.stdout)[0]


# Expressions for schedule.cron, valid and not, compared with robfig/cron v3
# called the way gocron v1.18.0 calls it (tests/standins/cmd/cronref).
CRON_CORPUS = [
    "0 2 * * *",
    "*/15 * * * *",
    "30 1 * * 1-5",
    "0 0 1 * *",
    "0 0 1 1 *",
    "5 4 * * sun",
    "0 22 * * MON-fri",
    "0 3 * jan,JUL *",
    "0 3 1 Feb *",
    "0 6 * * Sat,sun",
    "0 12 ? * *",
    "0 12 * * ?",
    "0 12 ? ? ?",
    "*/0 * * * *",
    "0 0 * * 7",
    "0 0 * * 0-7",
    "0 0 * * 6",
    "5-3 * * * *",
    "0 0 L * *",
    "0 0 * * 1#2",
    "0 0 * * 5L",
    "0 0 15W * *",
    "",
    " ",
    "0 2 * * * *",
    "0 0 2 * * *",
    "0 2 * *",
    "0 2 * * * * *",
    "60 * * * *",
    "0 24 * * *",
    "0 0 0 * *",
    "0 0 32 * *",
    "0 0 * 0 *",
    "0 0 * 13 *",
    "-1 * * * *",
    "+5 * * * *",
    "05 02 * * *",
    "0 2 * * 1,3,5",
    "0 2 1,15 * *",
    "0 2 1-7 * 1",
    "0 2 * * 1",
    "0 2 13 * 5",
    "0 2 */1 * 1",
    "0 2 1-31 * 1",
    "0 2 * * */1",
    "0 2 * * 1/2",
    "5/10 * * * *",
    "0-59/20 * * * *",
    "*/7 */5 * * *",
    "1,,2 * * * *",
    "0 , * * *",
    "*-5 * * * *",
    "?/30 * * * *",
    "1-2-3 * * * *",
    "1/2/3 * * * *",
    "0 2 * * mon-sun",
    "0 2 * * sun-sat",
    "0 2 * * sat-sun",
    "0 2 * * monday",
    "0 2 * dec-jan *",
    "0 2 * january *",
    "0 2 31 2 *",
    "0 2 30 2 *",
    "0 2 29 2 *",
    "0 2 31 * *",
    "30 2 * * *",
    "30 1 * * *",
    "0 3 * * *",
    "* * * * *",
    "0 0 * * *",
    "0\t2 * *\t*",
    "  0 2 * * *  ",
    "0 2 * * *\t",
    "a * * * *",
    "0x10 * * * *",
    "1.5 * * * *",
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
    "@Daily",
    "@reboot",
    "@every 1h",
    "@every 90s",
    "@every 1day",
    "@every 1h30m",
    "@every 1.5h",
    "@every 500ms",
    "@every 0",
    "@every -1h",
    "@every",
    "@every ",
    "@every  1h",
    "@every 1H",
    "@every 2h ",
    "@every 1\u00b5s",
    "@every 10000000000h",
    "TZ=UTC 0 2 * * *",
    "CRON_TZ=UTC 0 2 * * *",
    "TZ=Europe/Berlin 0 2 * * *",
    "CRON_TZ=America/New_York 30 2 * * *",
    "TZ=Australia/Lord_Howe 15 2 * * *",
    "TZ=Local 0 2 * * *",
    "TZ= 0 2 * * *",
    "TZ=UTC",
    "TZ=UTC @daily",
    "CRON_TZ=Asia/Tokyo @every 1h",
    "TZ=Mars/Olympus 0 2 * * *",
    "TZ=../etc/passwd 0 2 * * *",
    "TZ=/etc/localtime 0 2 * * *",
    "TZ=Europe 0 2 * * *",
    "tz=UTC 0 2 * * *",
    " TZ=UTC 0 2 * * *",
    "TZ=UTC  0 2 * * *",
    "CRON_TZ=Local @hourly",
]
CRON_STARTS = ["2026-03-28T21:17:42.5Z", "2026-10-24T23:59:59Z", "2027-12-31T23:00:00Z"]
CRON_ZONES = ["Europe/Berlin", "UTC", "America/New_York", "Australia/Lord_Howe"]


@pytest.fixture(scope="session")
def cronref(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """robfig/cron v3 as gocron calls it, built from tests/standins/cmd/cronref."""
    binary = tmp_path_factory.mktemp("cronref") / "cronref"
    subprocess.run(
        ["go", "build", "-o", str(binary), "./cmd/cronref"],
        cwd=REPO / "tests" / "standins",
        env={**os.environ, "CGO_ENABLED": "0"},
        check=True,
        capture_output=True,
    )
    return binary


def python_cron(expression: str, start: datetime.datetime, count: int = 5) -> dict:
    try:
        schedule = backupcfg.parse_cron(expression)
    except backupcfg.CronError:
        return {"expr": expression, "ok": False, "next": []}
    times, at = [], start
    for _ in range(count):
        at = schedule.next(at)
        if at is None:
            break
        times.append(at.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return {"expr": expression, "ok": True, "next": times}


@pytest.mark.parametrize("zone", CRON_ZONES)
@pytest.mark.parametrize("start", CRON_STARTS)
def test_cron_matches_robfig(cronref: Path, zone: str, start: str) -> None:
    assert len(CRON_CORPUS) >= 100
    result = subprocess.run(
        [str(cronref), "-start", start, "-n", "5"],
        input="".join(f"{expression}\n" for expression in CRON_CORPUS),
        env={"TZ": zone},
        capture_output=True,
        text=True,
        check=True,
    )
    expected = [json.loads(line) for line in result.stdout.splitlines()]
    assert [entry["expr"] for entry in expected] == CRON_CORPUS
    begin = datetime.datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    mismatches = [
        (entry, ours)
        for entry in expected
        if (ours := python_cron(entry["expr"], begin)) != {key: entry[key] for key in ("expr", "ok", "next")}
    ]
    assert not mismatches
    accepted = {entry["expr"] for entry in expected if entry["ok"]}
    # The corpus exercises both sides, including names, '?', descriptors and zones.
    assert {"0 22 * * MON-fri", "0 12 ? * *", "@every 90s", "TZ=Europe/Berlin 0 2 * * *"} <= accepted
    assert not {"*/0 * * * *", "0 0 * * 7", "5-3 * * * *", "@every 1day", "0 2 * * * *", "", "TZ=UTC"} & accepted


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("1h", 3_600_000_000_000),
        ("1h30m", 5_400_000_000_000),
        ("1.5s", 1_500_000_000),
        ("-2m", -120_000_000_000),
        ("0", 0),
        ("+0.5ms", 500_000),
        (".5h", 1_800_000_000_000),
        ("1\u03bcs", 1_000),
    ],
)
def test_go_durations(text: str, nanoseconds: int) -> None:
    assert backupcfg.go_parse_duration(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "1day", "1", "h", ".h", "1h ", " 1h", "1H", "9999999999999999999ns", "+", "1.h."])
def test_go_durations_refused(text: str) -> None:
    with pytest.raises(ValueError, match="time:"):
        backupcfg.go_parse_duration(text)


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
        backupcfg.load(write_config(tmp_path, text), environ if environ is not None else {"SALES_PASSWORD": "S3cret"})
    except backupcfg.ConfigError as error:
        return error.reasons
    return []


def test_a_valid_config_passes(tmp_path: Path) -> None:
    assert reasons_for(tmp_path, VALID) == []


def test_dotenv_beside_the_config_supplies_secrets(tmp_path: Path) -> None:
    config = write_config(tmp_path, VALID, dotenv="SALES_PASSWORD='Fr0mDotenv'\n")
    document, _ = backupcfg.load(config, {})
    assert document["models"]["sales"]["databases"]["sales"]["password"] == "Fr0mDotenv"


def test_the_environment_wins_over_dotenv(tmp_path: Path) -> None:
    config = write_config(tmp_path, VALID, dotenv="SALES_PASSWORD=fromfile\n")
    document, _ = backupcfg.load(config, {"SALES_PASSWORD": "fromenv"})
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
    document, _ = backupcfg.load(config, {})
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
    document, _ = backupcfg.load(write_config(tmp_path, VALID), {"SALES_PASSWORD": "x"})
    assert list(backupcfg.endpoints(document)) == [
        ("SQL Server sales", "sales", "sql1", 1433),
        ("storage minio (backups)", "sales", "minio", 9000),
    ]


# What godotenv v1.4.0's Parse returned for these lines (checked against the
# module itself; GoBackup loads .env with it).
DOTENV_CASES = [
    ("K='a#b'\n", {"K": "a#b"}),
    ("K=a#b\n", {"K": "a"}),
    ("K=a #b\n", {"K": "a"}),
    ('K="a\\nb"\n', {"K": "a\nb"}),
    ('K="a\\"b"\n', {"K": 'a"b'}),
    ("export K=v\n", {"K": "v"}),
    ("K: v\n", {"K": "v"}),
    ("K='$OTHER'\n", {"K": "$OTHER"}),
    ("OTHER=x\nK=${OTHER}y\n", {"K": "xy", "OTHER": "x"}),
    ('K="$OTHER"\n', {"K": ""}),
    ("K=\\$X\n", {"K": "$X"}),
    ("K='it's'\n", {"K": "it's"}),
    ("K='a\"#b'\n", {"K": 'a"#b'}),
    ("  K  =  v  \n", {"K": "v"}),
    ("K='\n", {"K": "'"}),
    ("K='a\\nb'\n", {"K": "a\\nb"}),
    ("K=a'b#c'\n", {"K": "a'b#c'"}),
    ("K=v\r\n", {"K": "v"}),
    ("K='a'b'#c'\n", {"K": "a'b'#c"}),
    ("K=\t'v'\n", {"K": "\t'v'"}),
    ("K=$lower\n", {"K": "$lower"}),
    ('K="#x" # c\n', {"K": "#x"}),
]


@pytest.mark.parametrize(("text", "values"), DOTENV_CASES)
def test_dotenv_reads_like_godotenv(text: str, values: dict[str, str]) -> None:
    assert backupcfg.parse_dotenv_text(text) == values


def run_backupcfg(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "image" / "backupcfg.py"), *arguments],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"], **(env or {})},
    )


def test_secret_variables_are_listed_once() -> None:
    result = run_backupcfg("secret-variables")
    assert result.returncode == 0
    assert result.stdout.split() == [
        "MSSQL_PASSWORD",
        "MINIO_ACCESS_KEY",
        "MINIO_SECRET_KEY",
        "RESTORE_MSSQL_PASSWORD",
        "NOTIFY_WEBHOOK_URL",
        "NOTIFY_WEBHOOK_HEADERS",
        "NOTIFY_SLACK_URL",
        "NOTIFY_SMTP_USERNAME",
        "NOTIFY_SMTP_PASSWORD",
    ]


def test_only_secret_variables_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("Fr0mFile\n")
    (tmp_path / "ca.pem").write_text("certificate\n")
    resolved = backupcfg.resolve_file_env(
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
    result = run_backupcfg("workdir", str(config))
    assert (result.returncode, result.stdout) == (0, f"{work}\n")


def test_workdir_unset_is_an_error(tmp_path: Path) -> None:
    result = run_backupcfg("workdir", str(write_config(tmp_path, VALID.replace("workdir: /tmp/gobackup\n", ""))))
    assert result.returncode == 1
    assert "workdir is not set" in result.stderr
    assert result.stdout == ""


def test_running_jobs_and_clean_temp(workdir_config: tuple[Path, Path]) -> None:
    config, work = workdir_config
    assert run_backupcfg("running-jobs", str(config)).stdout == ""
    (work / "1764000000000000001" / "sales" / "mssql" / "sales").mkdir(parents=True)
    (work / "1764000000000000002" / "hr").mkdir(parents=True)
    result = run_backupcfg("running-jobs", str(config))
    assert (result.returncode, result.stdout) == (0, "sales\nhr\n")
    result = run_backupcfg("clean-temp", str(config))
    assert result.returncode == 0
    assert result.stdout == f"{work / '1764000000000000001'}\tsales\n{work / '1764000000000000002'}\thr\n"
    assert sorted(entry.name for entry in work.iterdir()) == ["12ab", "local", "notes"]
    assert (work / "local" / "sales").is_dir()
    assert run_backupcfg("clean-temp", str(config)).stdout == ""


CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIBextra\n-----END CERTIFICATE-----\n"


def test_ca_bundle_appends_extra_certificates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "base.crt").write_text("base bundle\n")
    (tmp_path / "extra.pem").write_text(CERTIFICATE)
    env = {
        "GOBACKUP_STATE_DIR": str(tmp_path / "state"),
        "SSL_CERT_FILE": str(tmp_path / "base.crt"),
        "EXTRA_CA_CERTS": str(tmp_path / "extra.pem"),
    }
    result = run_backupcfg("ca-bundle", env=env)
    output = tmp_path / "state" / "ca-certificates.crt"
    assert (result.returncode, result.stdout) == (0, f"{output}\n")
    assert output.read_text() == "base bundle\n" + CERTIFICATE
    # Again with SSL_CERT_FILE already pointing at the output (a docker exec
    # in the running container): the base is the system bundle, not the output.
    (tmp_path / "system.crt").write_text("system bundle\n")
    monkeypatch.setattr(backupcfg, "DEFAULT_CA_BUNDLE", tmp_path / "system.crt")
    again = backupcfg.environment_with_ca({**env, "SSL_CERT_FILE": str(output), "OTHER": "kept"})
    assert again == {**env, "SSL_CERT_FILE": str(output), "OTHER": "kept"}
    assert output.read_text() == "system bundle\n" + CERTIFICATE


@pytest.mark.parametrize(("content", "exists"), [(None, False), ("no certificate here\n", True)])
def test_ca_bundle_refuses_a_missing_or_empty_file(tmp_path: Path, content: str | None, exists: bool) -> None:
    if exists:
        (tmp_path / "extra.pem").write_text(content)
    result = run_backupcfg(
        "ca-bundle", env={"GOBACKUP_STATE_DIR": str(tmp_path), "EXTRA_CA_CERTS": str(tmp_path / "extra.pem")}
    )
    assert result.returncode == 1
    assert "EXTRA_CA_CERTS" in result.stderr
    assert result.stdout == ""


def test_ca_bundle_without_extra_certificates_prints_nothing(tmp_path: Path) -> None:
    result = run_backupcfg("ca-bundle", env={"GOBACKUP_STATE_DIR": str(tmp_path)})
    assert (result.returncode, result.stdout) == (0, "")
    assert not (tmp_path / "ca-certificates.crt").exists()


def test_filter_returns_the_checker_reasons_naming_ansible_variables() -> None:
    problems = backupcfg.FilterModule().filters()["gobackup_config_problems"]
    text = VALID.replace("${SALES_PASSWORD}", "'${MSSQL_PASSWORD_SALES}'")
    assert problems(text, {"MSSQL_PASSWORD_SALES": "#Fine-when-quoted1"}) == []
    sources = {"MSSQL_PASSWORD_SALES": "backup_config_databases[0].password (sales)"}
    [reason] = problems(text, {"MSSQL_PASSWORD_SALES": "CHANGE_ME"}, sources)
    assert reason.startswith("MSSQL_PASSWORD_SALES (set by backup_config_databases[0].password (sales))")
    reasons = problems(text.replace("cron:", "corn:"), {"MSSQL_PASSWORD_SALES": "x\ny"}, sources)
    assert any("cannot be written to .env" in reason and "backup_config_databases[0]" in reason for reason in reasons)


def test_ansible_loads_the_filter_through_the_role(tmp_path: Path) -> None:
    """The role reaches the checker through filter_plugins/backupcfg.py."""
    link = REPO / "roles" / "backup_config" / "filter_plugins" / "backupcfg.py"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "image" / "backupcfg.py").resolve()
    (tmp_path / "gobackup.yml").write_text(VALID.replace("cron:", "corn:"))
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"{{ lookup('ansible.builtin.file', 'gobackup.yml')"
        " | gobackup_config_problems({'SALES_PASSWORD': 'x'}, {'SALES_PASSWORD': 'vault_x'}) }}\"\n"
    )
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "ANSIBLE_FILTER_PLUGINS": str(link.parent), "ANSIBLE_NOCOLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "schedule key 'corn' is unknown to GoBackup" in result.stdout
