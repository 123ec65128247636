#!/usr/bin/env bash
# Development build of the addon into a folder of your choice, without touching build/:
#   scripts/dev-build-native.sh /tmp/mybuild && GLIMPSE_ADDON=/tmp/mybuild/glimpse_native.node node ...
# npm install builds the real one with node-gyp (binding.gyp); flags here mirror it.
set -euo pipefail
out=${1:?usage: dev-build-native.sh OUT_DIR}
mkdir -p "$out"
root=$(cd "$(dirname "$0")/.." && pwd)
inc=$(dirname "$(find /usr/include/node /root/.cache/node-gyp -name node_api.h 2>/dev/null | head -1)")
objs=()
for f in "$root"/native/*.cc; do
  o="$out/$(basename "$f" .cc).o"
  g++ -std=c++17 -O3 -fPIC -fexceptions -fno-math-errno -Wall -Wno-unused-function -pthread -I"$inc" -c "$f" -o "$o" &
  objs+=("$o")
done
wait
g++ -shared -pthread "${objs[@]}" -o "$out/glimpse_native.node"
