#!/usr/bin/env bash
# Installed as /usr/local/bin/openssl, ahead of /usr/bin/openssl on PATH.
# GoBackup v3.1.1 runs `openssl <cipher> ... -k <encrypt_with.password> -in ...`
# and prints that whole command line in its error message when openssl fails,
# so a passphrase given to it would reach the process list, the log and the
# notifiers. The project's configuration gives it `env:<VARIABLE>` instead (a
# .env entry GoBackup loads into its environment): this turns `-k env:<NAME>`
# into openssl's own `-pass env:<NAME>`, which reads the value from the
# environment. Every other command line passes through unchanged.
set -euo pipefail

arguments=()
while (($#)); do
  if [[ "$1" == -k && "${2:-}" == env:* ]]; then
    arguments+=(-pass "$2")
    shift 2
    continue
  fi
  arguments+=("$1")
  shift
done
exec /usr/bin/openssl "${arguments[@]}"
