#!/usr/bin/env bash
# Installs Open MPI from Debian (openmpi-bin: mpirun; libopenmpi-dev: mpi.h, mpicc), which the
# optional MPI addon (binding.gyp's glimpse_mpi) is built against and src/dist runs on. Without it
# `npm install` still builds the core addon, and only the distributed layer is unavailable. After
# installing, rebuild the addons: npm rebuild (or npx node-gyp rebuild).
set -euo pipefail
"$(dirname "$0")/apt-install.sh" install-mpi \
  "install Open MPI (or another MPI with mpicc and mpirun) with your system's package manager" \
  openmpi-bin libopenmpi-dev
mpirun --version | head -1
