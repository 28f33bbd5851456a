// A/B: this package's built dist against another build of it (say, main's), in one process, the two
// interleaved and the fastest of several trials kept, so a busy machine disturbs both alike.
// Usage: node bench/ab.mjs <other-dist-dir> [--quick]
// One JSON line per measurement: small-op dispatch overhead (us per op) and the fused-kernel ops at
// BERT-base sizes (ms), for `base` (the other build) and `new` (this one).
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [otherDir] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
if (!otherDir) {
  console.error('usage: node bench/ab.mjs <other-dist-dir> [--quick]');
  process.exit(2);
}
const quick = process.argv.includes('--quick');
const builds = {
  base: await import(pathToFileURL(resolve(otherDir, 'index.js')).href),
  new: await import('../dist/index.js'),
};

function cases(lm) {
  const backend = lm.cpu();
  const a = lm.randn([64], { backend });
  const b = lm.randn([64], { backend });
  const ag = a.detach().requiresGrad_();
  const x = lm.randn([4096, 768], { backend });
  const w = lm.randn([768], { backend });
  const g = lm.randn([4096, 768], { backend });
  const xg = x.detach().requiresGrad_();
  const q = lm.randn([1, 12, 128, 64], { backend });
  const u = lm.randn([128, 3072], { backend });
  const bu = lm.randn([3072], { backend });
  const logits = lm.randn([1024, 8192], { backend }).requiresGrad_();
  const gl = lm.randn([1024, 8192], { backend });
  const backward = (leaf, grad, f) => () => {
    const y = f();
    y.backward(grad);
    leaf.grad.dispose();
    leaf.grad = null;
    y.dispose();
  };
  return {
    small: {
      'dispatch add [64]': () => a.add(b).dispose(),
      'dispatch gelu [64]': () => a.gelu().dispose(),
      'dispatch softmax [64]': () => a.softmax(-1).dispose(),
      'dispatch layerNorm [64]': () => lm.layerNorm(a, 64).dispose(),
      'dispatch gelu forward+backward [64]': backward(ag, b, () => ag.gelu()),
    },
    large: {
      'softmax [4096,768]': () => x.softmax(-1).dispose(),
      'layerNorm forward+backward [4096,768]': backward(xg, g, () => lm.layerNorm(xg, 768, w, w)),
      'gelu forward+backward [4096,768]': backward(xg, g, () => xg.gelu()),
      'attention [1,12,128,64]': () => lm.scaledDotProductAttention(q, q, q).dispose(),
      'biasActivation gelu [128,3072]': () => lm.biasActivation(u, bu, 'gelu').dispose(),
      'logSoftmax forward+backward [1024,8192]': backward(logits, gl, () => logits.logSoftmax(-1)),
    },
  };
}

const sets = { base: cases(builds.base), new: cases(builds.new) };
const best = {};
const keep = (key, value) => (best[key] = Math.min(best[key] ?? Infinity, value));
const trials = quick ? 6 : 15;
for (let trial = 0; trial < trials; trial++) {
  for (const who of trial % 2 ? ['base', 'new'] : ['new', 'base']) {
    const n = quick ? 500 : 2000;
    for (const [op, fn] of Object.entries(sets[who].small)) {
      for (let i = 0; i < 100; i++) fn();
      const t0 = performance.now();
      for (let i = 0; i < n; i++) fn();
      keep(`${op}|${who}`, ((performance.now() - t0) * 1000) / n);
    }
    if (trial >= 6) continue;
    for (const [op, fn] of Object.entries(sets[who].large)) {
      fn();
      const t0 = performance.now();
      fn();
      keep(`${op}|${who}`, performance.now() - t0);
    }
  }
}
for (const [op, unit] of [...Object.keys(sets.base.small).map((k) => [k, 'us']), ...Object.keys(sets.base.large).map((k) => [k, 'ms'])]) {
  console.log(JSON.stringify({ op, [`base_${unit}`]: +best[`${op}|base`].toFixed(2), [`new_${unit}`]: +best[`${op}|new`].toFixed(2) }));
}
builds.base.cpu().destroy();
builds.new.cpu().destroy();
