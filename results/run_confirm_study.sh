#!/usr/bin/env bash
# Session 4: untargeted CW-L2 on the stochastic gc VAE-MLP (K = 10) again, now that a new best
# image must fool 80% of R = 10 fresh draws before CW keeps it (--confirm-draws, default R for
# stochastic models). Same 100 images and settings as results/run_overshoot_study.sh's CW runs,
# which had no confirmation: compare cw_const_gc_mlp (before) with cw_confirm_gc_mlp (after).
#   DBAYES_DATA=/work/shared/data nohup bash results/run_confirm_study.sh > results/attacks/confirm_queue.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
for c in 10 100 1; do
  dbayes attack results/models/mnist_gc_mlp_iwae5 --attack cw_l2 --preset fast --initial-const $c \
    --n-images 100 --seed 0 --out results/attacks/cw_confirm_gc_mlp_c$c --resume --quiet
  dbayes summarize results/attacks/cw_confirm_gc_mlp_c* --out results/attacks --name cw_confirm_gc_mlp
done
