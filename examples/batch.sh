#!/usr/bin/env bash
# Batch pipeline: compress every PNG/JPEG under a folder in parallel, decode them back, report sizes.
# Usage: examples/batch.sh SRC_DIR [OUT_DIR] [QUALITY]
set -euo pipefail
src=${1:?usage: batch.sh SRC_DIR [OUT_DIR] [QUALITY]}
out=${2:-$(mktemp -d)}
q=${3:-3}
clc=${CLC:-clc}
mkdir -p "$out/clc" "$out/png"

# 2 workers, 4 files per invocation (one model load per invocation); clc exits non-zero if any file fails.
find "$src" -maxdepth 1 -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' \) -print0 |
  xargs -0 -n 4 -P 2 "$clc" encode --quiet --force --quality "$q" -o "$out/clc/"

"$clc" decode --quiet --force "$out"/clc/*.clc -o "$out/png/"

# every byte of every file counts
total=$(cat "$out"/clc/*.clc | wc -c)
echo "$(ls "$out"/clc/*.clc | wc -l) files, $total bytes of .clc in $out/clc, decoded PNGs in $out/png"
