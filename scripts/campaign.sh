#!/usr/bin/env bash
# Start or resume the background training campaign (docs/training.md, *The campaign*) with its current settings:
#
#   mkdir -p ~/clc-runs/campaign
#   nohup scripts/campaign.sh 150 >> ~/clc-runs/campaign/stdout.log 2>&1 &    # 150 minutes, then a checkpoint
#   THREADS=1 scripts/campaign.sh 60                                          # one core left for other work
#
# The run folder lives outside the work tree (CAMPAIGN_DIR, default ~/clc-runs/campaign) so that it survives
# between sessions; `clc train` resumes it exactly from its last.pt, or starts from the shipped weights when the
# folder is new. The data folder (CAMPAIGN_DATA, default ~/clc-runs/data) holds links to the training photos of
# ../shared/data/train and train_extra, made here when missing (never Kodak, never the collections). SIGTERM or
# Ctrl-C stops after the current step with a checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES=${1:?usage: scripts/campaign.sh MINUTES}
PYTHON=${PYTHON:-.venv/bin/python}
DIR=${CAMPAIGN_DIR:-$HOME/clc-runs/campaign}
DATA=${CAMPAIGN_DATA:-$HOME/clc-runs/data}
SHARED=${SHARED:-$(cd .. && pwd)/shared}

if [[ ! -d "$DATA" ]]; then
    mkdir -p "$DATA"
    for f in "$SHARED"/data/train/* "$SHARED"/data/train_extra/*; do
        case "$f" in *.md) ;; *) ln -sf "$f" "$DATA/" ;; esac
    done
fi

# constant lr 1.5e-5 (the step schedule drops it 10x at 0.9 x --steps: keep --steps far ahead of the run)
OMP_NUM_THREADS=${THREADS:-2} exec "$PYTHON" -m clccodec train "$DATA" --out "$DIR" \
    --init src/clccodec/shipped/clc-full.pt --steps 400000 --crop 256 --batch 2 --lr 1.5e-5 --ema 0.999 \
    --p-related 0.3 --p-overlap 0.3 --null-prior --q-balance 0.5 --val-every 1000 --refresh-every 2000 --compile \
    --downscale-glob 'sunhays80*' \
    --max-minutes "$MINUTES"
