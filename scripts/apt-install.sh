#!/usr/bin/env bash
# Installs the Debian packages given that are not installed yet, as root or through sudo; the
# project's install scripts share it.
#
#   scripts/apt-install.sh NAME HINT PKG...
#
# NAME prefixes messages; HINT says what to do on a machine without apt-get. Exits 0 when every
# package is (now) installed.
set -euo pipefail
name=$1 hint=$2
shift 2
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "$* installed"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "$name: no apt-get here; $hint" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=
elif command -v sudo >/dev/null; then
  sudo=sudo
else
  echo "$name: installing ${missing[*]} needs root, and sudo is not available; run as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
