#!/usr/bin/env bash
# Candidate weights from a training checkpoint, and everything the decision to ship them needs, in one stage
# folder outside the package (nothing shipped changes until `install`):
#
#   scripts/ship_candidate.sh prepare ~/clc-runs/campaign/best.pt ~/clc-runs/v7-candidate v7
#   scripts/ship_candidate.sh install ~/clc-runs/v7-candidate v7
#
# prepare:
#   1. `clc export-weights` of the checkpoint and the default dictionary for it (build_default_dict.sh);
#   2. in parallel, one single-threaded, niced process per job (five on the 2 cores):
#      * the decision: scripts/validate_weights.py, shipped weights against the candidate (held-out training
#        photos, crops and full size; never Kodak) -> STAGE/validate_NAME.json;
#      * what effort buys with the candidate and with the shipped weights: benchmarks/effort_rd.py, effort 0
#        against EFFORT_TOP (default 9) on 4 held-out photos (the validation split, never Kodak) ->
#        STAGE/effort_held_out.{json,md} and STAGE/effort_held_out_shipped.{json,md}: weights that stop effort
#        paying (as v14 did, unnoticed) are seen before they ship;
#      * the report: both Kodak runs of benchmarks/kodak_rd.sh (M = 3 and M = 0) -> STAGE/kodak, STAGE/norefs.
#        Kodak is the test set: these are started beside the validation only so that the report is ready when
#        the validation has decided; they decide nothing.
# install (after the validation has shown a clear gain):
#   copies the weights and dictionary into src/clccodec/shipped, the results into benchmarks/results/NAME (one folder per release)
#   (kodak_rd.*, norefs/kodak_rd.*, validate.json, kodak_m3_vs_m0.md, effort_held_out.*) and rewrites the compat
#   fixtures. Left by hand: the release line in src/clccodec/model/releases.py, the version, test_release.py's release
#   string and the prose of README.md, models/MODEL_CARD.md and benchmarks/README.md.
#
# Environment: PYTHON (the interpreter with clccodec installed; default .venv/bin/python), NICE (niceness of the
# jobs; default 1, below the training run); for a smoke run of the chain, VALIDATE_ARGS (e.g. --no-full) and
# KODAK_ARGS (e.g. "--limit 1 --quality 2") are passed on to the validation and to both Kodak runs, EFFORT_ARGS
# (e.g. "--limit 1 --quality 2") to both effort runs, whose photos are the held-out ones of TRAIN_DATA (default
# ../shared/data/train).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
NICE=${NICE:-1}
SHIPPED=src/clccodec/shipped  # clccodec.defaults.SHIPPED_DIR
RESULTS=benchmarks/results

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

prepare() {
    local ckpt=$1 stage=$2 name=$3
    [[ -f "$ckpt" ]] || { echo "ship_candidate: checkpoint not found: $ckpt" >&2; exit 4; }
    mkdir -p "$stage"
    cp "$ckpt" "$stage/checkpoint.pt"  # the run goes on and rewrites best.pt: keep what was exported
    "$PYTHON" -m clccodec export-weights "$stage/checkpoint.pt" -o "$stage/clc-full.pt" --force
    MODEL="$stage/clc-full.pt" OUT="$stage/default.clcdict" PYTHON="$PYTHON" scripts/build_default_dict.sh

    export OMP_NUM_THREADS=1
    nice -n "$NICE" "$PYTHON" scripts/validate_weights.py "$SHIPPED/clc-full.pt" "$stage/clc-full.pt" \
        --json "$stage/validate_$name.json" ${VALIDATE_ARGS:-} > "$stage/validate.log" 2>&1 &
    local v=$!
    MODEL="$stage/clc-full.pt" DICT="$stage/default.clcdict" OUT="$stage/kodak" PYTHON="$PYTHON" \
        nice -n "$NICE" benchmarks/kodak_rd.sh ${KODAK_ARGS:-} > "$stage/kodak.log" 2>&1 &
    local k3=$!
    MODEL="$stage/clc-full.pt" DICT="$stage/default.clcdict" OUT="$stage/norefs" REFS=0 PYTHON="$PYTHON" \
        nice -n "$NICE" benchmarks/kodak_rd.sh --codecs none ${KODAK_ARGS:-} > "$stage/norefs.log" 2>&1 &
    local k0=$!
    local effort=(benchmarks/effort_rd.py "${TRAIN_DATA:-../shared/data/train}" --held-out --limit 4
                  --efforts 0 "${EFFORT_TOP:-9}" --quality 1 2.5 4 ${EFFORT_ARGS:-})
    nice -n "$NICE" "$PYTHON" "${effort[@]}" --model "$stage/clc-full.pt" --dict "$stage/default.clcdict" \
        --json "$stage/effort_held_out.json" --md "$stage/effort_held_out.md" > "$stage/effort.log" 2>&1 &
    local e1=$!
    env -u CLC_MODEL -u CLC_DICTIONARY nice -n "$NICE" "$PYTHON" "${effort[@]}" \
        --json "$stage/effort_held_out_shipped.json" \
        --md "$stage/effort_held_out_shipped.md" > "$stage/effort_shipped.log" 2>&1 &
    local e0=$!
    echo "ship_candidate: validation (pid $v), Kodak M=3 / M=0 (pids $k3 $k0) and effort (pids $e1 $e0) running;" \
         "logs in $stage" >&2
    local rc=0
    wait $v || { echo "ship_candidate: validation failed (see $stage/validate.log)" >&2; rc=1; }
    tail -n 20 "$stage/validate.log"
    wait $e1 || { echo "ship_candidate: effort (candidate) failed (see $stage/effort.log)" >&2; rc=1; }
    wait $e0 || { echo "ship_candidate: effort (shipped) failed (see $stage/effort_shipped.log)" >&2; rc=1; }
    echo "ship_candidate: effort with the candidate, then with the shipped weights:" >&2
    grep -H -A4 "^| effort | BD-rate" "$stage/effort_held_out.md" "$stage/effort_held_out_shipped.md" || true
    wait $k3 || { echo "ship_candidate: Kodak M=3 failed (see $stage/kodak.log)" >&2; rc=1; }
    wait $k0 || { echo "ship_candidate: Kodak M=0 failed (see $stage/norefs.log)" >&2; rc=1; }
    return $rc
}

install() {
    local stage=$1 name=$2
    for f in clc-full.pt default.clcdict "validate_$name.json" kodak/kodak_rd.json norefs/kodak_rd.json \
             effort_held_out.json; do
        [[ -f "$stage/$f" ]] || { echo "ship_candidate: $stage/$f is missing: run prepare first" >&2; exit 4; }
    done
    cp "$stage/clc-full.pt" "$stage/default.clcdict" "$SHIPPED/"
    local out="$RESULTS/$name"
    mkdir -p "$out/norefs"
    cp "$stage/validate_$name.json" "$out/validate.json"
    cp "$stage"/kodak/kodak_rd.{json,png,txt,md} "$out/"
    cp "$stage"/norefs/kodak_rd.{json,png,txt,md} "$out/norefs/"
    cp "$stage"/effort_held_out.{json,md} "$out/"
    "$PYTHON" benchmarks/rd_table.py "$out/kodak_rd.json" --vs "$out/norefs/kodak_rd.json" > "$out/kodak_m3_vs_m0.md"
    PYTHONPATH=src "$PYTHON" scripts/make_compat_fixtures.py
    "$PYTHON" -m clccodec info "$SHIPPED/default.clcdict" | head -n 5
    echo "ship_candidate: installed $name; now add its line to src/clccodec/model/releases.py, bump the version and" \
         "update test_release.py and the docs" >&2
}

case "${1:-}" in
    prepare) [[ $# -eq 4 ]] || usage; prepare "$2" "$3" "$4" ;;
    install) [[ $# -eq 3 ]] || usage; install "$2" "$3" ;;
    *) usage ;;
esac
