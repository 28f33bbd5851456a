// Matmul for the cpu backend: hands strided [batch, M, K] @ [batch, K, N] operands to the GEMM
// engine (WebAssembly SIMD + worker threads, see gemm/), created lazily on first use.

import type { View } from '../../backend.js';

interface Engine {
  describe(): string;
  run(a: View, aData: Float32Array, b: View, bData: Float32Array, out: Float32Array, outOffset: number): void;
  dispose(): void;
}

/** Plain JS fallback: i-k-j loop over a packed, row-contiguous B. */
function jsMatmul(a: View, aData: Float32Array, b: View, bData: Float32Array, out: Float32Array, outOffset: number): void {
  const [batch, M, K] = a.shape;
  const N = b.shape[2];
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
      const o = outOffset + (bt * M + m) * N;
      for (let n = 0; n < N; n++) out[o + n] = row[n];
    }
  }
}

const jsEngine: Engine = {
  describe: () => 'js',
  run: jsMatmul,
  dispose: () => {},
};

let engine: Engine = jsEngine;

/** Swaps in a faster engine (the wasm GEMM registers itself here). */
export function setMatmulEngine(next: Engine): void {
  engine = next;
}

export const matmulKernel: Engine = {
  describe: () => engine.describe(),
  run: (a, aData, b, bData, out, outOffset) => engine.run(a, aData, b, bData, out, outOffset),
  dispose: () => engine.dispose(),
};
