#!/usr/bin/env bash
# The backup container's entrypoint, in the style of the official images:
# secrets from *_FILE, the configuration chosen and checked, then exec. The
# main command, backup-supervisor (no arguments, or options only), runs GoBackup
# and lets a running backup finish when the container stops; it starts on a
# prepared work volume. Any other command runs after the same checks.
# Sourcing this file only defines the functions (for tests); running it acts.
set -Eeuo pipefail

readonly MOUNTED_CONFIG="${GOBACKUP_CONFIG:-/etc/gobackup/gobackup.yml}"
readonly BUNDLED_TEMPLATE="${GOBACKUP_TEMPLATE:-/usr/local/share/gobackup/gobackup.yml.template}"
readonly STATE_DIR="${GOBACKUP_STATE_DIR:-${HOME:-/var/lib/gobackup}}"
# The image's tools: console scripts of the sqlserver_backup package, on PATH.
readonly BACKUP_CONFIG_TOOL=backup-config
readonly BACKUP_CLEANUP=backup-cleanup
readonly SUPERVISOR=backup-supervisor

log() { printf 'docker-entrypoint: %s\n' "$*" >&2; }
die() {
  printf 'docker-entrypoint: error: %s\n' "$*" >&2
  exit 1
}

# usage: file_env VAR
#    VAR from the file VAR_FILE names (Docker and Compose secrets).
file_env() {
  local var="$1" file_var="$1_FILE"
  [[ -v "${file_var}" ]] || return 0
  [[ -z "${!var:-}" ]] || die "both ${var} and ${file_var} are set; set only one"
  [[ -f "${!file_var}" && -r "${!file_var}" ]] || die "${file_var} names ${!file_var}, which is not a readable file"
  export "${var}=$(<"${!file_var}")"
  unset "${file_var}"
}

# The documented secrets only (backup-config secret-variables): SSL_CERT_FILE
# and other *_FILE variables are the tools' own settings and stay as they are.
load_file_env() {
  local names var
  names="$("${BACKUP_CONFIG_TOOL}" secret-variables)" || die "cannot list the secret variables (${BACKUP_CONFIG_TOOL} secret-variables failed)"
  while IFS= read -r var; do
    [[ -n "${var}" ]] || continue
    file_env "${var}"
  done <<<"${names}"
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
  "${BACKUP_CONFIG_TOOL}" render "${BUNDLED_TEMPLATE}" "${rendered}"
  log "no ${MOUNTED_CONFIG} mounted; rendered the bundled template to ${rendered}"
  printf '%s\n' "${rendered}"
}

# The container's own settings, by the rules the backup_stack role applies
# before it deploys (the metrics may not take GoBackup's port), then the
# configuration as GoBackup will read it.
check_config() {
  "${BACKUP_CONFIG_TOOL}" settings "$1" || die "the container's settings are not usable (reasons above)"
  : "${RUN_MODE:=daemon}" "${SKIP_HEALTH_CHECK:=false}"
  "${BACKUP_CONFIG_TOOL}" check "$1" || die "configuration $1 is not usable (reasons above)"
}

# An internal CA (EXTRA_CA_CERTS) is trusted through SSL_CERT_FILE, which Go's
# crypto/x509 (GoBackup), OpenSSL (sqlpackage's .NET) and Python all read.
trust_extra_ca() {
  local bundle
  bundle="$("${BACKUP_CONFIG_TOOL}" ca-bundle)" || die "EXTRA_CA_CERTS cannot be used (reason above)"
  [[ -n "${bundle}" ]] || return 0
  export SSL_CERT_FILE="${bundle}"
  log "trusting the CA certificates of EXTRA_CA_CERTS as well (bundle ${bundle})"
}

# sqlpackage buffers table data in TMPDIR (exports, and imports of restores):
# on the work-dir volume, not in the container's writable layer.
use_work_volume_for_tmp() {
  local workdir
  workdir="$("${BACKUP_CONFIG_TOOL}" workdir "$1")" || die "cannot read the workdir of $1"
  export TMPDIR="${TMPDIR:-${workdir}/tmp}"
  mkdir -p "${TMPDIR}"
}

# A run that was killed (a cut-off stop, a crash, SIGKILL) leaves its
# <workdir>/<unix-nanos>/ folder behind; GoBackup never removes it.
clean_temp() {
  local removed path models
  removed="$("${BACKUP_CONFIG_TOOL}" clean-temp "$1")" ||
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
  done < <("${BACKUP_CONFIG_TOOL}" endpoints "${config}")
  ((failures > 0)) || return 0
  [[ "${RUN_MODE}" == daemon ]] ||
    die "${failures} endpoint(s) unreachable (set SKIP_HEALTH_CHECK=true to start anyway)"
  log "warning: ${failures} endpoint(s) unreachable; starting the scheduler anyway: backups fail until they are back"
}

# Before the backups start: what killed runs left (temp folders, multipart
# uploads in the bucket; none of this host's can be under way now), GoBackup's
# log file, and whether the servers answer. Only for the main command: another
# (a restore in `docker compose run`) may share the volumes with a running
# container, and a restore must not wait for the server it replaces.
prepare_backups() {
  local config="$1"
  clean_temp "${config}"
  discard_gobackup_log
  if [[ "${SKIP_HEALTH_CHECK}" == false ]]; then
    check_connectivity "${config}"
  fi
  "${BACKUP_CLEANUP}" --config "${config}" --timeout 20 ||
    log "warning: could not clean up interrupted uploads (reason above); backups go on"
}

main() {
  # Options only, as in `docker run image --help`, are the main command's.
  if (($# == 0)) || [[ "$1" == -* ]]; then
    set -- "${SUPERVISOR}" "$@"
  fi
  load_file_env
  local config
  config="$(select_config)"
  check_config "${config}"
  trust_extra_ca
  # Which config was checked, for the tools run later with `docker exec`.
  printf '%s\n' "${config}" >"${STATE_DIR}/active-config"
  use_work_volume_for_tmp "${config}"
  if [[ "$1" == "${SUPERVISOR}" ]]; then
    prepare_backups "${config}"
    set -- "$1" --config "${config}" "${@:2}"
  fi
  exec "$@"
}

_is_sourced() { [[ "${BASH_SOURCE[0]}" != "${0}" ]]; }

if ! _is_sourced; then
  main "$@"
fi
