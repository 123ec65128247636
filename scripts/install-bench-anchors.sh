#!/usr/bin/env bash
# Installs what the benchmarks measure Glimpse against in the same run (never needed by the
# library, its tests or CI): Debian's PyTorch 1.13 with OpenBLAS. Without libopenblas0-pthread,
# Debian's torch falls back to the reference BLAS (~6 GFLOP/s) and the anchor means nothing.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-torch libopenblas0-pthread
/usr/bin/python3 -c 'import torch; print("torch", torch.__version__, "threads", torch.get_num_threads())'
