#!/usr/bin/env bash
# Train short versions of Sketch2Anime and every baseline on the 64x64 anime faces (CPU is fine),
# evaluate them all on the held-out validation split with one fixed protocol, and write
# docs/comparison.md (tables + hardware + training budget).
#
#   scripts/compare_baselines.sh                 # configs as written: several hours on 2 CPU cores
#   BUDGET=0.1 scripts/compare_baselines.sh      # a tenth of every config's train.steps
#   IMAGES=8000 BUDGET=0.05 scripts/compare_baselines.sh   # every image model sees 8000 training images
#
# Re-running resumes: finished runs are not trained again (`train --resume`), the prepared data is
# reused. Environment (all optional):
#   BUDGET            factor on each config's train.steps (default 1)
#   IMAGES            training images each image model sees (steps = IMAGES / its batch size), the same
#                     budget for all; BUDGET then scales only the autoencoder (stage 1 of Sketch2Anime)
#   SRC               source images (default: the shared anime-faces-64 folder)
#   DATA              prepared dataset folder (default datasets/faces64)
#   PREPARE_LIMIT     prepare only the first N source images (default: all)
#   RUNS              folder for the runs (default runs/compare)
#   EVAL_OUT          evaluation output (default $RUNS/eval)
#   EVAL_LIMIT        evaluate only the first N validation images (default: all of them)
#   FID               auto | hed-vgg | inception | none (default auto; see sketch2anime evaluate --help)
#   FID_CONDITIONS    sketch conditions that get FID/KID (default none = clean only; "" = all)
#   FID_SIZE          input side of the HED-VGG features (default 256; 128 is ~3x faster on a CPU)
#   INCEPTION_WEIGHTS pt_inception-2015-12-05-6726825d.pth for the standard FID
#   PAIRS             real line-art pairs (sketch/ + color/) scored as a separate set (default: the shared
#                     sketch-pairs folder when present; "none" skips them)
#   STYLE_LIMIT       images for the style-transfer comparison (default 32; 0 skips it)
#   STYLE_STEPS       optimisation steps of the style transfer (default 100)
#   TRAIN_SET         extra "section.key=value" overrides for every training run (space separated)
#   DEVICE            auto | cpu | cuda (default auto)
#   DOC               output page (default docs/comparison.md)
#   PYTHON            interpreter with sketch2anime installed (default python)
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
BUDGET=${BUDGET:-1}
SRC=${SRC:-}
if [[ -z "$SRC" ]]; then
    for candidate in ../shared/data/anime-faces-64 /work/shared/data/anime-faces-64; do
        [[ -d "$candidate" ]] && SRC=$candidate && break
    done
fi
DATA=${DATA:-datasets/faces64}
RUNS=${RUNS:-runs/compare}
EVAL_OUT=${EVAL_OUT:-$RUNS/eval}
FID=${FID:-auto}
FID_CONDITIONS=${FID_CONDITIONS-none}
STYLE_LIMIT=${STYLE_LIMIT:-32}
STYLE_STEPS=${STYLE_STEPS:-100}
DEVICE=${DEVICE:-auto}
DOC=${DOC:-docs/comparison.md}
S2A=("$PYTHON" -m sketch2anime.cli)

say() { printf '\n== %s\n' "$*" >&2; }

# ---- data ---------------------------------------------------------------------------------
if [[ ! -f "$DATA/manifest.jsonl" ]]; then
    [[ -n "$SRC" && -d "$SRC" ]] || { echo "no source images: set SRC to the anime-faces-64 folder" >&2; exit 2; }
    say "prepare $SRC -> $DATA"
    "${S2A[@]}" prepare "$SRC" "$DATA" --size 64 --extractor detail,xdog --val-fraction 0.05 --seed 0 \
        ${PREPARE_LIMIT:+--limit "$PREPARE_LIMIT"} --no-progress
fi

# ---- training -----------------------------------------------------------------------------
mkdir -p "$RUNS"
BUDGET_FILE="$RUNS/budget.jsonl"
: > "$BUDGET_FILE"

scaled_steps() {  # CONFIG [IMAGES] -> ceil(IMAGES / batch size), else max(1, round(train.steps * BUDGET))
    "$PYTHON" - "$1" "$BUDGET" "${2:-}" <<'EOF'
import math, sys, tomllib
config = tomllib.load(open(sys.argv[1], "rb"))
if sys.argv[3]:
    print(max(1, math.ceil(int(sys.argv[3]) / config.get("data", {}).get("batch_size", 16))))
else:
    print(max(1, round(config.get("train", {}).get("steps", 1000) * float(sys.argv[2]))))
EOF
}

train() {  # NAME CONFIG [extra --set ...]
    local name=$1 config=$2
    shift 2
    local steps images=""
    [[ "$name" != ae64 ]] && images=${IMAGES:-}
    steps=$(scaled_steps "$config" "$images")
    local sets=(--set "train.steps=$steps" --set "experiment.output_dir=$RUNS/$name" --set "data.root=$DATA"
                --set "train.device=$DEVICE")
    local extra
    for extra in ${TRAIN_SET:-}; do sets+=(--set "$extra"); done
    say "train $name ($config, $steps steps)"
    local start=$SECONDS
    "${S2A[@]}" train "$config" "${sets[@]}" "$@" --resume
    local seconds=$((SECONDS - start))
    "$PYTHON" - "$RUNS/$name" "$name" "$config" "$steps" "$seconds" >> "$BUDGET_FILE" <<'EOF'
import json, sys
run, name, config, steps, seconds = sys.argv[1:]
try:
    batch = json.load(open(f"{run}/config.json"))["data"]["batch_size"]
except (OSError, KeyError, ValueError):
    batch = None
# Training time from the run's own log (it spans resumed sessions); this call's wall time if absent.
seconds = float(seconds)
try:
    lines = [json.loads(line) for line in open(f"{run}/metrics.jsonl") if line.strip()]
    seconds = float(lines[-1]["time"]) if lines else seconds
except (OSError, KeyError, ValueError, TypeError):
    pass
print(json.dumps({"name": name, "config": config, "steps": int(steps), "batch_size": batch, "seconds": round(seconds)}))
EOF
}

train ae64 configs/ae64.toml
train s2a64 configs/s2a64.toml --set "experiment.autoencoder_dir=$RUNS/ae64"
train simple_gan64 configs/simple_gan64.toml
train pix2pix64 configs/pix2pix64.toml
train cyclegan64 configs/cyclegan64.toml

# ---- evaluation ---------------------------------------------------------------------------
MODELS=(--model "$RUNS/s2a64/model" --model "$RUNS/simple_gan64/model" --model "$RUNS/pix2pix64/model"
        --model "$RUNS/cyclegan64/model")
COMMON=(--data "$DATA" --fid "$FID" --fid-conditions "$FID_CONDITIONS" --device "$DEVICE" --seed 0
        ${FID_SIZE:+--fid-size "$FID_SIZE"}
        ${INCEPTION_WEIGHTS:+--inception-weights "$INCEPTION_WEIGHTS"})

PAIRS=${PAIRS:-}
if [[ -z "$PAIRS" ]]; then
    for candidate in ../shared/data/sketch-pairs /work/shared/data/sketch-pairs; do
        [[ -d "$candidate" ]] && PAIRS=$candidate && break
    done
fi
[[ "$PAIRS" == "none" ]] && PAIRS=""

# Floors, the held-out line style and the display-size scores are on by default in evaluate.
say "evaluate on the validation split"
"${S2A[@]}" evaluate "${MODELS[@]}" "${COMMON[@]}" --out "$EVAL_OUT" ${EVAL_LIMIT:+--limit "$EVAL_LIMIT"} \
    ${PAIRS:+--pairs "$PAIRS"} --table "$EVAL_OUT/floors.md" \
    --logs "$RUNS/ae64" --logs "$RUNS/s2a64" --logs "$RUNS/simple_gan64" --logs "$RUNS/pix2pix64" \
    --logs "$RUNS/cyclegan64"

SUBSET_METRICS=""
if [[ "$STYLE_LIMIT" -gt 0 ]]; then
    say "evaluate with the style-transfer baseline on the first $STYLE_LIMIT validation images"
    "${S2A[@]}" evaluate "${MODELS[@]}" --model style-transfer "${COMMON[@]}" --out "$EVAL_OUT/with-style-transfer" \
        --limit "$STYLE_LIMIT" --style-steps "$STYLE_STEPS" --roughness none,heavy --projection 0.5 --no-heldout-lines
    SUBSET_METRICS="$EVAL_OUT/with-style-transfer/metrics.json"
fi

# ---- docs/comparison.md -------------------------------------------------------------------
"$PYTHON" - "$DOC" "$EVAL_OUT/metrics.json" "$BUDGET_FILE" "$SUBSET_METRICS" \
    "${IMAGES:+IMAGES=$IMAGES }BUDGET=$BUDGET${EVAL_LIMIT:+ EVAL_LIMIT=$EVAL_LIMIT}${FID_SIZE:+ FID_SIZE=$FID_SIZE} scripts/compare_baselines.sh" <<'EOF'
import sys
from pathlib import Path
from sketch2anime.evaluation.report import write_comparison

doc, metrics, budget, subset, command = sys.argv[1:]
print(write_comparison(Path(doc), Path(metrics), Path(budget), Path(subset) if subset else None, command))
EOF
say "done: $DOC"
