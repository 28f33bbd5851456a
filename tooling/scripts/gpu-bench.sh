#!/usr/bin/env bash
# The engine and model benchmarks on the WebGPU adapter, as JSON lines (issue #18's hardware-GPU path).
#
#   bash tooling/scripts/gpu-bench.sh [--small] [--out FILE]
#
# On a machine with a GPU (a Vulkan driver: NVIDIA's ships one with its GL/Vulkan libraries), it
# prepares what is missing (pnpm, the workspace's packages, the build), then runs, in this order:
#   1. matmul GFLOPS at 1024, 2048, 4096 cubes, float32 then float16 (packages/tensor-gpu/bench/webgpu-matmul.mjs),
#      (float16 lines also give max_rel_err_vs_f32; lines give the adapter's float32 peak and the fraction
#      reached when known: set LM_GPU_PEAK_GFLOPS for an adapter the table does not know),
#   2. BERT-base forward at batch 1 and 8, the MLM training step and one decode step (tooling/bench/peers.mjs
#      --backend webgpu --only lm), float32 then float16,
#   3. the row kernels (softmax, log-softmax, layer/RMS norm, a row sum) with subgroup reductions and with
#      the shared-memory tree, interleaved (packages/tensor-gpu/bench/webgpu-rows.mjs),
#   4. submits and dispatches per decode step at 16, 64 and 1024 dispatches per submit
#      (packages/tensor-gpu/bench/webgpu-submits.mjs).
# Every line is also appended to FILE (default gpu-bench.jsonl in the repository root). Lines with
# "skipped" say what the adapter lacks (e.g. shader-f16). Under 5 minutes on a GPU.
# --small: small sizes, the end-to-end check that CI runs on SwiftShader (tooling/bench's test).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

small=0
out=gpu-bench.jsonl
while [ $# -gt 0 ]; do
  case "$1" in
    --small) small=1 ;;
    --out) out="$2"; shift ;;
    *) echo "gpu-bench.sh: unknown argument '$1' (known: --small, --out FILE)" >&2; exit 2 ;;
  esac
  shift
done
say() { printf '[gpu-bench] %s\n' "$*" >&2; }

# what the benchmarks need: pnpm, the packages, a built @lm/tensor-gpu
if ! command -v pnpm >/dev/null 2>&1; then
  say "pnpm not found: npm install -g pnpm@10"
  npm install -g pnpm@10 --no-audit --no-fund >&2
fi
if [ ! -d node_modules ] || [ ! -d packages/tensor-gpu/node_modules ]; then
  say "pnpm install --frozen-lockfile"
  pnpm install --frozen-lockfile >&2
fi
if [ ! -f packages/tensor-gpu/dist/index.js ]; then
  say "building @lm/tensor-gpu"
  pnpm --filter @lm/tensor-gpu build >&2
fi

: > "$out"
run() {
  say "$*"
  # stdout: JSON lines (to the caller and the file); Dawn's driver-search warnings stay on stderr
  "$@" | tee -a "$out"
}

if [ "$small" = 1 ]; then
  sizes=64,128
  peers=(--small --reps 2)
else
  sizes=1024,2048,4096
  peers=(--reps 5)
fi
for dtype in float32 float16; do
  run node packages/tensor-gpu/bench/webgpu-matmul.mjs --quick --sizes=$sizes --dtype=$dtype
  run node tooling/bench/peers.mjs --backend webgpu --only lm --dtype $dtype "${peers[@]}"
done
if [ "$small" = 1 ]; then
  run node packages/tensor-gpu/bench/webgpu-rows.mjs --small
  run node packages/tensor-gpu/bench/webgpu-submits.mjs --small --reps=2
else
  run node packages/tensor-gpu/bench/webgpu-rows.mjs
  run node packages/tensor-gpu/bench/webgpu-submits.mjs
fi
say "done: $(wc -l < "$out") lines in $out"
