#!/usr/bin/env bash
# Validates the backup container's configuration, then runs GoBackup and, when
# the container is asked to stop, lets a running backup finish first.
# Sourcing this file only defines the functions (for tests); running it acts.
set -Eeuo pipefail

readonly MOUNTED_CONFIG="${GOBACKUP_CONFIG:-/etc/gobackup/gobackup.yml}"
readonly BUNDLED_TEMPLATE="${GOBACKUP_TEMPLATE:-/usr/local/share/gobackup/gobackup.yml.template}"
readonly STATE_DIR="${GOBACKUP_STATE_DIR:-${HOME:-/var/lib/gobackup}}"
readonly BACKUPCFG="${BACKUPCFG:-/usr/local/lib/gobackup-image/backupcfg.py}"
readonly METRICS_EXPORTER="${METRICS_EXPORTER:-/usr/local/bin/backup-metrics}"
readonly BACKUP_CLEANUP="${BACKUP_CLEANUP:-/usr/local/bin/backup-cleanup}"
readonly NOTIFY_RELAY="${NOTIFY_RELAY:-/usr/local/bin/notify-relay}"
readonly PROOF_SCHEDULER="${PROOF_SCHEDULER:-/usr/local/bin/backup-proof-scheduler}"
# Notifiers and after_script run after GoBackup has removed a run's temp
# folder: a stop gives them this many seconds before GoBackup is stopped.
readonly AFTER_RUN_SECONDS=3
# How often a stop that waits says so again.
readonly REPORT_EVERY_SECONDS=30
# A notification relay that stops after this long is started again.
readonly RELAY_MIN_UPTIME_SECONDS=5

log() { printf 'docker-entrypoint: %s\n' "$*" >&2; }
die() {
  printf 'docker-entrypoint: error: %s\n' "$*" >&2
  exit 1
}

# The documented secrets may come from NAME_FILE instead (Docker and Compose
# secrets). Only those: SSL_CERT_FILE and other *_FILE variables are the
# tools' own settings and stay as they are.
load_file_env() {
  local names var file_var
  names="$(python3 "${BACKUPCFG}" secret-variables)" || die "cannot list the secret variables (${BACKUPCFG} secret-variables failed)"
  while IFS= read -r var; do
    [[ -n "${var}" ]] || continue
    file_var="${var}_FILE"
    [[ -v "${file_var}" ]] || continue
    [[ -z "${!var:-}" ]] || die "both ${var} and ${file_var} are set; set only one"
    [[ -f "${!file_var}" && -r "${!file_var}" ]] || die "${file_var} names ${!file_var}, which is not a readable file"
    export "${var}=$(<"${!file_var}")"
    unset "${file_var}"
  done <<<"${names}"
}

# The container's own settings, checked by the same rules the backup_stack
# role applies before it deploys (backupcfg.py), against GoBackup's config
# (the metrics may not take GoBackup's port).
validate_settings() {
  python3 "${BACKUPCFG}" settings "$1" || die "the container's settings are not usable (reasons above)"
  : "${RUN_MODE:=daemon}" "${SKIP_HEALTH_CHECK:=false}" "${STOP_GRACE_PERIOD:=3600}"
  STOP_GRACE_PERIOD=$((10#${STOP_GRACE_PERIOD}))
}

# Prints the config GoBackup will use: the mounted one, or the bundled
# template with its ${VAR:-default} references resolved.
select_config() {
  if [[ -f "${MOUNTED_CONFIG}" ]]; then
    log "using mounted configuration ${MOUNTED_CONFIG}"
    printf '%s\n' "${MOUNTED_CONFIG}"
    return 0
  fi
  local rendered="${STATE_DIR}/gobackup.yml"
  python3 "${BACKUPCFG}" render "${BUNDLED_TEMPLATE}" "${rendered}"
  log "no ${MOUNTED_CONFIG} mounted; rendered the bundled template to ${rendered}"
  printf '%s\n' "${rendered}"
}

# An internal CA (EXTRA_CA_CERTS) is trusted through SSL_CERT_FILE, which Go's
# crypto/x509 (GoBackup), OpenSSL (sqlpackage's .NET) and Python all read.
trust_extra_ca() {
  local bundle
  bundle="$(python3 "${BACKUPCFG}" ca-bundle)" || die "EXTRA_CA_CERTS cannot be used (reason above)"
  [[ -n "${bundle}" ]] || return 0
  export SSL_CERT_FILE="${bundle}"
  log "trusting the CA certificates of EXTRA_CA_CERTS as well (bundle ${bundle})"
}

# A run that was killed (a cut-off stop, a crash, SIGKILL) leaves its
# <workdir>/<unix-nanos>/ folder behind; GoBackup never removes it.
clean_temp() {
  local removed path models
  removed="$(python3 "${BACKUPCFG}" clean-temp "$1")" ||
    die "cannot remove the temp folders of interrupted runs (reason above)"
  while IFS=$'\t' read -r path models; do
    [[ -n "${path}" ]] || continue
    log "removed ${path}, left by an interrupted run${models:+ of model ${models//,/, }}"
  done <<<"${removed}"
}

# GoBackup `run` appends all it prints to <GOBACKUP_DIR>/gobackup.log too and
# never rotates it: on the state volume it grows without bound. What it prints
# already reaches docker logs, rotated by the compose file's json-file options,
# so the file becomes a link to /dev/null. (`run` needs a file it can open
# there; /api/log, which streams that file, then shows nothing: read docker logs.)
discard_gobackup_log() {
  local dir="${GOBACKUP_DIR:-${HOME}/.gobackup}"
  local file="${dir}/gobackup.log"
  mkdir -p "${dir}"
  [[ "$(readlink "${file}" || true)" != /dev/null ]] || return 0
  if [[ -f "${file}" && ! -L "${file}" ]]; then
    log "removed ${file} ($(stat -c %s "${file}") bytes), a copy of what docker logs holds; it now links to /dev/null"
  fi
  ln -sfn /dev/null "${file}"
}

check_reachable() {
  local host="$1" port="$2" timeout_seconds="${CONNECT_TIMEOUT:-5}"
  # shellcheck disable=SC2016 # $1 and $2 are expanded by the inner shell
  timeout "${timeout_seconds}" bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "${host}" "${port}" 2>/dev/null
}

# A one-shot run fails fast when an endpoint is down. The scheduler starts
# anyway: its later runs (and a model's local copy, when only MinIO is down)
# work once the endpoint is back, and the health check reports failed runs.
check_connectivity() {
  local config="$1" host port model what failures=0 level=error
  [[ "${RUN_MODE}" == once ]] || level=warning
  while IFS=$'\t' read -r host port model what; do
    if check_reachable "${host}" "${port}"; then
      log "reachable: ${what} of model ${model} at ${host}:${port}"
    else
      log "${level}: cannot reach ${what} of model ${model} at ${host}:${port}"
      failures=$((failures + 1))
    fi
  done < <(python3 "${BACKUPCFG}" endpoints "${config}")
  ((failures > 0)) || return 0
  [[ "${RUN_MODE}" == daemon ]] ||
    die "${failures} endpoint(s) unreachable (set SKIP_HEALTH_CHECK=true to start anyway)"
  log "warning: ${failures} endpoint(s) unreachable; starting the scheduler anyway: backups fail until they are back"
}

# Runs notify-relay, and again whenever it stops after it had been up a while
# (killed, out of memory): without it a failure would reach nobody. One that
# exits at once (its port taken) is not retried: its reason is in the log.
keep_notify_relay_running() {
  local started relay_pid=""
  # stop_notify_relay: the relay goes too.
  trap '[[ -z "${relay_pid}" ]] || { kill -TERM "${relay_pid}" 2>/dev/null; wait "${relay_pid}"; }; exit 0' TERM
  while true; do
    started=${SECONDS}
    BACKUPCFG_DIR="$(dirname "${BACKUPCFG}")" python3 "${NOTIFY_RELAY}" "$1" &
    relay_pid=$!
    wait "${relay_pid}" || true
    if ((SECONDS - started < RELAY_MIN_UPTIME_SECONDS)); then
      log "error: the notification relay stopped within ${RELAY_MIN_UPTIME_SECONDS} s of its start (reason above); notifications are not sent"
      return 1
    fi
    log "warning: the notification relay stopped; starting it again"
  done
}

# GoBackup's notifiers post to notify-relay on the loopback (it removes the
# secrets from what they send): started when the config has notifiers, and
# listening before GoBackup can run a model. It ends with the container.
start_notify_relay() {
  local config="$1" port
  port="$(python3 "${BACKUPCFG}" notify-port "${config}")" || die "cannot read the notifiers of ${config}"
  [[ -n "${port}" ]] || return 0
  keep_notify_relay_running "${config}" &
  RELAY_PID=$!
  local tries
  for ((tries = 0; tries < 100; tries++)); do
    check_reachable 127.0.0.1 "${port}" && return 0
    kill -0 "${RELAY_PID}" 2>/dev/null || die "the notification relay did not start (reason above)"
    sleep 0.1
  done
  die "the notification relay does not listen on 127.0.0.1:${port}"
}

# GoBackup's web server (gin) logs every request to stdout: the health check's
# /status and /metrics requests, every 30 s, would bury the backups' lines in
# docker logs. Drops those probe lines when they succeeded; keeps every other.
drop_probe_lines() {
  LC_ALL=C grep --line-buffered -v -E \
    '^\[GIN\] [^|]*\| 200 \|[^|]*\|[^|]*\| (GET|HEAD) +"/(status|metrics)"$' || true
}

# Graceful stop. GoBackup has no handler for SIGTERM or SIGINT: signalled, it
# dies at once and cuts off a running export, tar or upload. So it runs as a
# child in a process group of its own (tini runs this script without -g, so
# docker stop signals only this script, and a Ctrl-C on a terminal does not
# reach GoBackup), and a stop request waits up to STOP_GRACE_PERIOD seconds for
# the running backups before stopping GoBackup. Docker sends SIGKILL after the
# compose file's stop_grace_period, set a little longer from the same Ansible
# variable: this script must have stopped GoBackup and exited before then, or
# nothing says which backup was cut off.
STOP_REQUESTED=false
GOBACKUP_PID=""
FILTER_PID=""

# A stop reaches the proof scheduler at once: it lets a running drill finish
# (within its bound) while the backups finish.
request_stop() {
  STOP_REQUESTED=true
  [[ -z "${PROOF_PID}" ]] || kill -TERM "${PROOF_PID}" 2>/dev/null || true
}

# Starts GoBackup ("$@") with its stdout through drop_probe_lines. The filter
# ignores INT and TERM: if it died, GoBackup's next line would kill GoBackup.
start_gobackup() {
  local output
  exec {output}> >(
    trap '' INT TERM
    drop_probe_lines
  )
  FILTER_PID=$!
  # setsid execs in place (a child of this shell leads no group), so the pid
  # is GoBackup's and the id of its group (GoBackup, sqlpackage, tar).
  setsid "$@" >&"${output}" &
  GOBACKUP_PID=$!
  exec {output}>&-
}

gobackup_running() { kill -0 "${GOBACKUP_PID}" 2>/dev/null; }

# GoBackup's exit status once it has exited (bash keeps it for a second wait).
gobackup_status() {
  local status=0
  wait "${GOBACKUP_PID}" || status=$?
  return "${status}"
}

# Stops GoBackup and whatever it started, then collects its status.
stop_gobackup() {
  kill -TERM -- "-${GOBACKUP_PID}" 2>/dev/null || true
  local tries
  for ((tries = 0; tries < 50; tries++)); do
    gobackup_running || break
    sleep 0.2
  done
  kill -KILL -- "-${GOBACKUP_PID}" 2>/dev/null || true
  gobackup_status || true
}

# Prints the models with a running backup ("model a" / "models a, b"); nothing
# when idle. GoBackup's temp folders tell, so a `docker exec ... gobackup
# perform` counts too: it is cut off as well when the container stops.
running_models() {
  local output models=()
  output="$(python3 "${BACKUPCFG}" running-jobs "$1")" || {
    log "error: cannot tell which backups are running (reason above)"
    return 0
  }
  mapfile -t models < <(printf '%s\n' "${output}" | sed '/^$/d' | sort -u)
  ((${#models[@]})) || return 0
  local joined
  joined="$(printf '%s, ' "${models[@]}")"
  if ((${#models[@]} == 1)); then
    printf 'model %s\n' "${joined%, }"
  else
    printf 'models %s\n' "${joined%, }"
  fi
}

# Waits, within the grace, for the running backups, then stops GoBackup.
# Returns 0 when nothing was cut off (once mode: perform's own status), 1 when
# a backup was cut off or a one-shot run did not finish, or GoBackup's status
# when it exited by itself meanwhile.
stop_gracefully() {
  local config="$1" deadline=$((SECONDS + STOP_GRACE_PERIOD)) report_at=-1 idle_since=-1 models
  while gobackup_running; do
    models="$(running_models "${config}")"
    if [[ -n "${models}" ]]; then
      idle_since=-1
      if ((SECONDS >= deadline)); then
        log "error: grace of ${STOP_GRACE_PERIOD} s ran out; cutting off ${models}"
        stop_gobackup
        return 1
      fi
      if ((report_at < 0)); then
        log "stop requested; waiting for ${models} to finish (grace ${STOP_GRACE_PERIOD} s)"
        report_at=$((SECONDS + REPORT_EVERY_SECONDS))
      elif ((SECONDS >= report_at)); then
        log "still waiting for ${models} to finish ($((deadline - SECONDS)) s of the grace left)"
        report_at=$((SECONDS + REPORT_EVERY_SECONDS))
      fi
    elif ((report_at < 0)); then
      log "stop requested; no backup is running, stopping GoBackup"
      break
    elif ((idle_since < 0)); then
      idle_since=${SECONDS}
    elif ((SECONDS - idle_since >= AFTER_RUN_SECONDS || SECONDS >= deadline)); then
      log "the backup finished; stopping GoBackup"
      break
    fi
    sleep 1
  done
  if ! gobackup_running; then
    gobackup_status || return $?
    return 0
  fi
  stop_gobackup
  if [[ "${RUN_MODE}" == once ]]; then
    log "error: GoBackup was stopped before it had performed every model"
    return 1
  fi
}

# Runs GoBackup ("$@") until it exits by itself or a stop request is through;
# returns GoBackup's status, or stop_gracefully's. Every line GoBackup printed
# has reached stdout when this returns.
supervise() {
  local config="$1" status=0
  shift
  trap request_stop TERM INT
  start_gobackup "$@"
  # wait returns when GoBackup exits or when a trapped signal comes in.
  [[ "${STOP_REQUESTED}" == true ]] || wait "${GOBACKUP_PID}" || status=$?
  if [[ "${STOP_REQUESTED}" == true ]]; then
    status=0
    stop_gracefully "${config}" || status=$?
  fi
  wait "${FILTER_PID}" || true
  return "${status}"
}

# Prometheus metrics (daemon mode, METRICS_PORT set): backup-metrics serves
# /metrics and nothing else on that port, so GoBackup's web server and its
# /api/* stay on the loopback. It runs beside GoBackup in a group of its own
# (a Ctrl-C reaches neither) and is stopped once GoBackup has been.
METRICS_PID=""
RELAY_PID=""
PROOF_PID=""

start_metrics() {
  [[ -n "${METRICS_PORT:-}" ]] || return 0
  setsid python3 "${METRICS_EXPORTER}" --port "$((10#${METRICS_PORT}))" --config "$1" &
  METRICS_PID=$!
}

# Restore drills and coverage checks on restore.yml's schedules (daemon mode,
# always): backup-proof-scheduler, in a group of its own like the metrics. It
# alerts through the relay, so it stops before the relay does.
start_proof_scheduler() {
  setsid python3 "${PROOF_SCHEDULER}" --config "$1" &
  PROOF_PID=$!
}

stop_proof_scheduler() {
  [[ -n "${PROOF_PID}" ]] || return 0
  kill -TERM "${PROOF_PID}" 2>/dev/null || true
  wait "${PROOF_PID}" 2>/dev/null || true
}

stop_notify_relay() {
  [[ -n "${RELAY_PID}" ]] || return 0
  kill -TERM "${RELAY_PID}" 2>/dev/null || true
  wait "${RELAY_PID}" 2>/dev/null || true
}

stop_metrics() {
  [[ -n "${METRICS_PID}" ]] || return 0
  kill -TERM "${METRICS_PID}" 2>/dev/null || true
  wait "${METRICS_PID}" 2>/dev/null || true
}

main() {
  if (($#)); then
    exec "$@"
  fi
  load_file_env
  local config
  config="$(select_config)"
  validate_settings "${config}"
  python3 "${BACKUPCFG}" check "${config}" || die "configuration ${config} is not usable (reasons above)"
  trust_extra_ca
  printf '%s\n' "${config}" >"${STATE_DIR}/active-config"
  clean_temp "${config}"
  discard_gobackup_log
  if [[ "${SKIP_HEALTH_CHECK}" == false ]]; then
    check_connectivity "${config}"
  fi
  # sqlpackage buffers table data in TMPDIR: on the work-dir volume, not in
  # the container's writable layer.
  local workdir
  workdir="$(python3 "${BACKUPCFG}" workdir "${config}")" || die "cannot read the workdir of ${config}"
  export TMPDIR="${TMPDIR:-${workdir}/tmp}"
  mkdir -p "${TMPDIR}"
  # A run cut off mid-upload (the container killed) leaves its multipart
  # upload in the bucket; none of this host's can be under way now.
  "${BACKUP_CLEANUP}" --config "${config}" --timeout 20 ||
    log "warning: could not clean up interrupted uploads (reason above); backups go on"
  start_notify_relay "${config}"
  local status=0
  if [[ "${RUN_MODE}" == once ]]; then
    log "running every model once"
    supervise "${config}" gobackup perform -c "${config}" || status=$?
    stop_notify_relay
    if ((status != 0)) && [[ "${STOP_REQUESTED}" == false ]]; then
      log "error: the backup failed (exit ${status}); GoBackup's reason is above"
      python3 "${BACKUPCFG}" storages "${config}" | sed 's/^/docker-entrypoint: /' >&2 || true
    fi
    return "${status}"
  fi
  log "starting the GoBackup scheduler (TZ=${TZ:-UTC})"
  start_metrics "${config}"
  start_proof_scheduler "${config}"
  supervise "${config}" gobackup run -c "${config}" || status=$?
  stop_proof_scheduler
  stop_metrics
  stop_notify_relay
  if [[ "${STOP_REQUESTED}" == false ]]; then
    log "error: GoBackup exited by itself (exit ${status}); its reason is above"
    ((status != 0)) || status=1
  fi
  return "${status}"
}

if [[ "${BASH_SOURCE[0]}" == "${0}" ]]; then
  main "$@"
  exit $?
fi
