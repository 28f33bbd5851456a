// Attention's head split and merge on the cpu backend: contiguous copies (backend.copy calls and the
// floats they move) in one BERT-base layer's forward, and the 12-layer forward's time, batch 1 and 8,
// with and without a padding mask [B, 1, 1, L]. --base DIR also runs another build's dist (e.g. main's)
// in the same process, alternating runs, so before/after is one run on one load.
// Usage: node bench/heads.mjs [--base DIR] [--reps N]
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as current from '../dist/index.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const baseDir = opt('--base', null);
const reps = Number(opt('--reps', 5));
const builds = [['current', current]];
if (baseDir) builds.unshift(['base', await import(pathToFileURL(resolve(baseDir, 'index.js')).href)]);

const [hidden, H, ffn, L] = [768, 12, 3072, 128];

function layerParams(lm, backend) {
  const r = (shape) => lm.noGrad(() => lm.scope(() => lm.randn(shape, { backend }).mulScalar(0.02)));
  const p = {};
  for (const n of ['q', 'k', 'v', 'o']) Object.assign(p, { [`${n}.w`]: r([hidden, hidden]), [`${n}.b`]: r([hidden]) });
  Object.assign(p, { 'up.w': r([ffn, hidden]), 'up.b': r([ffn]), 'down.w': r([hidden, ffn]), 'down.b': r([hidden]) });
  Object.assign(p, { 'ln1.w': lm.ones([hidden], { backend }), 'ln1.b': lm.zeros([hidden], { backend }), 'ln2.w': lm.ones([hidden], { backend }), 'ln2.b': lm.zeros([hidden], { backend }) });
  return p;
}

/** A post-LN BERT block as megatron-bert writes it: heads are views, the context merge a reshape. */
function block(lm, p, x, mask) {
  const [B] = x.shape;
  const linear = (t, n) => t.matmul(p[`${n}.w`].transpose(0, 1)).add(p[`${n}.b`]);
  const heads = (t) => t.reshape(B, L, H, hidden / H).permute(0, 2, 1, 3); // [B, H, L, D], a view
  const ctx = lm.scaledDotProductAttention(heads(linear(x, 'q')), heads(linear(x, 'k')), heads(linear(x, 'v')), { mask });
  const merged = ctx.permute(0, 2, 1, 3).reshape(B, L, hidden); // [B, L, H*D]
  const h = lm.layerNorm(linear(merged, 'o').add(x), hidden, p['ln1.w'], p['ln1.b'], 1e-12);
  const up = lm.biasActivation(h.matmul(p['up.w'].transpose(0, 1)), p['up.b'], 'gelu');
  return lm.layerNorm(linear(up, 'down').add(h), hidden, p['ln2.w'], p['ln2.b'], 1e-12);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cases = [];
for (const [name, lm] of builds) {
  const backend = lm.cpu();
  const p = layerParams(lm, backend);
  for (const B of [1, 8]) {
    for (const masked of [false, true]) {
      const x = lm.randn([B, L, hidden], { backend });
      const mask = masked ? lm.tensor(Array.from({ length: B * L }, (_, i) => (i % L < L - 7 ? 0 : -1e4)), { backend }).reshape(B, 1, 1, L) : null;
      // count the copies of one layer
      const copy = backend.copy.bind(backend);
      let calls = 0;
      let floats = 0;
      backend.copy = (src, dst) => {
        calls++;
        floats += dst.shape.reduce((n, d) => n * d, 1);
        copy(src, dst);
      };
      lm.noGrad(() => lm.scope(() => block(lm, p, x, mask)));
      backend.copy = copy;
      const run = () => lm.noGrad(() => lm.scope(() => {
        let h = x;
        for (let l = 0; l < 12; l++) h = block(lm, p, h, mask);
      }));
      run();
      cases.push({ build: name, lm, batch: B, masked, copies_per_layer: calls, copied_floats_per_layer: floats, run, times: [] });
    }
  }
}
// alternate builds run by run, so both see the same load
for (let r = 0; r < reps; r++) {
  for (const c of cases) {
    const t0 = performance.now();
    c.run();
    c.times.push(performance.now() - t0);
  }
}
for (const c of cases) {
  console.log(JSON.stringify({ bench: 'bert-base-12-layer-forward', build: c.build, batch: c.batch, seq: L, padding_mask: c.masked, copies_per_layer: c.copies_per_layer, copied_floats_per_layer: c.copied_floats_per_layer, median_ms: +median(c.times).toFixed(1) }));
}
console.log(JSON.stringify({ load: (await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').trim() }));
for (const [, lm] of builds) lm.cpu().destroy();
