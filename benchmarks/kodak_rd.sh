#!/usr/bin/env bash
# The Kodak rate-distortion numbers quoted in README.md and models/MODEL_CARD.md: RD table (bpp from real .clc
# files, PSNR/MS-SSIM on decoded 8-bit RGB, encode/decode seconds), BD-rates vs VTM and every anchor, classical
# codecs (Pillow JPEG/WebP/AVIF) run live on the same images, and the RD plot, written to OUT/kodak_rd.{json,png,
# txt,md}. OUT is required: benchmarks/results/NAME/ holds the results of release NAME's weights.
#
#   OUT=benchmarks/results/v14 benchmarks/kodak_rd.sh                     # shipped model + dictionary, M = 3
#   REFS=0 OUT=benchmarks/results/v14/norefs benchmarks/kodak_rd.sh --codecs none    # the no-reference ablation
#   MODEL=runs/x/clc.pt DICT=my.clcdict OUT=/tmp/x benchmarks/kodak_rd.sh            # other weights
#   OUT=/tmp/smoke benchmarks/kodak_rd.sh --limit 2                      # smoke run (extra args go to clc eval)
#
# Environment: PYTHON (default python), KODAK (default ../shared/data/kodak), OUT, REFS (default 3), DEVICE
# (default auto), MODEL and DICT (default: the shipped ones).
# Kodak is the TEST set (never trained on, never used for choices): run this to report, never to choose weights
# or settings.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
KODAK=${KODAK:-../shared/data/kodak}
OUT=${OUT:?"set OUT, the results folder (benchmarks/results/NAME for release NAME's weights)"}
REFS=${REFS:-3}
DEVICE=${DEVICE:-auto}
mkdir -p "$OUT"

args=(eval "$KODAK" --quality 1-8 --refs "$REFS" --codecs default --anchors default --device "$DEVICE"
      --json "$OUT/kodak_rd.json" --plot "$OUT/kodak_rd.png" --force)
[[ -n "${MODEL:-}" ]] && args+=(--model "$MODEL")
[[ -n "${DICT:-}" ]] && args+=(--dict "$DICT")
args+=("$@")  # anything else goes to clc eval (e.g. --limit 2 for a smoke run)

COLUMNS=${COLUMNS:-150} "$PYTHON" -m clccodec "${args[@]}" | tee "$OUT/kodak_rd.txt"
"$PYTHON" benchmarks/rd_table.py "$OUT/kodak_rd.json" > "$OUT/kodak_rd.md"
echo "wrote $OUT/kodak_rd.{json,png,txt,md}" >&2
