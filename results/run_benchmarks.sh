#!/usr/bin/env bash
# Session 3 (2026-11-22): the peer cross-check at N = 100 and on a stochastic gc model (issue #3),
#   DBAYES_DATA=/work/shared/data nohup bash results/run_benchmarks.sh s3 > results/run_benchmarks.log 2>&1 &
# Session 4 (2026-11-22): the same cross-checks again with per-image images kept (resumable) and
# success at fixed L2 budgets, plus ZOO against ART at N = 100 (stopped after the ZOO section, at
# the end of the session: the CW sections below have not run yet; the earlier sections'
# bench_attacks_* CW rows stand):
#   DBAYES_DATA=/work/shared/data nohup bash results/run_benchmarks.sh s4 > results/run_benchmarks_s4.log 2>&1 &
# Session 6 (2026-11-23) ran the last bench of s4 alone (ART's CW on the CNN, niced, beside a
# training, then alone) from a frozen copy of the code; it finished (all 5 batches cached in
# results/bench_attacks/bench_cnn100_cw_art/, log results/run_benchmarks_s6.log).
# Session 7 (2026-11-23): ART's CW on the gc model at N = 100, from a frozen copy of the code,
# after the session's training had finished (alone on the machine), 2 of 5 batches:
#   DBAYES_DATA=/work/shared/data nohup bash results/run_benchmarks.sh s7 > results/run_benchmarks_s7.log 2>&1 &
# Session 8 (2026-11-23): the rest of it, then ZOO on the gc model (10 of 20 batches), the same
# way; a later session re-runs the same line and resumes from the cache:
#   DBAYES_DATA=/work/shared/data nohup bash results/run_benchmarks.sh s8 > results/run_benchmarks_s8.log 2>&1 &
# Session 9 (2026-11-23): the last 10 ZOO batches, resumed from the cache, alone, from a frozen copy:
#   DBAYES_DATA=/work/shared/data nohup bash results/run_benchmarks.sh s9 > results/run_benchmarks_s9.log 2>&1 &
# Each call rewrites only its own section of results/benchmarks.md, attack by attack.
#
# Run first, by hand, and stopped when it reached ART's CW (about a minute per image on this
# model, 2+ hours for 99 images on a shared machine), so its section is marked incomplete:
#   python benchmarks/bench_attacks.py --model-dir results/models/mnist_gc_mlp_iwae5 \
#     --n-images 100 --attacks deepfool,cw_l2 --cw-preset fast --section bench_attacks_gc
set -u
cd "$(dirname "$0")/.."
bench() { python benchmarks/bench_attacks.py "$@" 2>&1 | grep --line-buffered -v -E "^(WARNING|I0000|E0000)"; }
load='run alongside two gc VAE-CNN trainings (3 processes on 2 cores): seconds are inflated, compare them within a row group'
alone='run alone on the machine (one process on 2 cores)'
session3() {
# ART's CW against ours on the stochastic gc, on 20 images.
bench --model-dir results/models/mnist_gc_mlp_iwae5 --n-images 20 --attacks cw_l2 \
  --tools ours,art --cw-preset fast --section bench_attacks_gc_art_cw --note "$load"
# The CNN at N = 100 (the N = 50 section above has ART's CW on the CNN: 74 s/image).
bench --model-dir results/models/mnist_cnn_cosine --n-images 100 --attacks deepfool \
  --section bench_attacks_cnn100_deepfool --note "$load"
bench --model-dir results/models/mnist_cnn_cosine --n-images 100 --attacks cw_l2 \
  --tools ours,foolbox --cw-preset fast --section bench_attacks_cnn100_cw --note "$load"
# Ours as `dbayes attack` runs it on stochastic models: CW's best-so-far, abort-early and binary
# search decided on the mean of 3 draws instead of one (the rows above use one, like the peers).
bench --model-dir results/models/mnist_gc_mlp_iwae5 --n-images 100 --attacks cw_l2 --tools ours \
  --decision-draws 3 --cw-preset fast --section bench_attacks_gc_cw_draws3 --note "$load"
}
session4() {
  local gc=results/models/mnist_gc_mlp_iwae5 cnn=results/models/mnist_cnn_cosine
  bench --model-dir $gc --n-images 100 --attacks deepfool --section bench_gc100_deepfool \
    --resume --note "$load"
  bench --model-dir $cnn --n-images 100 --attacks deepfool --section bench_cnn100_deepfool \
    --resume --note "$load"
  bench --model-dir $cnn --n-images 100 --attacks zoo --section bench_cnn100_zoo --resume \
    --note "$load"
  bench --model-dir $gc --n-images 100 --attacks cw_l2 --tools ours,foolbox --cw-preset fast \
    --section bench_gc100_cw --resume --note "$load"
  bench --model-dir $cnn --n-images 100 --attacks cw_l2 --tools ours,foolbox --cw-preset fast \
    --section bench_cnn100_cw --resume --note "$load"
  # ART's CW: about a minute per image; resumable, reported with --cached-only when stopped.
  bench --model-dir $cnn --n-images 100 --attacks cw_l2 --tools art --cw-preset fast \
    --section bench_cnn100_cw_art --resume --note "$load"
}
session7() {
  # ART's CW on the gc model: about 45 s per image, no abort early.
  bench --model-dir results/models/mnist_gc_mlp_iwae5 --n-images 100 --attacks cw_l2 \
    --tools art --cw-preset fast --section bench_gc100_cw_art --resume --note "$alone"
}
session8() {
  session7  # resumed: batches 3 to 5 (all cached now, so only re-judged)
  # ZOO on the gc model, ours and ART's ZooAttack: about 100 s/image for ours and 16 for ART's,
  # about 3.2 h for the 20 batches, so over two sessions (10 in session 8, 10 in session 9). Batches
  # of 5 keep at most ~10 min of work at risk when a session ends, and (batches outer, tools
  # inner) every stop leaves both tools on the same images. A first start in session 8, before
  # ZOO's abort-early fix, was discarded (its cache deleted).
  gc100_zoo
}
gc100_zoo() {
  bench --model-dir results/models/mnist_gc_mlp_iwae5 --n-images 100 --attacks zoo \
    --tools ours,art --batch-size 5 --section bench_gc100_zoo --resume --note "$alone"
}
session9() {
  gc100_zoo  # resumed: batches 10 to 19 (0 to 9 cached in session 8, only re-judged)
}
case "${1:-}" in
  s3) session3 ;;
  s4) session4 ;;
  s7) session7 ;;
  s8) session8 ;;
  s9) session9 ;;
  *) echo "usage: $0 s3|s4|s7|s8|s9 (the queue of session 3, 4, 7, 8 or 9)" >&2; exit 2 ;;
esac
