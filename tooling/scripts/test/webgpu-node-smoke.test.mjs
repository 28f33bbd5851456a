// WebGPU smoke test in Node: a raw WGSL compute kernel on Dawn (SwiftShader on machines without a
// GPU), its result read back and checked. Skipped only when no adapter exists and LM_REQUIRE_WEBGPU
// is not set; with LM_REQUIRE_WEBGPU=1 a missing adapter is a failure.
import { describe, expect, it } from 'vitest';
import { describeAdapter, findNodeAdapter, requireWebGPU } from '../webgpu-node.mjs';

const found = await findNodeAdapter();
const skip = !found.adapter && !requireWebGPU;
if (skip) console.warn(`[webgpu-node-smoke] SKIPPED: ${found.reason} (set LM_REQUIRE_WEBGPU=1 to fail instead)`);

const SHADER = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> data: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x < arrayLength(&data)) { data[id.x] = data[id.x] * 2.0 + 1.0; }
}`;

describe.skipIf(skip)('WebGPU in Node (Dawn)', () => {
  it('finds an adapter', () => {
    expect(found.adapter, found.reason).not.toBeNull();
    console.log(`[webgpu-node-smoke] adapter: ${describeAdapter(found.adapter)}` +
      (found.icd ? ` (VK_ICD_FILENAMES=${found.icd})` : ''));
  });

  it('runs a WGSL compute kernel and reads the result back', async () => {
    expect(found.adapter, found.reason).not.toBeNull();
    const device = await found.adapter.requestDevice();
    const n = 1024;
    const input = Float32Array.from({ length: n }, (_, i) => i - 512);
    const storage = device.createBuffer({
      size: input.byteLength,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(storage, 0, input);
    const readback = device.createBuffer({
      size: input.byteLength,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const pipeline = device.createComputePipeline({
      layout: 'auto',
      compute: { module: device.createShaderModule({ code: SHADER }), entryPoint: 'main' },
    });
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: storage } }],
    });
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(Math.ceil(n / 64));
    pass.end();
    encoder.copyBufferToBuffer(storage, 0, readback, 0, input.byteLength);
    device.queue.submit([encoder.finish()]);
    await readback.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(readback.getMappedRange().slice(0));
    readback.unmap();
    for (let i = 0; i < n; i++) expect(out[i]).toBe(input[i] * 2 + 1);
    storage.destroy();
    readback.destroy();
    device.destroy();
  });
});
