#!/usr/bin/env bash
# Session 3: DeepFool on the stochastic gc VAE-MLP (K = 10) at growing overshoot, on the same 100
# images as the N = 100 cross-check (benchmarks.md, bench_attacks_gc): how much of the peers'
# higher success is their larger distortion.
#   DBAYES_DATA=/work/shared/data nohup bash results/run_overshoot_study.sh > results/attacks/overshoot_queue.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
for o in 0.02 0.1 0.2 0.4; do
  dbayes attack results/models/mnist_gc_mlp_iwae5 --attack deepfool --n-images 100 --overshoot $o \
    --seed 0 --out results/attacks/overshoot_gc_mlp_deepfool_$o --resume --quiet
done
dbayes summarize results/attacks/overshoot_gc_mlp_deepfool_* --out results/attacks --name deepfool_overshoot_gc_mlp
# Is the gc's resistance to CW-L2 (`fast` preset: one constant c = 1) real, or a too-small c?
# Untargeted CW on the same 100 images with c = 1, 10, 100 (decisions on the mean of 3 draws).
for c in 1 10 100; do
  dbayes attack results/models/mnist_gc_mlp_iwae5 --attack cw_l2 --preset fast --initial-const $c \
    --n-images 100 --seed 0 --out results/attacks/cw_const_gc_mlp_c$c --resume --quiet
done
dbayes summarize results/attacks/cw_const_gc_mlp_c* --out results/attacks --name cw_const_gc_mlp
