// Raw WebGPU, no library: double 1024 numbers in a WGSL compute kernel, read them back, check them.
import { describeAdapter, WebGPUUnavailableError } from './checks.js';
import type { Check } from './checks.js';

const N = 1024;
const SHADER = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> data: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x < arrayLength(&data)) { data[id.x] = data[id.x] * 2.0; }
}`;

export const wgslSmoke: Check = {
  name: `raw WGSL: double ${N} floats`,
  async run() {
    if (!('gpu' in navigator) || !navigator.gpu) throw new WebGPUUnavailableError('navigator.gpu is undefined');
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) throw new WebGPUUnavailableError('navigator.gpu.requestAdapter() returned null');
    const device = await adapter.requestDevice();
    const input = Float32Array.from({ length: N }, (_, i) => i - N / 2 + 0.25);
    const storage = device.createBuffer({
      size: input.byteLength,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    const readback = device.createBuffer({ size: input.byteLength, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(storage, 0, input);
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
    pass.dispatchWorkgroups(Math.ceil(N / 64));
    pass.end();
    encoder.copyBufferToBuffer(storage, 0, readback, 0, input.byteLength);
    device.queue.submit([encoder.finish()]);
    await readback.mapAsync(GPUMapMode.READ);
    const out = new Float32Array(readback.getMappedRange().slice(0));
    readback.unmap();
    device.destroy();

    const wrong = Array.from(out).findIndex((v, i) => v !== input[i] * 2);
    return {
      status: wrong === -1 ? 'pass' : 'fail',
      adapter: describeAdapter(adapter.info),
      detail:
        wrong === -1
          ? `all ${N} values doubled (out[0] = ${out[0]}, out[${N - 1}] = ${out[N - 1]})`
          : `out[${wrong}] = ${out[wrong]}, expected ${input[wrong] * 2}`,
    };
  },
};
