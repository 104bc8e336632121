#!/usr/bin/env bash
# Build the shipped default reference dictionary, src/clccodec/shipped/default.clcdict, for the shipped model.
#
# Sources: the redistributable Unsplash subset of the training photos (../shared/data/train/unsplash_*.png,
# see ../shared/data/SOURCES.md). The dictionary is bound to the model it is built with: rebuild it every time
# src/clccodec/shipped/clc-full.pt changes (a mismatched default dictionary is silently not used).
#
#   scripts/build_default_dict.sh                          # the real build (after the final weights exist)
#   MODEL=/tmp/tiny.pt OUT=/tmp/d.clcdict scripts/build_default_dict.sh   # a trial with another model
#
# Environment: DATA (image folder), MODEL, OUT, CLUSTERS, CROP, STRIDE, SEED, DEVICE, PYTHON (the interpreter that
# has clccodec installed). Extra arguments are passed on to `clc build-dict`.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-../shared/data/train}
MODEL=${MODEL:-src/clccodec/shipped/clc-full.pt}   # clccodec.defaults.DEFAULT_MODEL
OUT=${OUT:-src/clccodec/shipped/default.clcdict}   # clccodec.defaults.DEFAULT_DICTIONARY
CLUSTERS=${CLUSTERS:-3000}
CROP=${CROP:-256}
STRIDE=${STRIDE:-128}
SEED=${SEED:-0}
DEVICE=${DEVICE:-auto}
PYTHON=${PYTHON:-python}

LICENSE="Derived from Unsplash photos (https://unsplash.com/license), redistributable under the Unsplash License: \
free to use for commercial and non-commercial purposes, no permission needed; photos may not be sold without \
significant modification or compiled into a similar or competing service. Source files: SqueezeSoftware/test_files \
Unsplash/jpg_original at commit ba32ed75f9788f6004d749bdf6d725975e6dd98c, downscaled (LANCZOS) to 768 px on the short \
side and saved as PNG (see SOURCES.md). This file holds features computed from crops of them (PCA keys and int8 \
latent values), not the photos."

if [ ! -f "$MODEL" ]; then
    echo "build_default_dict: model weights not found: $MODEL (set MODEL=...)" >&2
    exit 4
fi
if ! ls "$DATA"/unsplash_*.png >/dev/null 2>&1; then
    echo "build_default_dict: no unsplash_*.png photos in $DATA (set DATA=...)" >&2
    exit 2
fi

"$PYTHON" -m clccodec build-dict "$DATA" --glob 'unsplash_*.png' -o "$OUT" --model "$MODEL" \
    --clusters "$CLUSTERS" --crop "$CROP" --stride "$STRIDE" --features latent --seed "$SEED" --device "$DEVICE" \
    --license "$LICENSE" --force "$@"
"$PYTHON" -m clccodec info "$OUT"
