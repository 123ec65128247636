#!/usr/bin/env bash
# Installs the English text corpus of MLM pretraining (openTextCorpus's 'debian-descriptions'):
# Debian's package descriptions, the Translation-en index of a release's main component (about
# 60k packages, each a one-line synopsis and a paragraph or more of English prose).
#
#   bash scripts/install-corpus.sh [folder]
#
# The folder defaults to $GLIMPSE_CORPUS_DIR, else /usr/share/datasets/debian-descriptions; the file
# lands there as Translation-en (uncompressed) with SOURCE beside it (where it came from, its hash).
# DEBIAN_MIRROR overrides the mirror (default: the first Debian mirror in apt's sources, else
# deb.debian.org) and DEBIAN_SUITE the release (default bookworm). Nothing is done when the file is
# already there.
set -euo pipefail
dir=${1:-${GLIMPSE_CORPUS_DIR:-/usr/share/datasets/debian-descriptions}}
suite=${DEBIAN_SUITE:-bookworm}
target=$dir/Translation-en
die() { echo "install-corpus: $*" >&2; exit 1; }

if [ -s "$target" ]; then
  echo "$target is installed ($(wc -c <"$target") bytes)"
  exit 0
fi
for tool in curl xz sha256sum; do
  command -v "$tool" >/dev/null || die "needs $tool (apt-get install curl xz-utils coreutils)"
done

# The mirror apt already uses, so a machine behind a local mirror downloads from it: the first
# URIs (deb822 .sources) or deb line (sources.list) that is not the security archive.
mirror_from_apt() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|ftp):/) { if ($i !~ /security/) print $i; break } }' "$f"
  done
}
mirror=${DEBIAN_MIRROR:-$(mirror_from_apt | head -n 1)}
mirror=${mirror:-https://deb.debian.org/debian}
mirror=${mirror%/}

# The folder first: a missing permission should fail before a download, not after. One made here
# is removed again if the install fails, so a failed run leaves nothing behind.
made_dir=
[ -d "$dir" ] || made_dir=1
if ! mkdir -p "$dir" 2>/dev/null || [ ! -w "$dir" ]; then
  die "cannot write to $dir (run as root, or pass a folder you own: bash scripts/install-corpus.sh ~/corpora/debian-descriptions, then open it by path)"
fi
tmp=$(mktemp -d "$dir/.install-corpus.XXXXXX")
cleanup() {
  rm -rf "$tmp"
  if [ -n "$made_dir" ] && [ ! -e "$target" ]; then rmdir "$dir" 2>/dev/null || true; fi
}
trap cleanup EXIT

fetch() { # url file
  curl --fail --silent --show-error --location --retry 2 --connect-timeout 20 -o "$2" "$1" \
    || die "cannot download $1 (offline? set DEBIAN_MIRROR to a reachable Debian mirror)"
}
release_url=$mirror/dists/$suite/InRelease
xz_url=$mirror/dists/$suite/main/i18n/Translation-en.xz
echo "install-corpus: downloading $xz_url"
fetch "$release_url" "$tmp/InRelease"
fetch "$xz_url" "$tmp/Translation-en.xz"

# The signed release file lists the index's SHA-256: check the signature when gpgv and Debian's
# keyring are here, and the download against the hash in any case.
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
if command -v gpgv >/dev/null && [ -r "$keyring" ]; then
  gpgv --keyring "$keyring" "$tmp/InRelease" 2>/dev/null || die "the signature of $release_url does not verify against $keyring"
else
  echo "install-corpus: gpgv or $keyring missing; checking the hash without the release signature" >&2
fi
expected=$(awk '/^SHA256:/ { on = 1; next } /^[^ ]/ { on = 0 } on && $3 == "main/i18n/Translation-en.xz" { print $1; exit }' "$tmp/InRelease")
[ -n "$expected" ] || die "$release_url lists no main/i18n/Translation-en.xz"
actual=$(sha256sum "$tmp/Translation-en.xz" | cut -d' ' -f1)
[ "$actual" = "$expected" ] || die "Translation-en.xz has SHA-256 $actual, but the release file says $expected"

xz -d "$tmp/Translation-en.xz" || die "cannot decompress Translation-en.xz"
{
  echo "url: $xz_url"
  echo "sha256 (xz): $actual"
  echo "downloaded: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$tmp/SOURCE"
mv "$tmp/SOURCE" "$dir/SOURCE"
# Renamed into place last, so an interrupted run never leaves a partial file that looks installed.
mv "$tmp/Translation-en" "$target"
echo "install-corpus: $target ($(wc -c <"$target") bytes, $(grep -c '^Package: ' "$target") descriptions)"
