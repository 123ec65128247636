#!/bin/sh
# Compile and link flags of the MPI that binding.gyp builds the optional glimpse_mpi addon
# against, from Open MPI's compiler wrapper (mpicc --showme). Prints "1" for --available when
# mpicc and mpi.h are usable and "0" otherwise, so that `npm install` builds only the core addon
# on a machine without MPI (scripts/install-mpi.sh installs it). GLIMPSE_NO_MPI=1 skips it too.
case "$1" in
  --available)
    if [ "${GLIMPSE_NO_MPI:-}" != 1 ] && command -v mpicc >/dev/null 2>&1 \
      && mpicc --showme:compile >/dev/null 2>&1 && mpicc --showme:link >/dev/null 2>&1; then
      echo 1
    else
      echo 0
    fi ;;
  --compile) mpicc --showme:compile 2>/dev/null || true ;;
  --link) mpicc --showme:link 2>/dev/null || true ;;
  *) echo "usage: mpi-flags.sh --available|--compile|--link" >&2; exit 2 ;;
esac
