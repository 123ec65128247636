#!/usr/bin/env bash
# Runs `glimpse parity` on every fixture folder under DIR (a folder holding config.json and
# inputs.safetensors, at any depth) and prints one summary line per folder; the full report of
# each failure goes to stderr. Exits 1 when any fixture fails, 2 on bad usage.
#
#   scripts/dev/run_parity_all.sh DIR [--backend NAME]
#
# GLIMPSE_MAIN overrides the CLI entry (default: dist/src/cli/main.js of this checkout).
set -u -o pipefail

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 DIR [--backend native|reference]" >&2
  exit 2
fi
dir=$1
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
main=${GLIMPSE_MAIN:-$root/dist/src/cli/main.js}
if [ ! -f "$main" ]; then
  echo "$main not found: build first (npm run build) or set GLIMPSE_MAIN" >&2
  exit 2
fi

mapfile -t fixtures < <(find "$dir" -name inputs.safetensors -printf '%h\n' | sort -u)
if [ ${#fixtures[@]} -eq 0 ]; then
  echo "no fixture folders (with inputs.safetensors) under $dir" >&2
  exit 2
fi

failed=0
for f in "${fixtures[@]}"; do
  if [ ! -f "$f/config.json" ]; then
    printf 'FAIL %-50s no config.json\n' "$f"
    failed=$((failed + 1))
    continue
  fi
  # The report's first line reads "parity <family> <arch> on <backend>: n/m ok, loss x[ — k FAILED]".
  if out=$(node "$main" parity "$f" "$@" 2>&1); then
    printf 'ok   %-50s %s\n' "$f" "$(head -n 1 <<<"$out")"
  else
    failed=$((failed + 1))
    printf 'FAIL %-50s %s\n' "$f" "$(head -n 1 <<<"$out")"
    { echo "---- $f"; grep -v '^  ok ' <<<"$out"; } >&2
  fi
done

echo "$(( ${#fixtures[@]} - failed ))/${#fixtures[@]} fixtures pass"
[ "$failed" -eq 0 ]
