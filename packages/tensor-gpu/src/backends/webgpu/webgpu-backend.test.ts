// WebGPU backend kernels against plain JS references. Skips when no adapter exists unless
// LM_REQUIRE_WEBGPU=1, in which case a missing adapter fails the run.

import { afterAll, describe, expect, it } from 'vitest';
import type { View } from '../../backend.js';
import type { DType } from '../../dtype.js';
import { BackendError, DeviceLostError, DisposedError, IndexError } from '../../errors.js';
import { BINARY, FUSED_BIAS_ACTIVATIONS, FUSED_BINARY, UNARY, biasActivationOp, type BinaryOpName, type BinaryRow, type UnaryOpName } from '../../elementwise-math.js';
import { philoxFill } from '../../random.js';
import { createWebGPUBackend, probeWebGPU, type WebGPUBackend } from './index.js';
import { at, coords, expectClose, gatherHost, rand, randInt, size, view } from './test-helpers.js';
import { matmulVariant } from './kernels/matmul.js';
import { webgpuRequired } from '../../testing/backends.js';

const backend = await createWebGPUBackend().catch((e) => {
  if (webgpuRequired()) throw e;
  return null;
});

afterAll(() => backend?.destroy());

describe.skipIf(!backend)('webgpu backend', () => {
  const be = backend as WebGPUBackend;
  const up = (data: ArrayLike<number>, dtype: DType = 'float32') =>
    be.upload(dtype === 'int32' ? Int32Array.from(data) : dtype === 'bool' ? Uint8Array.from(data) : Float32Array.from(data), dtype);
  const out = (dtype: DType, shape: number[]) => view(be.alloc(dtype, size(shape)), shape);
  const read = async (v: View) => Array.from(await be.read(v));
  const f32 = (x: number) => Math.fround(x);

  it('describes its adapter', async () => {
    expect(be.name).toBe('webgpu');
    expect(be.adapterInfo).toMatch(/^webgpu: /);
    const probe = await probeWebGPU();
    expect(probe.available).toBe(true);
    expect(probe.isSoftware).toBe(be.isSoftware);
  });

  it('takes kernel families from LM_WEBGPU_MATMUL / LM_WEBGPU_ATTENTION, options first, and rejects unknown ones', async () => {
    expect([be.matmulKernel, be.attentionKernel]).toEqual(be.isSoftware ? ['regblock', 'rowwise'] : ['tiled', 'flash']);
    const saved = [process.env.LM_WEBGPU_MATMUL, process.env.LM_WEBGPU_ATTENTION];
    try {
      process.env.LM_WEBGPU_MATMUL = 'tiled';
      process.env.LM_WEBGPU_ATTENTION = 'flash';
      const forced = await createWebGPUBackend();
      expect([forced.matmulKernel, forced.attentionKernel]).toEqual(['tiled', 'flash']);
      forced.destroy();
      const opts = await createWebGPUBackend({ matmulKernel: 'regblock', attentionKernel: 'rowwise' });
      expect([opts.matmulKernel, opts.attentionKernel]).toEqual(['regblock', 'rowwise']);
      opts.destroy();
      process.env.LM_WEBGPU_ATTENTION = 'fast';
      await expect(createWebGPUBackend()).rejects.toThrow("webgpu: LM_WEBGPU_ATTENTION='fast' is not one of auto, rowwise, flash");
    } finally {
      for (const [name, value] of [['LM_WEBGPU_MATMUL', saved[0]], ['LM_WEBGPU_ATTENTION', saved[1]]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  describe('storage', () => {
    it('uploads and reads every host dtype, strided views included', async () => {
      const f = up([1.5, -2, 3.25, 4, 5, 6]);
      expect(await read(view(f, [6]))).toEqual([1.5, -2, 3.25, 4, 5, 6]);
      expect(await read(view(f, [3, 2], [1, 3]))).toEqual([1.5, 4, -2, 5, 3.25, 6]);
      expect(await read(view(f, [2], [2], 1))).toEqual([-2, 4]);
      const i = up([1, -2, 2 ** 30 + 1], 'int32');
      expect(await be.read(view(i, [3]))).toEqual(new Int32Array([1, -2, 2 ** 30 + 1]));
      const b = up([1, 0, 1], 'bool');
      expect(await be.read(view(b, [3]))).toEqual(new Uint8Array([1, 0, 1]));
      expect(await read(view(f, [0]))).toEqual([]);
      for (const s of [f, i, b]) be.free(s);
    });

    it('tracks memory and pools freed buffers', async () => {
      const before = be.memory();
      const s = be.alloc('float32', 1000);
      expect(be.memory().storages).toBe(before.storages + 1);
      expect(be.memory().bytes).toBe(before.bytes + 4000);
      be.free(s);
      be.free(s); // double free is ignored
      expect(be.memory().storages).toBe(before.storages);
      expect(be.memory().pooledBytes).toBeGreaterThan(before.pooledBytes);
      expect(() => be.fill(view(s, [1000]), 1)).toThrow(DisposedError);
    });

    it('rejects float16 without shader-f16 and allocations past maxBufferSize', () => {
      if (!be.supportsFloat16) expect(() => be.alloc('float16', 4)).toThrow(/shader-f16/);
      expect(() => be.alloc('float32', 2 ** 40)).toThrow(BackendError);
    });

    it('reuses a freed buffer for an upload without corrupting pending work', async () => {
      const a = up([1, 2, 3, 4]);
      const tmp = be.alloc('float32', 4);
      be.unary('affine', view(a, [4]), view(tmp, [4]), 10, 0);
      const res = be.alloc('float32', 4);
      be.unary('affine', view(tmp, [4]), view(res, [4]), 1, 1);
      be.free(tmp); // pending commands still read tmp
      const b = up([7, 7, 7, 7]); // likely the same pooled buffer
      expect(await read(view(res, [4]))).toEqual([11, 21, 31, 41]);
      expect(await read(view(b, [4]))).toEqual([7, 7, 7, 7]);
      for (const s of [a, res, b]) be.free(s);
    });
  });

  describe('fill / arange / copy / random', () => {
    it('fills contiguous and strided views in every dtype', async () => {
      const f = out('float32', [3, 4]);
      be.fill(f, -1.5);
      be.fill(view(f.storage, [3, 2], [4, 2], 1), 7);
      expect(await read(f)).toEqual([-1.5, 7, -1.5, 7, -1.5, 7, -1.5, 7, -1.5, 7, -1.5, 7]);
      const i = out('int32', [3]);
      be.fill(i, 2 ** 30 + 3);
      expect(await read(i)).toEqual([2 ** 30 + 3, 2 ** 30 + 3, 2 ** 30 + 3]);
      const b = out('bool', [2]);
      be.fill(b, 1);
      expect(await read(b)).toEqual([1, 1]);
      const big = out('float32', [70000 * 300]); // > 65535 workgroups: 2-D grid
      be.fill(big, 2);
      const r = await be.read(big);
      expect(r[0]).toBe(2);
      expect(r[r.length - 1]).toBe(2);
      for (const v of [f, i, b, big]) be.free(v.storage);
    });

    it('arange in float32 and exact int32', async () => {
      const f = out('float32', [10]);
      be.arange(f, 0.5, 0.25);
      expectClose(await read(f), Array.from({ length: 10 }, (_, i) => 0.5 + i * 0.25));
      const i = out('int32', [5]);
      be.arange(i, 2 ** 28, 3);
      expect(await read(i)).toEqual([0, 1, 2, 3, 4].map((k) => 2 ** 28 + 3 * k));
      be.free(f.storage);
      be.free(i.storage);
    });

    it('copies strided views with casts (rank 1..5)', async () => {
      const host = rand(720, -5, 5, 3);
      const s = up(host);
      const shapes: [number[], number[], number][] = [
        [[7], [3], 2],
        [[4, 5], [1, 4], 0],
        [[2, 3, 4], [12, 1, 3], 0],
        [[2, 3, 2, 5], [0, 5, 120, 1], 3],
        [[2, 3, 4, 5, 6], [1, 2, 6, 24, 120], 0],
      ];
      for (const [shape, strides, offset] of shapes) {
        const src = view(s, shape, strides, offset);
        const want = gatherHost(host, src);
        const d = out('float32', shape);
        be.copy(src, d);
        expect(await read(d)).toEqual(want.map(f32));
        const di = out('int32', shape);
        be.copy(src, di);
        expect(await read(di)).toEqual(want.map((x) => Math.trunc(x) + 0));
        const db = out('bool', shape);
        be.copy(di, db);
        expect(await read(db)).toEqual(want.map((x) => (Math.trunc(x) !== 0 ? 1 : 0)));
        const back = out('float32', shape);
        be.copy(db, back);
        expect(await read(back)).toEqual(want.map((x) => (Math.trunc(x) !== 0 ? 1 : 0)));
        for (const v of [d, di, db, back]) be.free(v.storage);
      }
      // Copy into a strided destination (a column of a matrix).
      const m = out('float32', [3, 3]);
      be.fill(m, 0);
      be.copy(view(s, [3]), view(m.storage, [3], [3], 1));
      expect(await read(m)).toEqual([0, f32(host[0]), 0, 0, f32(host[1]), 0, 0, f32(host[2]), 0]);
      be.free(m.storage);
      be.free(s);
    });

    it('random matches philoxFill: uniform/bernoulli bit-identical, normal within 1e-5', async () => {
      const n = 4099;
      for (const [seed, offset] of [
        [0, 0],
        [42, 2 ** 32 - 100], // counter low word wraps: carry into the high word
        [2 ** 40 + 12345, 7],
      ]) {
        for (const [kind, p0, p1] of [
          ['uniform', 0, 1],
          ['uniform', -1, 1],
          ['uniform', 2, 6],
          ['bernoulli', 0.3, 0],
          ['normal', 0, 1],
        ] as const) {
          const want = new Float32Array(n);
          philoxFill(want, kind, seed, offset, p0, p1);
          const o = out('float32', [n]);
          be.random(o, kind, seed, offset, p0, p1);
          const got = await be.read(o);
          if (kind === 'normal') expectClose(got, want, 1e-5, 0, `normal seed ${seed}`);
          else expect(got).toEqual(want);
          be.free(o.storage);
        }
      }
    });
  });

  describe('elementwise', () => {
    const inputs = (op: string): number[] => {
      const base = Array.from(rand(200, -4, 4, 11));
      base.push(0, -0, 1, -1, 0.5, -0.5, 2.5, -2.5, 1e-6, -1e-6, 30, -30, 100, -100, 1e-30);
      if (op === 'isNan') base.push(NaN);
      return base;
    };
    const unaryParams: Partial<Record<UnaryOpName, [number, number]>> = {
      affine: [1.5, -0.25],
      powScalar: [3, 0],
      rpowScalar: [1.7, 0],
      clamp: [-0.5, 0.75],
      leakyRelu: [0.1, 0],
      eqScalar: [0.5, 0],
      neScalar: [0.5, 0],
      ltScalar: [0.5, 0],
      leScalar: [0.5, 0],
      gtScalar: [0.5, 0],
      geScalar: [0.5, 0],
    };
    const outDtype = (kind: string, inDtype: DType): DType =>
      kind === 'bool' ? 'bool' : kind === 'float' || kind === 'promote-float' ? 'float32' : inDtype;

    for (const op of Object.keys(UNARY) as UnaryOpName[]) {
      it(`unary ${op}`, async () => {
        const row = UNARY[op];
        const [p0, p1] = unaryParams[op] ?? [0, 0];
        const host = inputs(op).map(f32);
        // A strided view: the data reversed through a transposed [k, 2] layout.
        const n = host.length - (host.length % 2);
        const x = up(host);
        const xv = view(x, [n / 2, 2], [1, n / 2]);
        const o = out(outDtype(row.out, 'float32'), [n / 2, 2]);
        be.unary(op, xv, o, p0, p1);
        const want = gatherHost(host, xv).map((v) => f32(row.cpu(v, p0, p1)));
        const tol: Record<string, [number, number]> = { erf: [2e-6, 1e-5], gelu: [2e-6, 1e-5], exp: [1e-37, 2e-6], rpowScalar: [0, 1e-5] } // f32 pow via exp2(b log2 a): error grows with |b log2 a|;
        const [atol, rtol] = tol[op] ?? [1e-6, 4e-6];
        expectClose(await read(o), want, atol, rtol, op);
        be.free(x);
        be.free(o.storage);
      });
    }

    it('unary edge values: pow semantics, tanh/sigmoid at large |x|, int32 inputs', async () => {
      const cases: [UnaryOpName, number, number[]][] = [
        ['powScalar', 3, [-2, -0.5, 0, -0, 2, NaN]],
        ['powScalar', 0, [-2, 0, NaN, Infinity]],
        ['powScalar', 0.5, [-4, 4, 0, Infinity]],
        ['powScalar', -2, [-2, 0, 4]],
        ['powScalar', -3, [-0, 0, 2]],
        ['powScalar', 100, [-1.01, 1.01, -1]],
        ['rpowScalar', -2, [3, 2, 0.5, -1]],
        ['tanh', 0, [-1000, -20, 20, 1000, 1e-4]],
        ['sigmoid', 0, [-1000, 1000, 0]],
        ['softplus', 0, [-100, 100, 0]],
        ['expm1', 0, [1e-7, -1e-7, 80]],
        ['log1p', 0, [1e-7, -0.5, -1]],
      ];
      for (const [op, p0, xs] of cases) {
        const x = up(xs);
        const o = out('float32', [xs.length]);
        be.unary(op, view(x, [xs.length]), o, p0, 0);
        const want = xs.map((v) => f32(UNARY[op].cpu(v, p0, 0)));
        expectClose(await read(o), want, 1e-7, 4e-6, `${op}(${p0})`);
        be.free(x);
        be.free(o.storage);
      }
      const big = [2 ** 25 + 1, -(2 ** 25) - 3, 7];
      const xi = up(big, 'int32');
      for (const op of ['neg', 'abs', 'square', 'relu'] as UnaryOpName[]) {
        const o = out('int32', [3]);
        be.unary(op, view(xi, [3]), o, 0, 0);
        const want = big.map((v) => UNARY[op].cpu(v, 0, 0) | 0);
        if (op === 'relu') expect(await read(o)).toEqual(want.map((v, i) => (big[i] > 0 ? Math.fround(big[i]) : 0)));
        else expect(await read(o)).toEqual(want);
        be.free(o.storage);
      }
      be.free(xi);
    });

    // Every BINARY row through be.binary, and every FUSED_BINARY row through its fused kernel.
    const binaryKernels: [string, BinaryRow, (a: View, b: View, o: View) => void][] = [
      ...(Object.keys(BINARY) as BinaryOpName[]).map((op): [string, BinaryRow, (a: View, b: View, o: View) => void] => [op, BINARY[op], (a, b, o) => be.binary(op, a, b, o)]),
      ['geluBackward', FUSED_BINARY.geluBackward, (a, b, o) => be.fused.geluBackward!(a, b, o, 'none')],
      ['geluTanhBackward', FUSED_BINARY.geluTanhBackward, (a, b, o) => be.fused.geluBackward!(a, b, o, 'tanh')],
      ...FUSED_BIAS_ACTIVATIONS.map((act): [string, BinaryRow, (a: View, b: View, o: View) => void] => [
        biasActivationOp(act),
        FUSED_BINARY[biasActivationOp(act)],
        (a, b, o) => be.fused.biasActivation!(act, a, b, o),
      ]),
    ];
    for (const [op, row, run] of binaryKernels) {
      it(`binary ${op} with broadcast and transposed views`, async () => {
        const ha = Array.from(rand(15, -3, 3, 5)).map((v, i) => (i % 4 === 0 ? 0 : f32(v)));
        const hb = Array.from(rand(20, -3, 3, 6)).map((v, i) => (i % 5 === 0 ? 0 : f32(v)));
        ha[3] = hb[3]; // some equal pairs
        const a = up(ha);
        const b = up(hb);
        const shape = [3, 4, 5];
        const av = view(a, shape, [5, 0, 1]); // a [3, 1, 5] broadcast over dim 1
        const bv = view(b, shape, [0, 1, 4]); // b [5, 4] transposed, broadcast over dim 0
        const o = out(row.out === 'bool' ? 'bool' : 'float32', shape);
        run(av, bv, o);
        const A = gatherHost(ha, av);
        const B = gatherHost(hb, bv);
        const want = A.map((x, i) => f32(row.cpu(x, B[i])));
        expectClose(await read(o), want, 1e-6, op === 'pow' ? 4e-6 : 1e-6, op);
        be.free(a);
        be.free(b);
        be.free(o.storage);
      });
    }

    it('binary int32 arithmetic is exact beyond 2^24 and pow follows Math.pow', async () => {
      const ha = [2 ** 26 + 1, -(2 ** 27) + 3, 123456789, -5];
      const hb = [3, 5, 2, 7];
      const a = up(ha, 'int32');
      const b = up(hb, 'int32');
      for (const op of ['add', 'sub', 'mul', 'maximum', 'minimum'] as BinaryOpName[]) {
        const o = out('int32', [4]);
        be.binary(op, view(a, [4]), view(b, [4]), o);
        expect(await read(o)).toEqual(ha.map((x, i) => BINARY[op].cpu(x, hb[i]) | 0));
        be.free(o.storage);
      }
      const o = out('bool', [4]);
      be.binary('gt', view(a, [4]), view(b, [4]), o);
      expect(await read(o)).toEqual([1, 0, 1, 0]);
      be.free(o.storage);
      const pa = up([-2, -2, -8, 0, 0, 2, -1, 5, NaN]);
      const pb = up([3, 2, 1 / 3, -1, 0, 0.5, 0.5, 0, 0]);
      const po = out('float32', [9]);
      be.binary('pow', view(pa, [9]), view(pb, [9]), po);
      expectClose(await read(po), [-8, 4, NaN, Infinity, 1, Math.SQRT2, NaN, 1, 1].map(f32), 0, 2e-7, 'pow');
      for (const s of [a, b, pa, pb, po.storage]) be.free(s);
    });

    it('where with broadcast bool condition and int32 values', async () => {
      const c = up([1, 0, 1], 'bool');
      const a = up([10, 20, 30, 40, 50, 60], 'int32');
      const b = up([-1, -2], 'int32');
      const o = out('int32', [2, 3]);
      be.where(view(c, [2, 3], [0, 1]), view(a, [2, 3]), view(b, [2, 3], [1, 0]), o);
      expect(await read(o)).toEqual([10, -1, 30, 40, -2, 60]);
      const fo = out('float32', [2, 3]);
      be.where(view(c, [2, 3], [0, 1]), view(a, [2, 3]), view(b, [2, 3], [1, 0]), fo);
      expect(await read(fo)).toEqual([10, -1, 30, 40, -2, 60]);
      for (const s of [c, a, b, o.storage, fo.storage]) be.free(s);
    });

    it('in-place ops (input aliasing the output) are correct', async () => {
      const x = up([1, 2, 3, 4]);
      be.binary('add', view(x, [4]), view(x, [4], [0]), view(x, [4]));
      expect(await read(view(x, [4]))).toEqual([2, 3, 4, 5]);
      be.free(x);
    });
  });

  describe('reductions and rows', () => {
    const refReduce = (op: string, row: number[]): number => {
      switch (op) {
        case 'sum':
          return row.reduce((s, v) => s + v, 0);
        case 'prod':
          return row.reduce((s, v) => s * v, 1);
        case 'max':
          return row.some(Number.isNaN) ? NaN : Math.max(...row);
        case 'min':
          return row.some(Number.isNaN) ? NaN : Math.min(...row);
        case 'argmax': {
          let b = 0;
          for (let i = 1; i < row.length; i++) {
            if (Number.isNaN(row[b])) break;
            if (Number.isNaN(row[i]) || row[i] > row[b]) b = i;
          }
          return b;
        }
        default: {
          let b = 0;
          for (let i = 1; i < row.length; i++) {
            if (Number.isNaN(row[b])) break;
            if (Number.isNaN(row[i]) || row[i] < row[b]) b = i;
          }
          return b;
        }
      }
    };
    for (const [outer, inner] of [
      [7, 13],
      [3, 1000],
      [2, 5000],
      [2, 70000],
      [1, 1],
    ]) {
      it(`reduce ops on [${outer}, ${inner}] with ties and NaN`, async () => {
        // Values on a coarse grid so there are many ties.
        const host = Array.from(rand(outer * inner + 3, -1, 1, inner)).map((v) => Math.round(v * 8) / 8);
        if (outer > 1) host[3 + inner + Math.floor(inner / 2)] = NaN; // row 1 has a NaN
        const x = up(host);
        const xv = view(x, [outer, inner], [inner, 1], 3);
        const rows = Array.from({ length: outer }, (_, r) => host.slice(3 + r * inner, 3 + (r + 1) * inner));
        for (const op of ['sum', 'prod', 'max', 'min', 'argmax', 'argmin'] as const) {
          const isArg = op.startsWith('arg');
          const o = out(isArg ? 'int32' : 'float32', [outer]);
          be.reduce(op, xv, o);
          const want = rows.map((r) => refReduce(op, op === 'prod' ? r.map((v) => 1 + v / 1e4) : r));
          if (op === 'prod') continue; // checked below on a well-conditioned input
          const got = await read(o);
          if (isArg) expect(got).toEqual(want);
          else expectClose(got, want, 1e-6 * inner, 1e-5, `${op} [${outer},${inner}]`);
          be.free(o.storage);
        }
        be.free(x);
      });
    }

    it('prod, int32 sums (exact) and bool counts', async () => {
      const host = Array.from(rand(600, 0.9, 1.1, 4));
      const x = up(host);
      const o = out('float32', [2]);
      be.reduce('prod', view(x, [2, 300]), o);
      const want = [0, 1].map((r) => host.slice(r * 300, r * 300 + 300).reduce((p, v) => p * f32(v), 1));
      expectClose(await read(o), want, 0, 1e-4, 'prod');
      const hi = Array.from(randInt(2000, -(2 ** 20), 2 ** 20, 9));
      const xi = up(hi, 'int32');
      const oi = out('int32', [2]);
      be.reduce('sum', view(xi, [2, 1000]), oi);
      expect(await read(oi)).toEqual([0, 1].map((r) => hi.slice(r * 1000, r * 1000 + 1000).reduce((s, v) => s + v, 0)));
      const xb = up([1, 0, 1, 1, 0, 1, 1, 1], 'bool');
      const ob = out('int32', [2]);
      be.reduce('sum', view(xb, [2, 4]), ob);
      expect(await read(ob)).toEqual([3, 3]);
      for (const s of [x, o.storage, xi, oi.storage, xb, ob.storage]) be.free(s);
    });

    for (const [outer, inner] of [
      [5, 7],
      [3, 300],
      [2, 3000],
      [70000, 2],
    ]) {
      it(`softmax and log-softmax on [${outer}, ${inner}]`, async () => {
        const host = Array.from(rand(outer * inner, -20, 20, outer + inner)).map((v, i) => (i % 17 === 5 ? v + 1000 : v));
        if (inner > 2) host[1] = -Infinity;
        const x = up(host);
        for (const log of [false, true]) {
          const o = out('float32', [outer, inner]);
          be.fused.softmax!(view(x, [outer, inner]), o, log);
          const want: number[] = [];
          for (let r = 0; r < outer; r++) {
            const row = host.slice(r * inner, (r + 1) * inner).map(f32);
            const m = Math.max(...row);
            const s = row.reduce((a, v) => a + Math.exp(v - m), 0);
            for (const v of row) want.push(log ? v - m - Math.log(s) : Math.exp(v - m) / s);
          }
          expectClose(await read(o), want, 1e-6, 1e-5, `softmax log=${log}`);
          be.free(o.storage);
        }
        be.free(x);
      });
    }

    it('softmax of an all -inf row is NaN (PyTorch)', async () => {
      const x = up([-Infinity, -Infinity, 1, 2]);
      const o = out('float32', [2, 2]);
      be.fused.softmax!(view(x, [2, 2]), o, false);
      const got = await read(o);
      expect(got.slice(0, 2).every(Number.isNaN)).toBe(true);
      expectClose(got.slice(2), [1 / (1 + Math.E), Math.E / (1 + Math.E)]);
      be.free(x);
      be.free(o.storage);
    });

    for (const [outer, inner] of [
      [4, 37],
      [2, 3000],
    ]) {
      it(`layerNorm and RMS norm on [${outer}, ${inner}]`, async () => {
        const host = Array.from(rand(outer * inner, -2, 2, 21)).map((v) => v + 100); // large mean: tests stability
        const hw = Array.from(rand(2 * inner, 0.5, 1.5, 22));
        const hb = Array.from(rand(inner, -1, 1, 23));
        const x = up(host);
        const w = up(hw);
        const b = up(hb);
        const wv = view(w, [inner], [2], 1); // strided weight
        for (const rms of [false, true]) {
          for (const withWB of [false, true]) {
            const o = out('float32', [outer, inner]);
            be.fused.layerNorm!(view(x, [outer, inner]), withWB ? wv : null, withWB ? view(b, [inner]) : null, o, 1e-5, rms);
            const want: number[] = [];
            for (let r = 0; r < outer; r++) {
              const row = host.slice(r * inner, (r + 1) * inner).map(f32);
              const mean = rms ? 0 : row.reduce((a, v) => a + v, 0) / inner;
              const vari = row.reduce((a, v) => a + (v - mean) ** 2, 0) / inner;
              row.forEach((v, j) => {
                let y = (v - mean) / Math.sqrt(vari + 1e-5);
                if (withWB) y = y * f32(hw[1 + 2 * j]) + (rms ? 0 : f32(hb[j]));
                want.push(y);
              });
            }
            expectClose(await read(o), want, rms ? 1e-5 : 2e-3, 1e-5, `layerNorm rms=${rms} wb=${withWB}`);
            be.free(o.storage);
          }
        }
        for (const s of [x, w, b]) be.free(s);
      });
    }

    for (const [outer, n, inner, dtype] of [
      [2, 5, 3, 'float32'],
      [1, 5000, 1, 'float32'],
      [3, 2000, 2, 'int32'],
      [2, 7, 1, 'bool'],
    ] as const) {
      it(`cumsum [${outer}, ${n}, ${inner}] ${dtype}`, async () => {
        const host =
          dtype === 'float32'
            ? Array.from(rand(outer * n * inner, -1, 1, 31)).map(f32)
            : dtype === 'int32'
              ? Array.from(randInt(outer * n * inner, -1000, 1000, 32))
              : Array.from(randInt(outer * n * inner, 0, 2, 33));
        const x = up(host, dtype);
        const odt = dtype === 'float32' ? 'float32' : 'int32';
        const o = out(odt, [outer, n, inner]);
        be.cumsum(view(x, [outer, n, inner]), o);
        const want = new Array<number>(host.length);
        for (let a = 0; a < outer; a++)
          for (let c = 0; c < inner; c++) {
            let s = 0;
            for (let j = 0; j < n; j++) {
              const e = (a * n + j) * inner + c;
              s += host[e];
              want[e] = s;
            }
          }
        if (odt === 'int32') expect(await read(o)).toEqual(want);
        else expectClose(await read(o), want, 1e-4, 1e-5, 'cumsum');
        be.free(x);
        be.free(o.storage);
      });
    }

    for (const [outer, n] of [
      [3, 37],
      [2, 1],
      [4, 256],
      [1, 65536],
    ]) {
      it(`sort rows of [${outer}, ${n}] ascending/descending, stable with ties and NaN`, async () => {
        const host = Array.from(randInt(outer * n, -20, 20, n)).map((v) => v / 4);
        if (n > 10) {
          host[3] = NaN;
          host[7] = NaN;
        }
        const x = up(host);
        for (const descending of [false, true]) {
          const vals = out('float32', [outer, n]);
          const idx = out('int32', [outer, n]);
          be.sort(view(x, [outer, n]), vals, idx, descending);
          const wantV: number[] = [];
          const wantI: number[] = [];
          for (let r = 0; r < outer; r++) {
            const ids = Array.from({ length: n }, (_, j) => j);
            const key = (j: number) => host[r * n + j];
            ids.sort((p, q) => {
              const a = key(p);
              const b = key(q);
              const na = Number.isNaN(a);
              const nb = Number.isNaN(b);
              if (na || nb) return na && nb ? 0 : na ? (descending ? -1 : 1) : descending ? 1 : -1;
              return descending ? b - a : a - b;
            }); // Array.prototype.sort is stable
            for (const j of ids) {
              wantV.push(key(j));
              wantI.push(j);
            }
          }
          expect(await read(idx)).toEqual(wantI);
          expect(await read(vals)).toEqual(wantV);
          be.free(vals.storage);
          be.free(idx.storage);
        }
        be.free(x);
      });
    }

    it('sort int32 rows exactly', async () => {
      const host = [2 ** 30, -(2 ** 30), 2 ** 30 - 1, 5, 5, -7];
      const x = up(host, 'int32');
      const vals = out('int32', [1, 6]);
      const idx = out('int32', [1, 6]);
      be.sort(view(x, [1, 6]), vals, idx, false);
      expect(await read(vals)).toEqual([-(2 ** 30), -7, 5, 5, 2 ** 30 - 1, 2 ** 30]);
      expect(await read(idx)).toEqual([1, 5, 3, 4, 2, 0]);
      for (const s of [x, vals.storage, idx.storage]) be.free(s);
    });
  });

  describe('matmul', () => {
    const refMatmul = (ha: ArrayLike<number>, av: View, hb: ArrayLike<number>, bv: View): number[] => {
      const [batch, M, K] = av.shape;
      const N = bv.shape[2];
      const outv = new Array<number>(batch * M * N).fill(0);
      for (let z = 0; z < batch; z++)
        for (let i = 0; i < M; i++)
          for (let j = 0; j < N; j++) {
            let s = 0;
            for (let k = 0; k < K; k++) s += ha[at(av, [z, i, k])] * hb[at(bv, [z, k, j])];
            outv[(z * M + i) * N + j] = s;
          }
      return outv;
    };
    // [batch, M, K, N, a layout, b layout]
    type Layout = 'row' | 'trans' | 'bcast' | 'offset';
    const cases: [number, number, number, number, Layout, Layout][] = [
      [1, 64, 64, 64, 'row', 'row'],
      [1, 33, 29, 17, 'row', 'row'],
      [2, 32, 48, 40, 'row', 'trans'],
      [3, 13, 8, 12, 'trans', 'row'],
      [2, 9, 16, 20, 'bcast', 'bcast'],
      [1, 1, 40, 300, 'row', 'row'],
      [1, 2, 37, 5, 'row', 'trans'],
      [2, 70, 1, 6, 'offset', 'offset'],
      [1, 5, 260, 264, 'row', 'row'],
      [1, 67, 130, 70, 'trans', 'trans'],
      // 128 x 128 tiles of the 'tiled' kernel (M, N >= 128): both vec4 loads of b, a's vec4 and scalar
      // loads, ragged edge tiles (each variant compiles for seconds on SwiftShader: kept to two)
      [1, 130, 40, 136, 'trans', 'trans'],
      [2, 128, 64, 132, 'bcast', 'row'],
    ];
    const layout = (host: Float32Array, storage: ReturnType<typeof be.upload>, batch: number, r: number, c: number, l: Layout): View => {
      void host;
      switch (l) {
        case 'row':
          return view(storage, [batch, r, c]);
        case 'trans':
          return view(storage, [batch, r, c], [r * c, 1, r]);
        case 'bcast':
          return view(storage, [batch, r, c], [0, c, 1]);
        case 'offset':
          return view(storage, [batch, r, c], [r * c + 1, c, 1], 3);
      }
    };
    const backends: [string, () => Promise<WebGPUBackend>][] = [
      ['default', async () => be],
      ['tiled', () => createWebGPUBackend({ matmulKernel: 'tiled' })],
    ];
    for (const [name, make] of backends) {
      it(`matmul (${name} kernel) on contiguous, transposed, broadcast and offset views`, async () => {
        const bk = await make();
        const variants = new Set<string>();
        try {
          for (const [batch, M, K, N, la, lb] of cases) {
            const ha = rand(batch * (M * K + 1) + 8, -1, 1, M + K);
            const hb = rand(batch * (K * N + 1) + 8, -1, 1, K + N);
            const sa = bk.upload(ha, 'float32');
            const sb = bk.upload(hb, 'float32');
            const av = layout(ha, sa, batch, M, K, la);
            const bv = layout(hb, sb, batch, K, N, lb);
            const o = view(bk.alloc('float32', batch * M * N), [batch, M, N]);
            bk.matmul(av, bv, o);
            expectClose(await bk.read(o), refMatmul(ha, av, hb, bv), 1e-5 * K, 1e-5, `${name} ${batch}x${M}x${K}x${N} ${la}/${lb}`);
            variants.add(matmulVariant(av, bv, bk.matmulKernel));
            for (const s of [sa, sb, o.storage]) bk.free(s);
          }
          if (name === 'tiled') {
            // every load mode and both tile sizes of the hardware kernel ran
            for (const v of ['tiled64x64-as-bs', 'tiled64x64-avk-bvn', 'tiled64x64-avk-bvk', 'tiled128x128-as-bvk', 'tiled128x128-avk-bvn']) {
              expect(variants).toContain(v);
            }
          }
        } finally {
          if (bk !== be) bk.destroy();
        }
      }, 300_000); // pipeline compiles take seconds each on a loaded SwiftShader
    }

    it('matmul of int32 inputs and K = 0', async () => {
      const a = up([1, 2, 3, 4, 5, 6], 'int32');
      const b = up([1, 0, 0, 1, 1, 1], 'int32');
      const o = out('int32', [1, 2, 2]);
      be.matmul(view(a, [1, 2, 3]), view(b, [1, 3, 2]), o);
      expect(await read(o)).toEqual([4, 5, 10, 11]);
      const z = out('float32', [1, 2, 2]);
      be.matmul(view(a, [1, 2, 0], [0, 0, 1]), view(b, [1, 0, 2], [0, 2, 1]), z);
      expect(await read(z)).toEqual([0, 0, 0, 0]);
      for (const s of [a, b, o.storage, z.storage]) be.free(s);
    });
  });

  describe('gather / scatterAdd', () => {
    it('gathers along each axis with strided x and broadcast index', async () => {
      const hx = Array.from(rand(60, -5, 5, 41)).map(f32);
      const x = up(hx);
      const xv = view(x, [3, 4, 5], [1, 15, 3]); // permuted
      for (const axis of [0, 1, 2]) {
        const oshape = [3, 4, 5];
        oshape[axis] = 6;
        const hi = Array.from(randInt(size(oshape), 0, xv.shape[axis], 42 + axis));
        const idx = up(hi, 'int32');
        const iv = view(idx, oshape);
        const o = out('float32', oshape);
        be.gather(xv, iv, axis, o, 'gather');
        const want = Array.from({ length: size(oshape) }, (_, e) => {
          const c = coords(e, oshape);
          c[axis] = hi[e];
          return hx[at(xv, c)];
        });
        expect(await read(o)).toEqual(want);
        for (const s of [idx, o.storage]) be.free(s);
      }
      // Broadcast index (stride 0) and int32 data: embedding-style lookup.
      const table = up(Array.from({ length: 12 }, (_, i) => 2 ** 26 + i), 'int32');
      const ids = up([2, 0, 3], 'int32');
      const emb = out('int32', [3, 3]);
      be.gather(view(table, [4, 3]), view(ids, [3, 3], [1, 0]), 0, emb, 'embedding');
      expect(await read(emb)).toEqual([6, 7, 8, 0, 1, 2, 9, 10, 11].map((v) => 2 ** 26 + v));
      for (const s of [x, table, ids, emb.storage]) be.free(s);
    });

    it('raises IndexError at the next read naming the op, then recovers', async () => {
      const x = up([1, 2, 3, 4]);
      const idx = up([0, 4, 1], 'int32');
      const o = out('float32', [3]);
      be.gather(view(x, [4]), view(idx, [3]), 0, o, 'indexSelect');
      await expect(be.read(o)).rejects.toThrow(IndexError);
      const idx2 = up([0, -1, 1], 'int32');
      be.gather(view(x, [4]), view(idx2, [3]), 0, o, 'take');
      await expect(be.sync()).rejects.toThrow(/take: index -1 is out of range \[0, 4\)/);
      be.gather(view(x, [4]), view(idx2, [3], [0], 0), 0, o, 'take');
      expect(await read(o)).toEqual([1, 1, 1]);
      const s = out('float32', [4]);
      be.fill(s, 0);
      be.scatterAdd(s, view(idx, [3]), view(x, [3]), 0, 'indexAdd');
      await expect(be.read(s)).rejects.toThrow(/indexAdd: index 4/);
      expect(await read(s)).toEqual([1, 3, 0, 0]); // the bad element was skipped, the rest applied
      for (const st of [x, idx, idx2, o.storage, s.storage]) be.free(st);
    });

    it('scatterAdd accumulates duplicates atomically (float32, int32) along any axis', async () => {
      const n = 5000;
      const hs = Array.from(rand(n, -1, 1, 51)).map(f32);
      const hi = Array.from(randInt(n, 0, 7, 52));
      const src = up(hs);
      const idx = up(hi, 'int32');
      const o = out('float32', [7]);
      be.fill(o, 1);
      be.scatterAdd(o, view(idx, [n]), view(src, [n]), 0, 'scatterAdd');
      const want = new Array<number>(7).fill(1);
      hi.forEach((j, e) => (want[j] += hs[e]));
      expectClose(await read(o), want, 1e-4, 1e-5, 'scatterAdd f32');
      // 2-D along axis 1 with int32 values.
      const hv = [1, 2, 3, 4, 5, 6];
      const v = up(hv, 'int32');
      const ii = up([0, 0, 2, 1, 1, 1], 'int32');
      const oi = out('int32', [2, 3]);
      be.fill(oi, 10);
      be.scatterAdd(oi, view(ii, [2, 3]), view(v, [2, 3]), 1, 'scatterAdd');
      expect(await read(oi)).toEqual([13, 10, 13, 10, 25, 10]);
      for (const s of [src, idx, o.storage, v, ii, oi.storage]) be.free(s);
    });
  });

  describe('attention', () => {
    const refAttention = (
      hq: number[], qv: View, hk: number[], kv: View, hv: number[], vv: View,
      mask: { host: number[]; view: View; bool: boolean } | null, scale: number, causal: boolean,
    ): number[] => {
      const [B, Lq, D] = qv.shape;
      const Lk = kv.shape[1];
      const Dv = vv.shape[2];
      const res: number[] = [];
      for (let b = 0; b < B; b++)
        for (let i = 0; i < Lq; i++) {
          const s: number[] = [];
          for (let j = 0; j < Lk; j++) {
            let d = 0;
            for (let t = 0; t < D; t++) d += hq[at(qv, [b, i, t])] * hk[at(kv, [b, j, t])];
            d *= scale;
            if (mask) {
              const m = mask.host[at(mask.view, [b, i, j])];
              if (mask.bool) d = m ? d : -3.4028234663852886e38;
              else d += m;
            }
            if (causal && j > i + Lk - Lq) d = -3.4028234663852886e38;
            s.push(d);
          }
          const m = Math.max(...s);
          const p = s.map((x) => (x === -Infinity ? 0 : Math.exp(x - m)));
          const l = p.reduce((a, x) => a + x, 0);
          for (let t = 0; t < Dv; t++) {
            let acc = 0;
            for (let j = 0; j < Lk; j++) acc += p[j] * hv[at(vv, [b, j, t])];
            res.push(acc / l);
          }
        }
      return res;
    };

    const cases: { B: number; Lq: number; Lk: number; D: number; Dv: number; mask: 'none' | 'add' | 'bool'; causal: boolean; permuted: boolean }[] = [
      { B: 2, Lq: 5, Lk: 7, D: 16, Dv: 12, mask: 'none', causal: false, permuted: false },
      { B: 2, Lq: 5, Lk: 7, D: 16, Dv: 12, mask: 'none', causal: true, permuted: true },
      { B: 3, Lq: 4, Lk: 9, D: 8, Dv: 80, mask: 'add', causal: false, permuted: true },
      { B: 2, Lq: 6, Lk: 6, D: 160, Dv: 8, mask: 'bool', causal: false, permuted: false },
      { B: 2, Lq: 3, Lk: 8, D: 4, Dv: 4, mask: 'bool', causal: true, permuted: false },
      { B: 1, Lq: 6, Lk: 4, D: 4, Dv: 4, mask: 'none', causal: true, permuted: false },
      { B: 1, Lq: 1, Lk: 33, D: 64, Dv: 64, mask: 'add', causal: true, permuted: false },
    ];
    // The flash kernel (forced: SwiftShader picks 'rowwise') over the same cases, plus blocks of query
    // rows and key tiles with ragged edges, both tile configurations (head dims <= 64, <= 128) and a
    // head dim above 128 (which falls back to the row kernel).
    const flashCases: typeof cases = [
      ...cases,
      { B: 2, Lq: 37, Lk: 50, D: 64, Dv: 64, mask: 'none', causal: false, permuted: true },
      { B: 1, Lq: 40, Lk: 40, D: 32, Dv: 48, mask: 'none', causal: true, permuted: false },
      { B: 2, Lq: 19, Lk: 35, D: 24, Dv: 40, mask: 'add', causal: true, permuted: false },
      { B: 1, Lq: 21, Lk: 17, D: 96, Dv: 128, mask: 'bool', causal: false, permuted: true },
      { B: 1, Lq: 12, Lk: 20, D: 128, Dv: 72, mask: 'none', causal: true, permuted: false },
    ];
    let flash: WebGPUBackend | null = null;
    afterAll(() => flash?.destroy());
    for (const kernel of ['default', 'flash'] as const) {
      for (const c of kernel === 'flash' ? flashCases : cases) {
        it(`attention (${kernel}) B${c.B} Lq${c.Lq} Lk${c.Lk} D${c.D} Dv${c.Dv} mask=${c.mask} causal=${c.causal}${c.permuted ? ' permuted' : ''}`, async () => {
          const bk = kernel === 'flash' ? (flash ??= await createWebGPUBackend({ attentionKernel: 'flash' })) : be;
          expect(bk.attentionKernel).toBe(kernel === 'flash' || !be.isSoftware ? 'flash' : 'rowwise'); // the default: rowwise on software adapters, flash on hardware
          const { B, Lq, Lk, D, Dv } = c;
          const hq = Array.from(rand(B * Lq * D, -1, 1, 61)).map(f32);
          const hk = Array.from(rand(B * Lk * D, -1, 1, 62)).map(f32);
          const hv = Array.from(rand(B * Lk * Dv, -1, 1, 63)).map(f32);
          const q = bk.upload(Float32Array.from(hq), 'float32');
          const k = bk.upload(Float32Array.from(hk), 'float32');
          const v = bk.upload(Float32Array.from(hv), 'float32');
          // permuted: stored as [L, B, D] (e.g. a heads/sequence transpose), viewed as [B, L, D].
          const qv = c.permuted ? view(q, [B, Lq, D], [D, B * D, 1]) : view(q, [B, Lq, D]);
          const kv = c.permuted ? view(k, [B, Lk, D], [D, B * D, 1]) : view(k, [B, Lk, D]);
          const vv = c.permuted ? view(v, [B, Lk, Dv], [Dv, B * Dv, 1]) : view(v, [B, Lk, Dv]);
          let mask: { host: number[]; view: View; bool: boolean } | null = null;
          if (c.mask !== 'none') {
            const bool = c.mask === 'bool';
            const hm = bool
              ? Array.from(randInt(Lq * Lk, 0, 2, 64)).map((x, e) => (Math.floor(e / Lk) === 1 ? 0 : x)) // query row 1 fully masked
              : Array.from(rand(Lq * Lk, -2, 2, 65)).map((x, e) => (e % 5 === 0 ? -Infinity : f32(x)));
            const ms = bk.upload(bool ? Uint8Array.from(hm) : Float32Array.from(hm), bool ? 'bool' : 'float32');
            mask = { host: hm, view: view(ms, [B, Lq, Lk], [0, Lk, 1]), bool };
          }
          const o = view(bk.alloc('float32', B * Lq * Dv), [B, Lq, Dv]);
          const scale = 1 / Math.sqrt(D);
          bk.fused.attention!(qv, kv, vv, mask?.view ?? null, o, scale, c.causal);
          const want = refAttention(hq, qv, hk, kv, hv, vv, mask, scale, c.causal);
          expectClose(await bk.read(o), want, 2e-6, 1e-5, 'attention');
          for (const s of [q, k, v, o.storage, ...(mask ? [mask.view.storage] : [])]) bk.free(s);
        });
      }
    }
  });

  describe('limits and lifecycle', () => {
    it('throws BackendError naming the op when a storage exceeds maxStorageBufferBindingSize', async () => {
      const small = await createWebGPUBackend({ limits: { maxStorageBufferBindingSize: 128 * 2 ** 20, maxBufferSize: 256 * 2 ** 20 } });
      try {
        expect(small.maxBindingBytes).toBe(128 * 2 ** 20);
        const n = 33 * 2 ** 20; // 132 MiB of float32
        const s = small.alloc('float32', n);
        expect(() => small.fill(view(s, [n]), 1)).toThrow(/fill: .*exceeds this adapter's maxStorageBufferBindingSize \(134217728 bytes\)/);
        small.free(s);
        expect(() => small.alloc('float32', 2 ** 27)).toThrow(/maxBufferSize/);
      } finally {
        small.destroy();
      }
    });

    it('surfaces uncaptured device errors at the next sync', async () => {
      const b2 = await createWebGPUBackend();
      try {
        b2.device.createBuffer({ size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE });
        await new Promise((r) => setTimeout(r, 50));
        await expect(b2.sync()).rejects.toThrow(BackendError);
        await b2.sync(); // reported once
      } finally {
        b2.destroy();
      }
    });

    it('fails every call with DeviceLostError after the device is lost, and BackendError after destroy()', async () => {
      const b2 = await createWebGPUBackend();
      const s = b2.upload(new Float32Array([1, 2]), 'float32');
      b2.device.destroy();
      await new Promise((r) => setTimeout(r, 50));
      expect(() => b2.fill(view(s, [2]), 0)).toThrow(DeviceLostError);
      await expect(b2.read(view(s, [2]))).rejects.toThrow(DeviceLostError);
      b2.destroy();
      expect(() => b2.alloc('float32', 1)).toThrow(/destroyed/);
    });
  });
});

