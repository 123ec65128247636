#!/usr/bin/env bash
# Installs what the benchmarks measure Glimpse against in the same run (never needed by the
# library, its tests or CI): Debian's PyTorch 1.13 with OpenBLAS, and mpi4py with numpy for the
# all-reduce bench (bench/allreduce.ts), which drives the Open MPI of scripts/install-mpi.sh.
# Without libopenblas0-pthread, Debian's torch falls back to the reference BLAS (~6 GFLOP/s) and
# the anchor means nothing.
set -euo pipefail
"$(dirname "$0")/apt-install.sh" install-bench-anchors \
  "install PyTorch, mpi4py and numpy for /usr/bin/python3 with your system's package manager" \
  python3-torch libopenblas0-pthread python3-mpi4py python3-numpy
/usr/bin/python3 -c 'import torch; print("torch", torch.__version__, "threads", torch.get_num_threads())'
/usr/bin/python3 -c 'import mpi4py, numpy; print("mpi4py", mpi4py.__version__, "numpy", numpy.__version__)'
