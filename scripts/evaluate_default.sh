#!/usr/bin/env bash
# Score the default model's training run against Pix2Pix at 128 px and the trivial floors, then
# rewrite the default model's card from the result. Produces the tables in the README's "The default
# model, measured" section and in src/sketch2anime/pretrained/default/MODEL_CARD.md.
#
#   scripts/evaluate_default.sh                  # defaults below; ~15 min on the 2-core CPU
#   EXPORT=weights scripts/evaluate_default.sh   # also re-export the weights from $RUN (not just the card)
#   EXPORT=none scripts/evaluate_default.sh      # only the evaluation (pick a checkpoint first)
#
# Environment (all optional):
#   RUN       guided run folder (default ~/s2a-runs/guided128)
#   SNAPSHOT  step of RUN/snapshots/step_N to score and ship instead of RUN/model (train.snapshot_every)
#   SOUP_ALPHA score and ship the weight average (1 - a) x the model RUN was fine-tuned from
#             (its experiment.init_generator) + a x RUN's model or snapshot (sketch2anime interpolate),
#             written to OUT/<run name>-soup<a>, which names its row
#   BASELINES space-separated Pix2Pix model folders trained with configs/pix2pix128.toml; the folder
#             above model/ names the row (default: ~/s2a-runs/pix2pix128-102k/model, that config run
#             for 12,800 steps: the default model's 102,400 images; skipped when absent)
#   PREVIOUS  earlier checkpoints' model folders (comma- or space-separated) scored alongside, to pick the one to ship
#             (e.g. the currently shipped src/sketch2anime/pretrained/default; default: none)
#   DATA      prepared 128 px dataset (default ~/s2a-runs/data/faces128)
#   PAIRS     real line-art pairs (default ../shared/data/sketch-pairs; "none" skips them)
#   OUT       evaluation folder (default ~/s2a-runs/eval-default)
#   FID_SIZE  HED-VGG feature input side (default 128, the models' native size)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-$HOME/s2a-runs/guided128}
DATA=${DATA:-$HOME/s2a-runs/data/faces128}
PAIRS=${PAIRS:-../shared/data/sketch-pairs}
OUT=${OUT:-$HOME/s2a-runs/eval-default}
FID_SIZE=${FID_SIZE:-128}
PREVIOUS=${PREVIOUS:-}
BASELINES=${BASELINES:-"$HOME/s2a-runs/pix2pix128-102k/model"}

MODEL=$RUN/model
snapshot=()
if [[ -n "${SNAPSHOT:-}" ]]; then
  MODEL=$(printf '%s/snapshots/step_%07d' "$RUN" "$SNAPSHOT")
  snapshot=(--snapshot "$SNAPSHOT")
fi
soup=()
if [[ -n "${SOUP_ALPHA:-}" ]]; then
  START=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["experiment"]["init_generator"])' "$RUN/config.json")
  SOUP=$OUT/$(basename "$RUN")-soup$SOUP_ALPHA
  rm -rf "$SOUP"
  sketch2anime interpolate "$START" "$MODEL" --alpha "$SOUP_ALPHA" --out "$SOUP"
  MODEL=$SOUP
  soup=(--soup-alpha "$SOUP_ALPHA")
fi
models=(--model "$MODEL")
for folder in ${PREVIOUS//,/ } $BASELINES; do
  if [[ -f "$folder/pipeline.json" ]]; then models+=(--model "$folder"); else echo "skipping missing model folder $folder" >&2; fi
done
pairs=()
[[ "$PAIRS" != none && -d "$PAIRS" ]] && pairs=(--pairs "$PAIRS")

# FID/KID on clean sketches of the validation split only: the other sets are small and the rough
# condition doubles the cost without changing the ranking.
sketch2anime evaluate "${models[@]}" --data "$DATA" --out "$OUT" "${pairs[@]}" \
  --fid hed-vgg --fid-conditions none --fid-size "$FID_SIZE" --hint-levels none,sparse --roughness none,heavy \
  --projection 0,1 --table "$OUT/floors.md" --logs "$RUN" --quiet

case "${EXPORT:-card}" in
  weights) python scripts/export_default.py "$RUN" "${snapshot[@]}" "${soup[@]}" --metrics "$OUT/metrics.json" --showcase docs/images/showcase.png ;;
  card) python scripts/export_default.py "$RUN" "${snapshot[@]}" "${soup[@]}" --metrics "$OUT/metrics.json" --showcase docs/images/showcase.png --card-only ;;
  none) ;;
  *) echo "EXPORT must be weights, card or none, got ${EXPORT}" >&2; exit 2 ;;
esac
echo "tables: $OUT/floors.md, $OUT/report.md"
