#!/usr/bin/env bash
# Session 5: the gc VAE-CNN rows made before session 4 again, now with confirmation (a new best
# CW image, DeepFool's stopping point and each Truncated-DeepFool trial must fool 80% of R = 10
# fresh draws; the default for stochastic models since session 4). Same model, images, seed and
# settings as run_mnist_attacks.sh / run_mnist_gc10_cw.sh, so each row compares with its
# predecessor (mnist_gc_* -> mnist_gc_*_confirm). Re-running resumes.
#   DBAYES_DATA=/work/shared/data nohup bash results/run_confirm_rerun.sh > results/attacks/confirm_rerun.log 2>&1 &
# Session 5 stopped it (Ctrl-C) after 54 of GC-10's 90 attempts and ran its last summarize by hand;
# running it again resumes GC-10 and rewrites both tables. Session 6 did so and GC-10 finished
# (its first resume crashed on its first new batch because the library's source was edited
# under it, see confirm_rerun.log; the second completed the 36 attempts).
set -euo pipefail
cd "$(dirname "$0")/.."
export DBAYES_DATA=${DBAYES_DATA:-../shared/data}
GC=results/models/mnist_gc_cnn_iwae5

attack() {  # attack NAME ARGS...
  local out=results/attacks/$1; shift
  local resume=""; [ -f "$out/config.json" ] && resume="--resume"
  echo "== $(date -u +%H:%M:%S) $out"
  dbayes attack "$GC" "$@" --seed 0 --out "$out" $resume --quiet
}

attack mnist_gc_deepfool_confirm --attack deepfool --n-images 50 --batch-size 10
attack mnist_gc_truncated_deepfool_confirm --attack truncated_deepfool --n-images 50 --batch-size 10
dbayes summarize results/attacks/mnist_gc_deepfool results/attacks/mnist_gc_deepfool_confirm \
  results/attacks/mnist_gc_truncated_deepfool results/attacks/mnist_gc_truncated_deepfool_confirm \
  --out results/attacks --name confirm_rerun_gc_cnn_deepfool
# Paper 1 Table 1's GC-1 and GC-10 rows (targeted CW-L2, fast preset, every other class of 10
# images; GC-1 first because it is cheap)
attack mnist_gc1_cw_l2_targeted_confirm --attack cw_l2 --targeted all --preset fast --k 1 \
  --n-images 10 --batch-size 90
attack mnist_gc10_cw_l2_targeted_confirm --attack cw_l2 --targeted all --preset fast \
  --n-images 10 --batch-size 18
dbayes summarize results/attacks/mnist_cnn_cw_l2_targeted results/attacks/mnist_gc1_cw_l2_targeted \
  results/attacks/mnist_gc1_cw_l2_targeted_confirm \
  results/attacks/mnist_gc10_cw_l2_targeted results/attacks/mnist_gc10_cw_l2_targeted_confirm \
  --out results/attacks --name table1_cw_targeted_confirm
