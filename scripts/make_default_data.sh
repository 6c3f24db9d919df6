#!/usr/bin/env bash
# Rebuild the app's default dataset under data/ (or the home given as $1): two simulated
# tasks, written by `seedlab simulate` (docs/simulator.md). The result is deterministic:
# the same seeds give the same files. Probabilities are rounded to 2 decimals (as in Zhong
# et al.'s correctness_p tensors) to keep the tracked files small.
#
#   scripts/make_default_data.sh            # data/
#   scripts/make_default_data.sh /tmp/home  # another home
#
# Only the two simulated tasks are replaced; anything else in the home is left alone.
set -euo pipefail

cd "$(dirname "$0")/.."
HOME_DIR="${1:-data}"
if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
seedlab() { "$PYTHON" -m seedlab --home "$HOME_DIR" "$@"; }

# Drop the previous files of the two tasks, then let the catalogue forget them.
for task in sim-sst2 sim-mnli; do
    rm -rf "$HOME_DIR/predictions/task=$task" "$HOME_DIR/instances/task=$task" \
        "$HOME_DIR/tasks/$task.json"
done
if [ -e "$HOME_DIR/catalog.sqlite" ]; then seedlab reindex; fi

# SST-2-like: single sentences, 2 classes, the five sizes, 5 x 5 seeds, 4 checkpoints.
seedlab simulate --task sim-sst2 --classes 2 --instances 2000 \
    --sizes mini,small,medium,base,large --pretrain-seeds 5 --finetune-seeds 5 \
    --checkpoints 4 --decaying-share 0.05 --wrong-label-share 0.02 --decimals 2 --seed 2021

# MNLI-like: sentence pairs, 3 classes, 3 sizes.
seedlab simulate --task sim-mnli --classes 3 --pair --instances 1000 \
    --sizes mini,base,large --pretrain-seeds 5 --finetune-seeds 5 \
    --checkpoints 4 --decaying-share 0.05 --wrong-label-share 0.03 --decimals 2 --seed 2022

seedlab info
du -sh "$HOME_DIR"
