#!/usr/bin/env bash
# Validates the backup container's configuration, then hands over to GoBackup.
# Sourcing this file only defines the functions (for tests); running it acts.
set -Eeuo pipefail

readonly MOUNTED_CONFIG="${GOBACKUP_CONFIG:-/etc/gobackup/gobackup.yml}"
readonly BUNDLED_TEMPLATE="${GOBACKUP_TEMPLATE:-/usr/local/share/gobackup/gobackup.yml.template}"
readonly STATE_DIR="${GOBACKUP_STATE_DIR:-${HOME:-/var/lib/gobackup}}"
readonly BACKUPCFG="${BACKUPCFG:-/usr/local/lib/gobackup-image/backupcfg.py}"

log() { printf 'docker-entrypoint: %s\n' "$*" >&2; }
die() {
  printf 'docker-entrypoint: error: %s\n' "$*" >&2
  exit 1
}

# Every VAR may come from VAR_FILE instead (Docker and Compose secrets).
load_file_env() {
  local file_var var
  while IFS= read -r file_var; do
    var="${file_var%_FILE}"
    [[ -z "${!var:-}" ]] || die "both ${var} and ${file_var} are set; set only one"
    [[ -r "${!file_var}" ]] || die "${file_var} names ${!file_var}, which is not a readable file"
    export "${var}=$(<"${!file_var}")"
    unset "${file_var}"
  done < <(compgen -e | grep -E '^[A-Za-z_][A-Za-z0-9_]*_FILE$' || true)
}

validate_settings() {
  case "${RUN_MODE:=daemon}" in
    once | daemon) ;;
    *) die "RUN_MODE must be 'once' or 'daemon', not '${RUN_MODE}'" ;;
  esac
  case "${SKIP_HEALTH_CHECK:=false}" in
    true | false) ;;
    *) die "SKIP_HEALTH_CHECK must be 'true' or 'false', not '${SKIP_HEALTH_CHECK}'" ;;
  esac
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

check_reachable() {
  local host="$1" port="$2" timeout_seconds="${CONNECT_TIMEOUT:-5}"
  # shellcheck disable=SC2016 # $1 and $2 are expanded by the inner shell
  timeout "${timeout_seconds}" bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "${host}" "${port}" 2>/dev/null
}

check_connectivity() {
  local config="$1" host port model what failures=0
  while IFS=$'\t' read -r host port model what; do
    if check_reachable "${host}" "${port}"; then
      log "reachable: ${what} of model ${model} at ${host}:${port}"
    else
      log "error: cannot reach ${what} of model ${model} at ${host}:${port}"
      failures=$((failures + 1))
    fi
  done < <(python3 "${BACKUPCFG}" endpoints "${config}")
  ((failures == 0)) || die "${failures} endpoint(s) unreachable (set SKIP_HEALTH_CHECK=true to start anyway)"
}

main() {
  if (($#)); then
    exec "$@"
  fi
  load_file_env
  validate_settings
  local config
  config="$(select_config)"
  python3 "${BACKUPCFG}" check "${config}" || die "configuration ${config} is not usable (reasons above)"
  printf '%s\n' "${config}" >"${STATE_DIR}/active-config"
  if [[ "${SKIP_HEALTH_CHECK}" == false ]]; then
    check_connectivity "${config}"
  fi
  # GoBackup's `run` exits when it cannot open its log file in this folder.
  mkdir -p "${GOBACKUP_DIR:-${HOME}/.gobackup}"
  export TMPDIR="${TMPDIR:-/tmp/gobackup/tmp}"
  mkdir -p "${TMPDIR}"
  if [[ "${RUN_MODE}" == once ]]; then
    log "running every model once"
    # Not exec'd, to name the storages when it fails; tini -g signals the
    # whole process group, so docker stop still reaches GoBackup.
    local status=0
    gobackup perform -c "${config}" || status=$?
    if ((status != 0)); then
      log "error: the backup failed (exit ${status}); GoBackup's reason is above"
      python3 "${BACKUPCFG}" storages "${config}" | sed 's/^/docker-entrypoint: /' >&2 || true
    fi
    return "${status}"
  fi
  log "starting the GoBackup scheduler (TZ=${TZ:-UTC})"
  exec gobackup run -c "${config}"
}

if [[ "${BASH_SOURCE[0]}" == "${0}" ]]; then
  main "$@"
  exit $?
fi
