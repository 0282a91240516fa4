#!/usr/bin/env bash
# Paper 1 Table 1's GC-10 row at reduced scale: targeted CW-L2 (preset fast) against every other
# class of 10 test images (90 attempts) on the gc VAE-CNN at K = 10; run beside
# run_mnist_attacks.sh. Re-running resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
export DBAYES_DATA=${DBAYES_DATA:-../shared/data}
out=results/attacks/mnist_gc10_cw_l2_targeted
resume=""; [ -f "$out/config.json" ] && resume="--resume"
dbayes attack results/models/mnist_gc_cnn_iwae5 --attack cw_l2 --targeted all --preset fast \
  --n-images 10 --batch-size 18 --seed 0 --out "$out" $resume --quiet
