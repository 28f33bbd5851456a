// The row kernels' workgroup reductions (kernels/workgroup-reduce.ts) with subgroup shuffles and with the
// shared-memory tree: both backends' results against the cpu backend's own kernels, rows long enough for
// both workgroup sizes (64 threads, 256 from 2048 elements), NaN / -inf rows, gradients. SwiftShader
// offers the `subgroups` feature (4-lane subgroups), so CI runs the subgroup path for real.
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../backend.js';
import { crossEntropy, layerNorm, logSoftmax, rmsNorm, tensor, type Tensor } from '../../index.js';
import { packQuantizedRows, quantizedMatmul, quantizedRowWords } from '../../ops/quantized-matmul.js';
import { compareArrays, hostInput, testCpuBackend } from '../../testing/index.js';
import { webgpuRequired } from '../../testing/backends.js';
import { createWebGPUBackend, type WebGPUBackend } from './index.js';
import { findAdapter } from './device.js';

let on: WebGPUBackend | null = null;
let linear: WebGPUBackend | null = null;
let off: WebGPUBackend | null = null;
let adapterHas = false;
try {
  adapterHas = (await findAdapter()).features.has('subgroups' as GPUFeatureName);
  on = await createWebGPUBackend({ subgroups: true });
  linear = await createWebGPUBackend({ subgroups: 'linear' });
  off = await createWebGPUBackend({ subgroups: false });
} catch (e) {
  if (webgpuRequired()) throw e;
}
afterAll(() => {
  on?.destroy();
  linear?.destroy();
  off?.destroy();
});
/** Each way to reduce: subgroup slots from subgroup_id (where WGSL has it), from lid / size, the tree. */
const variants = () => [on!, linear!, off!];
const label = (be: WebGPUBackend) => `subgroups ${be.rt.subgroups}`;

type Host = Float32Array | Int32Array | Uint8Array;

/** Row inputs: normal values, with a NaN row, an all -inf row and a row with some -inf when `special`. */
function rows(shape: number[], seed: number, special: boolean): Float32Array {
  const x = Float32Array.from(hostInput({ shape, kind: 'normal' }, seed));
  if (!special) return x;
  const n = shape[shape.length - 1];
  x[n + 5] = NaN;
  x.fill(-Infinity, 2 * n, 3 * n);
  for (let j = 3 * n; j < 4 * n; j += 3) x[j] = -Infinity;
  return x;
}

async function run(backend: Backend, shape: number[]): Promise<Record<string, Host>> {
  const n = shape[shape.length - 1];
  const x = (special: boolean) => tensor(rows(shape, 1, special), shape, { backend }).requiresGrad_();
  const g = tensor(hostInput({ shape, kind: 'normal' }, 2), shape, { backend });
  const out: Record<string, Host> = {};
  const withGrad = async (name: string, f: (t: Tensor) => Tensor) => {
    const t = x(false);
    const y = f(t);
    out[name] = await y.data();
    y.backward(y.rank === g.rank ? g : g.sum(-1)); // crossEntropy's per-row losses take a [N] gradient
    out[`${name} grad`] = await t.grad!.data();
  };
  await withGrad('softmax', (t) => t.softmax(-1));
  await withGrad('logSoftmax', (t) => logSoftmax(t, -1));
  // NaN and -inf rows: forward only (the gradient of a NaN row is NaN by IEEE rules that SwiftShader's exp
  // does not follow)
  out['softmax, NaN and -inf rows'] = await x(true).softmax(-1).data();
  out['logSoftmax, NaN and -inf rows'] = await logSoftmax(x(true), -1).data();
  const w = tensor(hostInput({ shape: [n], kind: 'normal' }, 3), [n], { backend });
  const b = tensor(hostInput({ shape: [n], kind: 'normal' }, 4), [n], { backend });
  await withGrad('layerNorm', (t) => layerNorm(t, n, w, b, 1e-5));
  await withGrad('rmsNorm', (t) => rmsNorm(t, w, 1e-6));
  const targets = tensor(Int32Array.from({ length: shape[0] }, (_, i) => (i === 1 ? -100 : (i * 7) % n)), [shape[0]], { backend, dtype: 'int32' });
  await withGrad('crossEntropy', (t) => crossEntropy(t, targets, { reduction: 'none', labelSmoothing: 0.1 }));
  const plain = tensor(rows(shape, 5, false), shape, { backend });
  out.sum = await plain.sum(-1).data();
  out.max = await plain.max(-1).data();
  out.argmax = await plain.argmax(-1).data();
  out.sumAll = await plain.sum().data();
  // int32 rows with ties: exact sums, the first index of the maximum
  const ints = tensor(Int32Array.from(hostInput({ shape, kind: 'normal' }, 6), (v) => Math.round(v * 2)), shape, { backend, dtype: 'int32' });
  out['int sum'] = await ints.sum(-1).data();
  out['int argmax'] = await ints.argmax(-1).data();
  out['int argmin'] = await ints.argmin(-1).data();
  // int8 weights [7, n] against x [3, n]: one reduction per row of x (the reduction called repeatedly)
  const bytes = Int8Array.from(hostInput({ shape: [7, n], kind: 'normal' }, 7), (v) => Math.max(-127, Math.min(127, Math.round(v * 40))));
  const words = packQuantizedRows(bytes, 7, n);
  const wq = tensor(words, [7, quantizedRowWords(8, n)], { backend, dtype: 'int32' });
  const scale = tensor(Float32Array.from({ length: 7 }, (_, i) => 0.01 * (i + 1)), [7], { backend });
  const xq = tensor(hostInput({ shape: [3, n], kind: 'normal' }, 8), [3, n], { backend });
  out['quantizedMatmul int8'] = await quantizedMatmul(xq, wq, scale, { bits: 8, inFeatures: n }).data();
  return out;
}

describe.skipIf(!on)('row reductions with and without subgroups (webgpu)', () => {
  it('uses subgroups exactly when the adapter offers them and the option allows', () => {
    expect(on!.subgroups).toBe(adapterHas);
    expect(linear!.rt.subgroups).toBe(adapterHas ? 'linear' : false);
    expect(off!.subgroups).toBe(false);
    expect(off!.rt.subgroups).toBe(false);
    // CI's SwiftShader offers them: the subgroup path must not be silently untested there
    if (webgpuRequired() && on!.isSoftware) expect(on!.subgroups).toBe(true);
  });
  it('LM_WEBGPU_SUBGROUPS=off turns them off, the option wins over it, and other values are refused', async () => {
    const saved = process.env.LM_WEBGPU_SUBGROUPS;
    try {
      process.env.LM_WEBGPU_SUBGROUPS = 'off';
      const envOff = await createWebGPUBackend();
      expect(envOff.subgroups).toBe(false);
      envOff.destroy();
      const forced = await createWebGPUBackend({ subgroups: true });
      expect(forced.subgroups).toBe(adapterHas);
      forced.destroy();
      process.env.LM_WEBGPU_SUBGROUPS = 'no';
      await expect(createWebGPUBackend()).rejects.toThrow("webgpu: LM_WEBGPU_SUBGROUPS='no' is not one of on, off");
    } finally {
      if (saved === undefined) delete process.env.LM_WEBGPU_SUBGROUPS;
      else process.env.LM_WEBGPU_SUBGROUPS = saved;
    }
  });
  for (const shape of [
    [5, 100],
    [4, 2051],
    [6, 33],
  ]) {
    it(`[${shape.join(', ')}]: every row kernel equals the cpu backend's, subgroups (both slot placements) and the tree`, async () => {
      const want = await run(testCpuBackend(), shape);
      for (const be of variants()) {
        const got = await run(be, shape);
        for (const key of Object.keys(want)) {
          const r = compareArrays(got[key], want[key], 2e-5, 2e-5);
          expect(r.ok, `${label(be)}, ${key}: max |difference| ${r.maxAbs} at ${r.at}`).toBe(true);
        }
      }
    }, 300_000);
  }
  it('a long row split into chunks reduces in two stages, subgroups (both slot placements) and the tree', async () => {
    const shape = [2, 70001];
    const host = Float32Array.from(hostInput({ shape, kind: 'normal' }, 9));
    host[70001 + 4242] = 9; // the maximum of row 1, twice: the first index wins
    host[70001 + 60000] = 9;
    const go = async (backend: Backend) => {
      const x = tensor(host, shape, { backend });
      return { sum: await x.sum(-1).data(), max: await x.max(-1).data(), argmax: await x.argmax(-1).data() };
    };
    const want = await go(testCpuBackend());
    expect(Array.from(want.argmax)[1]).toBe(4242);
    for (const be of variants()) {
      const got = await go(be);
      for (const key of ['sum', 'max', 'argmax'] as const) {
        const r = compareArrays(got[key], want[key], 1e-3, 1e-5);
        expect(r.ok, `${label(be)}, ${key}: max |difference| ${r.maxAbs} at ${r.at}`).toBe(true);
      }
    }
  }, 300_000);
});
