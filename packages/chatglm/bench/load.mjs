// Peak memory of fromPretrained on the 6B shapes: `node bench/load.mjs save [dir]` writes a 28-layer int4
// random-weight model with savePretrained (THUDM's layout: int8 nibble pairs, float16 weight_scale and
// tables, 4.97 GB); `node bench/load.mjs load [dir] [float16|float32]` loads it with that embeddingsDtype
// in a fresh process and prints one JSON line (time, weight bytes, RSS after and peak).
import * as lm from '@lm/tensor-gpu';
import { withoutInit, initInPlace } from '@lm/layers';
import { ChatGLMConfig, ChatGLMForConditionalGeneration, QuantizedLinear } from '../dist/index.js';
const dir = process.argv[3] ?? '/tmp/chatglm-int4-28';
const gb = (b) => Math.round((b / 2 ** 30) * 1000) / 1000;
const backend = lm.cpu();
if (process.argv[2] === 'save') {
  const config = new ChatGLMConfig({ numLayers: 28, quantizationBit: 4, maxSequenceLength: 2048 });
  const model = withoutInit(() => new ChatGLMForConditionalGeneration(config, { backend, embeddingsDtype: 'float16' }));
  let seed = 7;
  lm.noGrad(() => {
    for (const [, m] of model.namedModules()) if (m instanceof QuantizedLinear) {
      const w = new Int32Array(m.weight.size); let x = seed++ | 1;
      for (let i = 0; i < w.length; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; w[i] = x; }
      m.setBuffer('weight', lm.fromHost(w, m.weight.shape, 'int32', backend), { disposeOld: true });
      m.setBuffer('weight_scale', lm.full([m.outFeatures], lm.roundToFloat16(1 / 256), { backend }), { disposeOld: true });
    }
    for (const [name, p] of model.namedParameters()) initInPlace(p, { kind: 'constant', value: name.endsWith('layernorm.weight') ? 1 : 0 });
    const half = lm.numberToFloat16Bits(0.01);
    const word = lm.full([1], (half << 16) | half, { dtype: 'int32', backend });
    model.transformer.word_embeddings.weight.copy_(word);
  });
  await model.savePretrained(dir);
  console.log(JSON.stringify({ saved: dir, peakRssGB: gb(process.resourceUsage().maxRSS * 1024) }));
} else {
  const t0 = performance.now();
  const model = await ChatGLMForConditionalGeneration.fromPretrained(dir, { backend, modelOptions: { embeddingsDtype: process.argv[4] ?? 'float16' } });
  console.log(JSON.stringify({ load: dir, embeddingsDtype: process.argv[4] ?? 'float16', ms: Math.round(performance.now() - t0), tied: model.lm_head.weight === model.transformer.word_embeddings.weight, weightBytesGB: gb(backend.memory().bytes), rssGB: gb(process.memoryUsage().rss), peakRssGB: gb(process.resourceUsage().maxRSS * 1024) }));
}
