#!/usr/bin/env bash
# Paper 2 (Fashion-MNIST, GFZ vs DFZ): FGSM and DeepFool on 200 test images each, then the
# logit detector of each model against its own attacks (Tables 2-5, Figs 3-6).
# Re-running resumes every unfinished attack run.
set -euo pipefail
cd "$(dirname "$0")/.."
export DBAYES_DATA=${DBAYES_DATA:-../shared/data}
for model in dfz gfz; do
  for spec in "fgsm --eps 0.1" "deepfool"; do
    name=$(echo "$spec" | cut -d' ' -f1)
    out=results/attacks/fashion_${model}_${name}
    resume=""; [ -f "$out/config.json" ] && resume="--resume"
    dbayes attack results/models/fashion_$model --attack $spec --n-images 200 --seed 0 \
      --out "$out" $resume --quiet
  done
  dbayes detect --method logit --detector-model results/models/fashion_$model \
    --adv results/attacks/fashion_${model}_fgsm --adv results/attacks/fashion_${model}_deepfool \
    --fpr 0.05 --out results/detection/fashion_${model}_logit --quiet
done
