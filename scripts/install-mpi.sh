#!/usr/bin/env bash
# Installs Open MPI from Debian (openmpi-bin: mpirun; libopenmpi-dev: mpi.h, mpicc), which the
# optional MPI addon (binding.gyp's glimpse_mpi) is built against and src/dist runs on. Without it
# `npm install` still builds the core addon, and only the distributed layer is unavailable. After
# installing, rebuild the addons: npm rebuild (or npx node-gyp rebuild).
set -euo pipefail
pkgs=(openmpi-bin libopenmpi-dev)
missing=()
for pkg in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "${pkgs[*]} are installed ($(command -v mpirun))"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-mpi: no apt-get here; install Open MPI (or another MPI with mpicc and mpirun) with your system's package manager" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=
elif command -v sudo >/dev/null; then
  sudo=sudo
else
  echo "install-mpi: installing ${missing[*]} needs root, and sudo is not available; run as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
mpirun --version | head -1
