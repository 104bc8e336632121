#!/usr/bin/env bash
# The prepared GPU training run: ~7 minutes of training on the device machine (one H200), resuming from the
# shipped weights, bf16 + channels_last, batches of 256x256 crops, cosine schedule with warm-up and an EMA of
# the weights; the exported weights come back through $OUT in pieces of at most 15 MiB (the tool returns files
# of at most 16 MiB), with the training log.
#
# Prepare here (once; .gpu/ is git-ignored and travels with `carry`):
#   python scripts/pack_training_photos.py ../shared/data/train ../shared/data/train_extra -o .gpu/photos \
#       --max-side 448 --quality 84 --budget-mb 23
#   pip download --no-deps -d .gpu/whl compressai==1.2.8 pytorch-msssim   (cp312 wheels: see below)
#     .venv/bin/python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_34_x86_64 -d .gpu/whl compressai==1.2.8 && .venv/bin/python -m pip download \
#       --no-deps -d .gpu/whl pytorch-msssim
# Dry run on this CPU (same commands, a few steps of the tiny-batch settings):
#   DRY_RUN=1 PYTHON=.venv/bin/python OUT=/tmp/gpu_out bash scripts/gpu_train.sh
# On the device (the `run` tool): command "bash scripts/gpu_train.sh", carry [".gpu"], timeout_s 560
# Back here: cat <files_at>/clc-full.pt.part-* > runs/gpu/clc-full.pt && sha256sum -c (see clc-full.pt.sha256),
# then compare on the validation split: python scripts/validate_weights.py src/clccodec/shipped/clc-full.pt runs/gpu/clc-full.pt
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT (the device tool sets it)}
PY=${PYTHON:-python3}
MODEL=${MODEL:-src/clccodec/shipped/clc-full.pt}
# the campaign's reference training signal (docs/references.md)
REFS_ARGS=${REFS_ARGS:---p-related 0.3 --p-overlap 0.3 --null-prior}
# the campaign's weighing of the qualities (docs/training.md)
QUALITY_ARGS=${QUALITY_ARGS:---q-balance 0.5}
RUN=${RUN:-/tmp/clc-gpu-run}
if [ -n "${DRY_RUN:-}" ]; then
    STEPS=${STEPS:-3}; BATCH=${BATCH:-2}; CROP=${CROP:-128}; MINUTES=${MINUTES:-2}; VAL=${VAL:-3}; DEVICE=cpu
    AMP=--no-amp
else
    STEPS=${STEPS:-6000}; BATCH=${BATCH:-16}; CROP=${CROP:-256}; MINUTES=${MINUTES:-7}; VAL=${VAL:-1500}
    DEVICE=cuda; AMP=--amp
fi
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .gpu/whl ] && ! "$PY" -c "import compressai" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
mkdir -p "$OUT"
{ nvidia-smi || true; "$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"; } \
    > "$OUT/device.txt" 2>&1
rm -rf "$RUN"
"$PY" -m clccodec train .gpu/photos --out "$RUN" --init "$MODEL" --steps "$STEPS" --batch "$BATCH" --crop "$CROP" \
    --lr 1e-4 --schedule cosine --warmup 200 --ema 0.999 --val-every "$VAL" --max-minutes "$MINUTES" \
    --device "$DEVICE" --downscale-glob 'sunhays80*' $AMP $REFS_ARGS $QUALITY_ARGS 2>&1 | tail -n 400 > "$OUT/train.txt"
cp "$RUN/log.jsonl" "$OUT/log.jsonl"
# best.pt exists once a validation has run; a run stopped by its time limit before the first one (a slower device
# than planned) still brings its last EMA weights back
CKPT="$RUN/best.pt"; [ -f "$CKPT" ] || CKPT="$RUN/last.pt"
echo "exporting $CKPT" >> "$OUT/train.txt"
"$PY" -m clccodec export-weights "$CKPT" -o "$RUN/clc-full.pt" --force >> "$OUT/train.txt" 2>&1
(cd "$RUN" && sha256sum clc-full.pt) > "$OUT/clc-full.pt.sha256"
split -b 15M "$RUN/clc-full.pt" "$OUT/clc-full.pt.part-"
ls -l "$OUT"
