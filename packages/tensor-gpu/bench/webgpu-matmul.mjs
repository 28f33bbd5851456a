#!/usr/bin/env node
/**
 * WebGPU matmul benchmark: prints one JSON line per shape,
 *   {"op":"matmul","backend":"webgpu","adapter":...,"kernel":...,"M":..,"N":..,"K":..,"median_ms":..,"gflops":..}
 * timing encode + dispatch + `await backend.sync()` (no read-back), float32, median of the repetitions.
 *
 *   node bench/webgpu-matmul.mjs                 # 256/512/1024 cubes + transformer-ish shapes
 *   node bench/webgpu-matmul.mjs --big           # also 2048^3 (minutes on SwiftShader)
 *   node bench/webgpu-matmul.mjs --kernel=tiled  # force a kernel family (default: chosen by adapter)
 *   node bench/webgpu-matmul.mjs --quick         # fewer repetitions
 *   node bench/webgpu-matmul.mjs --sizes=1024,2048,4096   # only these cubes (gpu-bench.sh)
 *   node bench/webgpu-matmul.mjs --dtype=float16 # float16 operands (needs shader-f16; f32 accumulation);
 *                                                # each line also gives max_rel_err against the float32 product
 *
 * Lines carry the adapter's float32 peak and the fraction reached when it is known: LM_GPU_PEAK_GFLOPS
 * if set, else a small table of datasheet figures matched on the adapter's description.
 *
 * Loads the TypeScript sources through tsx's ESM loader (a devDependency), so no build step is needed.
 * With no GPU, Dawn runs on SwiftShader (found automatically; see /work/shared/WEBGPU.md).
 */
import { register } from 'tsx/esm/api';

register();
const { createWebGPUBackend } = await import('../src/backends/webgpu/index.ts');
const { matmulVariant } = await import('../src/backends/webgpu/kernels/matmul.ts');

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const big = args.includes('--big');
const kernelArg = args.find((a) => a.startsWith('--kernel='))?.slice('--kernel='.length);
const sizesArg = args.find((a) => a.startsWith('--sizes='))?.slice('--sizes='.length);
const dtype = args.find((a) => a.startsWith('--dtype='))?.slice('--dtype='.length) ?? 'float32';

const backend = await createWebGPUBackend(kernelArg ? { matmulKernel: kernelArg } : {});

/** Datasheet float32 peaks (GFLOPS, boost clock, non-tensor-core) for adapters we may be lent. */
const PEAKS = [
  [/H200/i, 66900],
  [/H100.*PCIe/i, 51200],
  [/H100/i, 66900],
  [/A100/i, 19500],
  [/L4\b/i, 30300],
  [/A10G?\b/i, 31200],
  [/RTX 4090/i, 82600],
  [/T4\b/i, 8100],
];
const peak = Number(process.env.LM_GPU_PEAK_GFLOPS) || PEAKS.find(([re]) => re.test(backend.adapterInfo))?.[1] || null;

/** [M, K, N, bLayout] ; bLayout 'row' = b [K, N] row-major, 'trans' = b stored [N, K] (x @ W^T). */
const SHAPES = [
  [256, 256, 256, 'row'],
  [512, 512, 512, 'row'],
  [1024, 1024, 1024, 'row'],
  [512, 768, 768, 'trans'],
  [1, 768, 3072, 'row'],
  [1, 768, 3072, 'trans'],
];
if (big) SHAPES.push([2048, 2048, 2048, 'row']);
if (sizesArg) SHAPES.splice(0, SHAPES.length, ...sizesArg.split(',').map((n) => [Number(n), Number(n), Number(n), 'row']));
if (dtype === 'float16' && !backend.supportsFloat16) {
  console.log(JSON.stringify({ op: 'matmul', backend: 'webgpu', adapter: backend.adapterInfo, dtype, skipped: 'the adapter has no shader-f16' }));
  backend.destroy();
  process.exit(0);
}

function contiguous(shape) {
  const s = new Array(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

for (const [M, K, N, bLayout] of SHAPES) {
  const a = backend.upload(Float32Array.from({ length: M * K }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5), dtype);
  const b = backend.upload(Float32Array.from({ length: K * N }, (_, i) => ((i * 104729) % 1000) / 1000 - 0.5), dtype);
  const o = backend.alloc(dtype, M * N);
  const av = { storage: a, dtype, shape: [1, M, K], strides: contiguous([1, M, K]), offset: 0 };
  const bv =
    bLayout === 'row'
      ? { storage: b, dtype, shape: [1, K, N], strides: contiguous([1, K, N]), offset: 0 }
      : { storage: b, dtype, shape: [1, K, N], strides: [K * N, 1, K], offset: 0 };
  const ov = { storage: o, dtype, shape: [1, M, N], strides: contiguous([1, M, N]), offset: 0 };
  const flops = 2 * M * N * K;
  // Warm-up (pipeline compile) then enough repetitions for ~2 s, at least 3.
  backend.matmul(av, bv, ov);
  await backend.sync();
  const t0 = performance.now();
  backend.matmul(av, bv, ov);
  await backend.sync();
  const once = performance.now() - t0;
  const reps = quick ? 3 : Math.max(3, Math.min(50, Math.ceil(2000 / Math.max(once, 1))));
  const times = [once];
  for (let r = 1; r < reps; r++) {
    const t = performance.now();
    backend.matmul(av, bv, ov);
    await backend.sync();
    times.push(performance.now() - t);
  }
  times.sort((x, y) => x - y);
  const median = times[Math.floor(times.length / 2)];
  const gflops = flops / median / 1e6;
  // float16: the same product from float32 copies of the (float16-rounded) operands, compared.
  let check = {};
  if (dtype === 'float16') {
    const flat = (st, n) => ({ storage: st, dtype, shape: [n], strides: [1], offset: 0 });
    const a32 = backend.upload(await backend.read(flat(a, M * K)), 'float32');
    const b32 = backend.upload(await backend.read(flat(b, K * N)), 'float32');
    const o32 = backend.alloc('float32', M * N);
    const as32 = (v, st) => ({ ...v, storage: st, dtype: 'float32' });
    backend.matmul(as32(av, a32), as32(bv, b32), as32(ov, o32));
    const want = await backend.read(as32(ov, o32));
    const got = await backend.read(ov);
    let maxErr = 0;
    let maxRef = 0;
    for (let i = 0; i < want.length; i++) {
      maxErr = Math.max(maxErr, Math.abs(got[i] - want[i]));
      maxRef = Math.max(maxRef, Math.abs(want[i]));
    }
    check = { max_rel_err_vs_f32: Number((maxErr / maxRef).toExponential(2)) };
    for (const s of [a32, b32, o32]) backend.free(s);
  }
  console.log(
    JSON.stringify({
      op: 'matmul',
      backend: 'webgpu',
      adapter: backend.adapterInfo,
      kernel: matmulVariant(av, bv, backend.matmulKernel),
      M,
      N,
      K,
      b: bLayout,
      dtype,
      median_ms: Number(median.toFixed(3)),
      gflops: Number(gflops.toFixed(3)),
      ...(peak ? { peak_f32_gflops: peak, fraction_of_peak: Number((gflops / peak).toFixed(4)) } : {}),
      ...check,
    }),
  );
  for (const s of [a, b, o]) backend.free(s);
}
backend.destroy();
