#!/usr/bin/env bash
# How much could selection give with the default checkpoint's candidates? The headroom table of
# docs/results.md: the same held-out official states (0..9 of every libero_object task, seed 7,
# 128² fast rendering, sync) for one plain sample, the value head's choice, a random choice, the
# coherence and consensus selectors and the simulator oracle; then one plain sample with seven more noise seeds
# (per-state success distribution, pass@k). Every run resumes per episode: run this again to
# continue. Tables: scripts/ablation_table.py and scripts/headroom_table.py (docs/results.md).
# Usage: scripts/selection_headroom.sh [OUT_ROOT] (default outputs/eval/headroom)
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-outputs/eval/headroom}"
states=(--config configs/eval/libero_object.yaml --episodes_per_task=10 --image_size=128
        --fast_render=true --videos_per_task=0 --num_workers="${NUM_WORKERS:-2}")
common=("${states[@]}" --policy.switch_blend=0)  # as measured: a new plan takes over at once
run() {
  local name=$1; shift
  .venv/bin/hume eval "${common[@]}" "$@" --output "$root/$name"
}
five=(--policy.num_candidates=5)
run oracle5 --policy.selector=oracle "${five[@]}"
# one candidate: whatever the selector, the plain sample (the checkpoint's consensus of one included)
run n1 --policy.num_candidates=1
run coherence5 --policy.selector=coherence "${five[@]}"
run value5 --policy.selector=value "${five[@]}"
run random5 --policy.selector=random "${five[@]}"
run consensus5 --policy.selector=consensus "${five[@]}"
# The plain seeds are cheap and give pass@k, the upper bound any selection of one sample can reach.
for seed in 1 2 3 4 5 6 8; do
  run "n1_seed$seed" --policy.num_candidates=1 --seed="$seed"
done
run oracle2 --policy.selector=oracle --policy.num_candidates=2
run oracle5x2 --policy.selector=oracle "${five[@]}" --oracle.thinks=2
run oracle10 --policy.selector=oracle --policy.num_candidates=10
# consensus against the plain seeds, paired seed by seed (docs/results.md, "Choosing without a critic")
for seed in 1 2 3 4 5 6 8; do
  run "consensus5_seed$seed" --policy.selector=consensus "${five[@]}" --seed="$seed"
done
# does the mode get easier to find with more samples? consensus of ten, seed 7 then the others
run consensus10 --policy.selector=consensus --policy.num_candidates=10
for seed in 1 2 3 4 5 6 8; do
  run "consensus10_seed$seed" --policy.selector=consensus --policy.num_candidates=10 --seed="$seed"
done
# the checkpoint as shipped (consensus of ten, plan switches blended over one tick), seed 7
.venv/bin/hume eval "${states[@]}" --output "$root/shipped_consensus10"
