#!/usr/bin/env bash
# Paper 1 on MNIST: attacks on the CNN (mnist_cnn_cosine, 99.40%) and on the generative
# classifier gc VAE-CNN (mnist_gc_cnn_iwae5), reconstruction-distance detection with that gc
# model (Table 2), targeted CW-L2 (Table 1, at reduced scale: see results/README.md) and the
# FGSM curves of Fig. 1. Re-running resumes every unfinished run. Seed 0 throughout.
set -euo pipefail
cd "$(dirname "$0")/.."
export DBAYES_DATA=${DBAYES_DATA:-../shared/data}
CNN=results/models/mnist_cnn_cosine
GC=results/models/mnist_gc_cnn_iwae5

attack() {  # attack NAME MODEL_DIR ARGS...
  local out=results/attacks/$1 model=$2; shift 2
  local resume=""
  [ -f "$out/config.json" ] && resume="--resume"
  echo "== $(date -u +%H:%M:%S) $out"
  dbayes attack "$model" "$@" --seed 0 --out "$out" $resume --quiet
}

# Table 2: untargeted DeepFool and CW-L2 on the CNN, detected by the gc model's reconstructions
attack mnist_cnn_deepfool $CNN --attack deepfool --n-images 200
attack mnist_cnn_cw_l2 $CNN --attack cw_l2 --preset cleverhans --n-images 200 --batch-size 100
dbayes detect --method recon --detector-model $GC --adv results/attacks/mnist_cnn_deepfool \
  --adv results/attacks/mnist_cnn_cw_l2 --out results/detection/mnist_recon --quiet

# Every attack on the CNN ...
attack mnist_cnn_fgsm $CNN --attack fgsm --eps 0.1 --n-images 200
attack mnist_cnn_ifgsm $CNN --attack ifgsm --targeted random --n-images 50
attack mnist_cnn_truncated_deepfool $CNN --attack truncated_deepfool --n-images 200
attack mnist_cnn_zoo $CNN --attack zoo --n-images 20 --iterations 200
attack mnist_cnn_noise $CNN --attack noise --l2 1.5 --n-images 200
# ... and on the gc VAE-CNN (K = 10; far costlier per image, so fewer images)
attack mnist_gc_fgsm $GC --attack fgsm --eps 0.1 --n-images 100
attack mnist_gc_deepfool $GC --attack deepfool --n-images 50 --batch-size 10
attack mnist_gc_truncated_deepfool $GC --attack truncated_deepfool --n-images 50 --batch-size 10
attack mnist_gc_noise $GC --attack noise --l2 1.5 --n-images 100
attack mnist_gc_ifgsm $GC --attack ifgsm --targeted random --n-images 20
# ZOO on the gc model: every query is 10 classes x K = 10 decoder passes, so a small budget
attack mnist_gc_zoo $GC --attack zoo --n-images 3 --iterations 30 --coordinates 32 \
  --queries-per-point 2 --batch-size 3

# Table 1: targeted CW-L2 against every other class (paper: 200 images, Carlini's parameters)
attack mnist_cnn_cw_l2_targeted $CNN --attack cw_l2 --targeted all --preset fast --n-images 50 \
  --batch-size 90
attack mnist_gc1_cw_l2_targeted $GC --attack cw_l2 --targeted all --preset fast --k 1 \
  --n-images 10 --batch-size 90

# Fig. 1a: untargeted FGSM sweeps on paper 1's MLP-based models
for run in mnist_mlp mnist_bnn mnist_gc_mlp_iwae5; do
  out=results/attacks/sweep_$run
  [ -f "$out/fgsm_sweep.csv" ] || dbayes attack results/models/$run --attack fgsm \
    --eps 0:0.5:0.05 --n-images 200 --seed 0 --out "$out" --quiet
done
out=results/attacks/sweep_mnist_gc_mlp_iwae5_k1
[ -f "$out/fgsm_sweep.csv" ] || dbayes attack results/models/mnist_gc_mlp_iwae5 --attack fgsm \
  --eps 0:0.5:0.05 --k 1 --n-images 200 --seed 0 --out "$out" --quiet
# Fig. 1b: iterative targeted FGSM, 100 x 0.01
for run in mnist_mlp mnist_bnn mnist_gc_mlp_iwae5; do
  attack path_$run results/models/$run --attack ifgsm --targeted random --n-images 50
done

# (mnist_gc10_cw_l2_targeted, the costliest, ran beside this queue: run_mnist_gc10_cw.sh)
echo "== $(date -u +%H:%M:%S) done"
