#!/usr/bin/env bash
# Installs the datasets Glimpse reads from system folders: Debian's dataset-fashion-mnist, which
# puts the four gzip-compressed idx files in /usr/share/datasets/fashion-mnist (openDataset's
# 'fashion-mnist'). The scenes dataset is built in and needs nothing.
set -euo pipefail
"$(dirname "$0")/apt-install.sh" install-datasets \
  "download Fashion-MNIST's idx files (train-images-idx3-ubyte.gz, ...) into a folder and pass it as the dataset's root" \
  dataset-fashion-mnist
ls /usr/share/datasets/fashion-mnist
