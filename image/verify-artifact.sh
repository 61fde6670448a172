#!/usr/bin/env bash
# verify-artifact NAME FILE [SHA256]: stops the build naming the artifact when
# FILE does not match SHA256. An empty SHA256 skips the check (the backup_image
# role refuses that unless told to build from an unverified artifact).
set -Eeuo pipefail

name="$1" file="$2" expected="${3:-}"
if [[ ! -s "${file}" ]]; then
  printf 'artifact %s: %s is missing or empty\n' "${name}" "${file}" >&2
  exit 1
fi
if [[ -z "${expected}" ]]; then
  printf 'artifact %s: no sha256 given, not verified\n' "${name}" >&2
  exit 0
fi
actual="$(sha256sum "${file}" | cut -d' ' -f1)"
if [[ "${actual}" != "${expected,,}" ]]; then
  printf 'artifact %s: sha256 mismatch for %s: expected %s, got %s\n' \
    "${name}" "${file}" "${expected}" "${actual}" >&2
  exit 1
fi
printf 'artifact %s: sha256 verified\n' "${name}" >&2
