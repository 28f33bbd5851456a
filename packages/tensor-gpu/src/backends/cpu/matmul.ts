// Matmul for the cpu backend: hands strided [batch, M, K] @ [batch, K, N] operands to the GEMM
// engine (WebAssembly SIMD + worker threads, see gemm/), created lazily on first use.

import type { View } from '../../backend.js';
import { heapOf } from './gemm/heap.js';
import { createGemm, type Gemm, type GemmOperand } from './gemm/index.js';

interface Engine {
  describe(): string;
  /** Storage the engine's threads can read in place (the GEMM's shared memory), or null. */
  alloc(length: number): Float32Array | null;
  /** out[outOffset + bt*outStrides[0] + m*outStrides[1] + n]; contiguous [batch, M, N] by default. */
  run(a: View, aData: Float32Array, b: View, bData: Float32Array, out: Float32Array, outOffset: number, outStrides?: readonly [number, number]): void;
  dispose(): void;
}

/** Plain JS fallback: i-k-j loop over a packed, row-contiguous B. */
function jsMatmul(a: View, aData: Float32Array, b: View, bData: Float32Array, out: Float32Array, outOffset: number, outStrides?: readonly [number, number]): void {
  const [batch, M, K] = a.shape;
  const N = b.shape[2];
  const [sob, som] = outStrides ?? [M * N, N];
  const [sab, sam, sak] = a.strides;
  const [sbb, sbk, sbn] = b.strides;
  const packed = new Float32Array(K * N);
  const row = new Float64Array(N);
  for (let bt = 0; bt < batch; bt++) {
    const bBase = b.offset + bt * sbb;
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) packed[k * N + n] = bData[bBase + k * sbk + n * sbn];
    const aBase = a.offset + bt * sab;
    for (let m = 0; m < M; m++) {
      row.fill(0);
      for (let k = 0; k < K; k++) {
        const av = aData[aBase + m * sam + k * sak];
        if (av === 0) continue;
        const pk = k * N;
        for (let n = 0; n < N; n++) row[n] += av * packed[pk + n];
      }
      const o = outOffset + bt * sob + m * som;
      for (let n = 0; n < N; n++) out[o + n] = row[n];
    }
  }
}

const jsEngine: Engine = {
  describe: () => 'js',
  alloc: () => null,
  run: jsMatmul,
  dispose: () => {},
};

/** The wasm GEMM, created on first use (compiles the module and starts the worker threads). */
function gemmEngine(): Engine {
  let gemm: Gemm | null = null;
  const get = () => (gemm ??= createGemm());
  return {
    describe: () => {
      const g = get();
      return g.simd === 'scalar' ? 'js' : `wasm ${g.simd}, ${g.threads} thread${g.threads === 1 ? '' : 's'}`;
    },
    alloc: (length) => get().alloc(length),
    run: (a, aData, b, bData, out, outOffset, outStrides) => {
      const [batch, M, K] = a.shape;
      const N = b.shape[2];
      const operand = (v: View, data: Float32Array): GemmOperand => ({ data, offset: v.offset, strides: [v.strides[0], v.strides[1], v.strides[2]] });
      // the whole array and an offset (not a subarray): the GEMM writes storage of its own memory in place
      const [sob, som] = outStrides ?? [M * N, N];
      get().matmul(operand(a, aData), operand(b, bData), out, batch, M, N, K, { offset: outOffset, strides: [sob, som] });
    },
    dispose: () => {
      gemm?.dispose();
      gemm = null;
    },
  };
}

let engine: Engine = gemmEngine();

/** Swaps the engine (tests compare the wasm GEMM with the plain JS loop). Returns the previous one. */
export function setMatmulEngine(next: Engine | 'js' | 'gemm'): Engine {
  const prev = engine;
  engine = next === 'js' ? jsEngine : next === 'gemm' ? gemmEngine() : next;
  return prev;
}

/** Gives back an array from `matmulKernel.alloc` to the memory it came from (a no-op for any other array). */
export function releaseStorage(a: Float32Array): void {
  heapOf(a)?.release(a);
}

export const matmulKernel: Engine = {
  describe: () => engine.describe(),
  alloc: (length) => engine.alloc(length),
  run: (a, aData, b, bData, out, outOffset, outStrides) => engine.run(a, aData, b, bData, out, outOffset, outStrides),
  dispose: () => engine.dispose(),
};
