// tooling/scripts/gpu-bench.sh --small end to end on whatever WebGPU adapter Dawn finds (SwiftShader in CI):
// the script must run through and write the JSON lines a hardware run will write.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';

const root = fileURLToPath(new URL('../../..', import.meta.url));

test('gpu-bench.sh --small writes matmul, workload and row-kernel lines for float32, and float16 lines or the reason', { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'gpu-bench-'));
  try {
    const out = join(dir, 'out.jsonl');
    const r = spawnSync('bash', [join(root, 'tooling/scripts/gpu-bench.sh'), '--small', '--out', out], { cwd: root, encoding: 'utf8' });
    assert.equal(r.status, 0, `gpu-bench.sh exited ${r.status}: ${r.stderr.slice(-2000)}`);
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const f32 = rows.filter((x) => x.dtype === 'float32');
    const matmul = f32.filter((x) => x.op === 'matmul');
    assert.deepEqual(matmul.map((x) => x.M), [64, 128]);
    for (const x of matmul) assert.ok(x.gflops > 0 && x.adapter.startsWith('webgpu'), JSON.stringify(x));
    const work = f32.filter((x) => x.workload);
    assert.deepEqual(work.map((x) => x.workload), ['bert-forward-b1', 'bert-forward-b8', 'mlm-train-step', 'decode-token']);
    for (const x of work) assert.ok(x.engine === 'lm-webgpu' && x.median_ms > 0 && x.ms.length === 2, JSON.stringify(x));
    const f16 = rows.filter((x) => x.dtype === 'float16');
    assert.equal(f16.length, 1 + 4);
    for (const x of f16) assert.ok(x.median_ms > 0 || /shader-f16|float32 state/.test(x.skipped), JSON.stringify(x));
    // The row kernels with subgroup reductions and with the shared-memory tree (SwiftShader offers subgroups).
    const rowKernels = rows.filter((x) => ['softmax', 'logSoftmax', 'layerNorm', 'rmsNorm', 'sum'].includes(x.op));
    const tree = rowKernels.filter((x) => x.subgroups === false);
    assert.deepEqual(tree.map((x) => x.op), ['softmax', 'logSoftmax', 'layerNorm', 'rmsNorm', 'sum']);
    const withSubgroups = rowKernels.filter((x) => x.subgroups === true);
    if (withSubgroups.length === 0) assert.ok(rows.some((x) => x.op === 'rows' && /no subgroups/.test(x.skipped)));
    else assert.deepEqual(withSubgroups.map((x) => x.op), tree.map((x) => x.op));
    for (const x of rowKernels) assert.ok(x.median_ms > 0 && x.gbps > 0, JSON.stringify(x));
    const submits = rows.filter((x) => x.op === 'submits');
    // Each batch size with the runtime's bind-group cache (its default limit) and without it (limit 0).
    assert.deepEqual(submits.map((x) => [x.batch_dispatches, x.bind_group_cache]), [[16, 4096], [16, 0], [64, 4096], [64, 0], [1024, 4096], [1024, 0]]);
    for (const x of submits) assert.ok(x.workload === 'decode-token' && x.submits_per_step >= 1 && x.dispatches_per_step > x.submits_per_step, JSON.stringify(x));
    // Without the cache every dispatch makes a bind group (what the cache saves is tested in
    // bind-group-cache.test.ts: at --reps=2 a cached step may still be a cold one).
    for (const x of submits.filter((r) => r.bind_group_cache === 0)) assert.equal(x.bind_groups_per_step, x.dispatches_per_step, JSON.stringify(x));
    for (const x of submits.filter((r) => r.bind_group_cache > 0)) assert.ok(x.bind_groups_per_step <= x.dispatches_per_step, JSON.stringify(x));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
