#!/usr/bin/env bash
# Session 4: DeepFool and Truncated-DeepFool on the stochastic gc VAE-MLP (K = 10) with
# confirmation (the default for stochastic models since session 4: an image counts as done only
# once 80% of R = 10 fresh draws are fooled), on the same 100 images as
# results/attacks/overshoot_gc_mlp_deepfool_0.02, which ran without it.
#   DBAYES_DATA=/work/shared/data nohup bash results/run_confirm_study_deepfool.sh > results/attacks/confirm_deepfool_queue.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
for attack in deepfool truncated_deepfool; do
  dbayes attack results/models/mnist_gc_mlp_iwae5 --attack $attack --n-images 100 --seed 0 \
    --out results/attacks/confirm_gc_mlp_$attack --resume --quiet
done
# the same two without confirmation, for the pair of tables
dbayes attack results/models/mnist_gc_mlp_iwae5 --attack truncated_deepfool --n-images 100 \
  --seed 0 --confirm-draws 0 --out results/attacks/noconfirm_gc_mlp_truncated_deepfool --resume --quiet
dbayes summarize results/attacks/overshoot_gc_mlp_deepfool_0.02 \
  results/attacks/noconfirm_gc_mlp_truncated_deepfool results/attacks/confirm_gc_mlp_deepfool \
  results/attacks/confirm_gc_mlp_truncated_deepfool --out results/attacks --name confirm_deepfool_gc_mlp
