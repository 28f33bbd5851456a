// `pnpm bench`: every benchmark of this package, one JSON line per measurement.
//   ops.mjs           ops on the built package, cpu and webgpu (matmul, softmax, layer norm, attention, embedding)
//   gemm.mjs          the cpu GEMM alone, with @tensorflow/tfjs-backend-wasm side by side
//   webgpu-matmul.mjs the WebGPU matmul kernels on the available adapter
// Pass --quick for a shorter run.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const extra = process.argv.slice(2);
let failed = false;
for (const script of ['ops.mjs', 'gemm.mjs', 'webgpu-matmul.mjs']) {
  const r = spawnSync(process.execPath, ['--expose-gc', `${here}${script}`, ...extra], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`bench: ${script} exited with ${r.status}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
