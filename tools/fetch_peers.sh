#!/usr/bin/env bash
# Fetch the peer baseline that tools/gpu_figures.sh times beside admtune's CIFAR-10 run: the
# airbench package (Keller Jordan's CIFAR-10 speed baselines, MIT; PyPI has only its 12 KB source
# archive, pure Python, no declared dependencies; it imports torch and torchvision). The GPU machine
# has no network, so run this where PyPI is reachable; it leaves
#
#   .peers/airbench/           the package (put on PYTHONPATH by gpu_figures.sh)
#   .peers/airbench.version    its version
#
# .peers/ is ignored by git: hand it to the GPU machine with the tree (the device tool: carry
# [".peers"]). The archive's SHA-256 is checked.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-.peers}
VERSION=0.1.8
SHA256=f85885d8afe9018b8da132a4224ad7b47d75c9f99fd985d0a687567a25cf4a33
PY=${PYTHON:-python3}
ARCHIVE="$PEERS/dl/airbench-$VERSION.tar.gz"
mkdir -p "$PEERS/dl"
if [ ! -f "$ARCHIVE" ]; then
  "$PY" -m pip download -q --no-deps --no-binary :all: -d "$PEERS/dl" "airbench==$VERSION"
fi
echo "$SHA256  $ARCHIVE" | sha256sum -c --quiet -
rm -rf "$PEERS/airbench" "$PEERS/dl/airbench-$VERSION"
tar --no-same-owner -xzf "$ARCHIVE" -C "$PEERS/dl" "airbench-$VERSION/airbench"
mv "$PEERS/dl/airbench-$VERSION/airbench" "$PEERS/airbench"
rm -rf "$PEERS/dl/airbench-$VERSION"
echo "$VERSION" >"$PEERS/airbench.version"
echo "airbench $VERSION in $PEERS/airbench ($(du -sk "$PEERS/airbench" | cut -f1) KB)"
