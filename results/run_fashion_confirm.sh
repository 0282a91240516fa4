#!/usr/bin/env bash
# Session 6: paper 2's DeepFool rows on Fashion-MNIST (run_fashion_attacks.sh) again, now with
# confirmation (DeepFool's stopping point must fool 80% of R = 10 fresh draws; the default for
# stochastic models since session 4). Same models, images, seed and settings; each new run is the
# old name plus _confirm. One model per call; re-running resumes. Session 6 ran them one after
# the other beside two trainings:
#   DBAYES_DATA=/work/shared/data nohup bash -c "bash results/run_fashion_confirm.sh gfz; \
#     bash results/run_fashion_confirm.sh dfz" > results/attacks/fashion_confirm.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
export DBAYES_DATA=${DBAYES_DATA:-../shared/data}
model=${1:?usage: run_fashion_confirm.sh gfz|dfz}
out=results/attacks/fashion_${model}_deepfool_confirm
resume=""; [ -f "$out/config.json" ] && resume="--resume"
echo "== $(date -u +%H:%M:%S) $out"
dbayes attack results/models/fashion_$model --attack deepfool --n-images 200 --seed 0 \
  --out "$out" $resume --quiet
