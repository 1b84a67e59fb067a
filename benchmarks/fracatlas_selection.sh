#!/usr/bin/env bash
# The FracAtlas selection table (BENCHMARKS.md "Model quality"), per split seed, on one
# prepared cache (64 px) and one 10-minute search (configs/fracatlas-laptop.yaml):
#   (c) retrain --search of the search's best trial (30 epochs);
#   (d)+(e) one retrain --search --rerank 3 --ensemble 3: the three best distinct configurations trained
#       again with a fresh seed, the best mean validation AUROC kept (d, the report's single best model),
#       and the three served as one averaging model (e, the registered model);
#   (a)+(b) the notebook's base and tuned recipes (retrain --config-json, 30 epochs; tuned at 64 px here).
# benchmarks/fracatlas_table.py turns the reports and test_predictions.csv files into the table, with the
# paired bootstrap CI of each row's AUROC minus (b)'s on the same test images.
#
#   WORK=.fracture-tune/selection SPLIT_SEEDS="0 1 2" bash benchmarks/fracatlas_selection.sh
#   STEPS="search c de" ...        # a subset of steps: search, c, de, ab (default: all four)
#   SMOKE=1 WORK=/tmp/sel ...      # the same commands on tiny settings (4 trials, 2 epochs)
#   CONFIG=configs/fracatlas-h100.yaml IMAGE_SIZE=256 TUNED_SIZE=128 DEVICE=cuda ...   # on a GPU machine
set -uo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
WORK=${WORK:?set WORK to the folder the reports go to}
DATA=${DATA:-${FRACATLAS_DIR:-../shared/data/fracatlas}}
SPLIT_SEEDS=${SPLIT_SEEDS:-0 1 2}
STEPS=${STEPS:-search c de ab}
CONFIG=${CONFIG:-configs/fracatlas-laptop.yaml}
EPOCHS=${EPOCHS:-30}
IMAGE_SIZE=${IMAGE_SIZE:-64}      # the prepared cache's side (the search config's dataset.image_size)
TUNED_SIZE=${TUNED_SIZE:-64}      # (b)'s input size: the notebook trained it at 128
DEVICE=${DEVICE:-cpu}
SMOKE=${SMOKE:-0}
cd "$(dirname "$0")/.."
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
FT=("$PYTHON" -m fracture_tune.search.cli)
log() { echo "[selection $(date +%H:%M:%S)] $*" | tee -a "$WORK/selection.log"; }
SETS=(--set "dataset.path=$DATA" --set "dataset.image_size=$IMAGE_SIZE")
TUNED_AUG_FACTOR=10
if [ "$SMOKE" = 1 ]; then
  EPOCHS=2; TUNED_AUG_FACTOR=1
  SETS+=(--set budget.num_trials=4 --set budget.time_budget_s=150 --set training.aug_factor=1 --set training.epochs=2 --set scheduler.max_t=2
         --set scheduler.grace_period=1 --set best_trial.min_epochs=1 --set 'space.params.model.choices=[tunable_cnn]')
fi
status=0
run() { local name=$1; shift; log "$name: $*"; "$@" >"$WORK/$name.log" 2>&1 || { log "$name failed (exit $?)"; status=1; }; }

for seed in $SPLIT_SEEDS; do
  name="selection-s$seed"
  uri="sqlite:///$WORK/mlflow-s$seed.db"
  dataset=$("$PYTHON" -c "from fracture_tune.data.prepare import prepare_dataset as p; \
print(p('$DATA', image_size=$IMAGE_SIZE, seed=$seed).cache_dir)" | tail -1)
  for step in $STEPS; do
    case $step in
      search) run "search-s$seed" "${FT[@]}" search --config "$CONFIG" --name "$name" --storage "$WORK/runs" \
                --tracking-uri "$uri" --set "dataset.split_seed=$seed" "${SETS[@]}" ;;
      c) run "c-s$seed" "${FT[@]}" retrain --search "$name" --storage "$WORK/runs" --epochs "$EPOCHS" \
           --no-baseline --rerank 0 --out "$WORK/s$seed/search" --device "$DEVICE" --tracking-uri "$uri" ;;
      de) run "de-s$seed" "${FT[@]}" retrain --search "$name" --storage "$WORK/runs" --epochs "$EPOCHS" \
            --no-baseline --rerank 3 --ensemble 3 --out "$WORK/s$seed/selection" --device "$DEVICE" \
            --tracking-uri "$uri" ;;
      ab) sed -e "s/\"aug_factor\": 10/\"aug_factor\": $TUNED_AUG_FACTOR/" \
              -e "s/\"input_size\": 64/\"input_size\": $TUNED_SIZE/" -e "s/\"device\": \"cpu\"/\"device\": \"$DEVICE\"/" \
              benchmarks/seed_tuned_64px.json >"$WORK/seed_tuned.json"
          run "ab-s$seed" "${FT[@]}" retrain --config-json "$WORK/seed_tuned.json" --dataset "$dataset" \
            --epochs "$EPOCHS" --out "$WORK/s$seed/seed_recipes" --no-register --device "$DEVICE" --tracking-uri "$uri" ;;
      *) log "unknown step $step (search, c, de, ab)"; exit 2 ;;
    esac
  done
done
"$PYTHON" benchmarks/fracatlas_table.py --work "$WORK" --out "$WORK/fracatlas_table.json" \
  >"$WORK/fracatlas_table.md" 2>>"$WORK/selection.log" || status=1
log "done (status $status)"
exit $status
