#!/usr/bin/env bash
# Installs the datasets Glimpse reads from system folders: Debian's dataset-fashion-mnist, which
# puts the four gzip-compressed idx files in /usr/share/datasets/fashion-mnist (openDataset's
# 'fashion-mnist'). The scenes dataset is built in and needs nothing.
set -euo pipefail
pkg=dataset-fashion-mnist
dir=/usr/share/datasets/fashion-mnist
if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
  echo "$pkg is installed ($dir)"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-datasets: no apt-get here; download Fashion-MNIST's idx files (train-images-idx3-ubyte.gz, ...) into a folder and pass it as the dataset's root" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=
elif command -v sudo >/dev/null; then
  sudo=sudo
else
  echo "install-datasets: installing $pkg needs root, and sudo is not available; run as root: apt-get install $pkg" >&2
  exit 1
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$pkg"
ls "$dir"
