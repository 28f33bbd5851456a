// The peers benchmark's workloads on lm (@lm/tensor-gpu), written with the engine's ops the way the model
// packages use them; peers_torch.py builds the same networks in PyTorch, op for op.
// Every workload is a function of a backend that returns { step(), sync(), dispose() }: step() runs once
// (its tensors are freed inside a scope), sync() waits for the backend's queued work.

/** The shapes of the table (issue #18); `small` shrinks them for a smoke run (CI, SwiftShader). */
export function workloadShapes(small, dtype = 'float32') {
  const s = small
    ? { bert: { layers: 2, hidden: 64, heads: 4, ffn: 256, seq: 32 }, mlm: { layers: 2, hidden: 64, heads: 4, ffn: 256, vocab: 512, seq: 32, batch: 2 }, decode: { layers: 2, hidden: 64, heads: 4, ffn: 256, vocab: 1000, cached: 16 } }
    : { bert: { layers: 12, hidden: 768, heads: 12, ffn: 3072, seq: 128 }, mlm: { layers: 4, hidden: 256, heads: 4, ffn: 1024, vocab: 8192, seq: 128, batch: 8 }, decode: { layers: 6, hidden: 512, heads: 8, ffn: 2048, vocab: 32000, cached: 128 } };
  return [
    { name: 'bert-forward-b1', kind: 'bert', ...s.bert, batch: 1 },
    { name: 'bert-forward-b8', kind: 'bert', ...s.bert, batch: 8 },
    { name: 'mlm-train-step', kind: 'mlm', ...s.mlm },
    { name: 'decode-token', kind: 'decode', ...s.decode },
  ].map((w) => ({ ...w, dtype }));
}

function params(lm, backend, shapes, grad, dtype = 'float32') {
  const out = {};
  for (const [name, shape] of Object.entries(shapes)) {
    const isNorm = /(ln|norm).*\.w$/.test(name);
    const isBias = name.endsWith('.b') && !isNorm;
    const t = isNorm ? lm.ones(shape, { backend, dtype }) : isBias ? lm.zeros(shape, { backend, dtype }) : lm.noGrad(() => lm.scope(() => lm.randn(shape, { backend, dtype }).mulScalar(0.02)));
    out[name] = grad ? t.requiresGrad_() : t;
  }
  return out;
}

/** Parameter shapes of `layers` transformer blocks (Linear weights [out, in], as torch stores them). */
function blockShapes(w, layers, hidden, ffn) {
  const s = {};
  for (let l = 0; l < layers; l++) {
    for (const p of ['q', 'k', 'v', 'o']) Object.assign(s, { [`${l}.${p}.w`]: [hidden, hidden], [`${l}.${p}.b`]: [hidden] });
    Object.assign(s, {
      [`${l}.up.w`]: [ffn, hidden], [`${l}.up.b`]: [ffn], [`${l}.down.w`]: [hidden, ffn], [`${l}.down.b`]: [hidden],
      [`${l}.ln1.w`]: [hidden], [`${l}.ln1.b`]: [hidden], [`${l}.ln2.w`]: [hidden], [`${l}.ln2.b`]: [hidden],
    });
  }
  return Object.assign(s, w);
}

const linear = (x, w, b) => x.matmul(w.transpose(0, 1)).add(b);

/** [B, L, H*D] -> [B, H, L, D] (a view) */
const heads = (x, H) => x.reshape([x.shape[0], x.shape[1], H, -1]).permute([0, 2, 1, 3]);
/** [B, H, L, D] -> [B, L, H*D] */
const merge = (x) => x.permute([0, 2, 1, 3]).reshape([x.shape[0], x.shape[2], -1]);

/** A post-LN BERT block (attention, residual + LN, GELU MLP, residual + LN). */
function postLnBlock(lm, p, l, x, H) {
  const hidden = x.shape[2];
  const q = heads(linear(x, p[`${l}.q.w`], p[`${l}.q.b`]), H);
  const k = heads(linear(x, p[`${l}.k.w`], p[`${l}.k.b`]), H);
  const v = heads(linear(x, p[`${l}.v.w`], p[`${l}.v.b`]), H);
  const a = linear(merge(lm.scaledDotProductAttention(q, k, v)), p[`${l}.o.w`], p[`${l}.o.b`]);
  const h = lm.layerNorm(a.add(x), hidden, p[`${l}.ln1.w`], p[`${l}.ln1.b`], 1e-12);
  const up = lm.biasActivation(h.matmul(p[`${l}.up.w`].transpose(0, 1)), p[`${l}.up.b`], 'gelu');
  return lm.layerNorm(linear(up, p[`${l}.down.w`], p[`${l}.down.b`]).add(h), hidden, p[`${l}.ln2.w`], p[`${l}.ln2.b`], 1e-12);
}

function bert(lm, backend, w) {
  const p = params(lm, backend, blockShapes({}, w.layers, w.hidden, w.ffn), false, w.dtype);
  const x = lm.randn([w.batch, w.seq, w.hidden], { backend, dtype: w.dtype });
  return {
    step: () => lm.noGrad(() => lm.scope(() => {
      let h = x;
      for (let l = 0; l < w.layers; l++) h = postLnBlock(lm, p, l, h, w.heads);
    })),
    sync: () => backend.sync(),
    dispose: () => [x, ...Object.values(p)].forEach((t) => t.dispose()),
  };
}

function mlm(lm, backend, w) {
  // Adam's state is float32 only: a float16 training step is mixed precision, the trainer's business
  if (w.dtype !== 'float32') return null;
  const p = params(lm, backend, blockShapes({ 'emb.w': [w.vocab, w.hidden], 'pos.w': [w.seq, w.hidden], 'lnE.w': [w.hidden], 'lnE.b': [w.hidden], 'head.w': [w.vocab, w.hidden], 'head.b': [w.vocab] }, w.layers, w.hidden, w.ffn), true);
  const state = Object.fromEntries(Object.entries(p).map(([n, t]) => [n, [lm.zeros(t.shape, { backend }), lm.zeros(t.shape, { backend })]]));
  const n = w.batch * w.seq;
  const ids = lm.tensor(Array.from({ length: n }, (_, i) => (i * 7919) % w.vocab), { backend, dtype: 'int32' }).reshape([w.batch, w.seq]);
  // 15% of the positions carry a target, the rest are ignored (-100), as in BERT's masked-LM objective
  const targets = lm.tensor(Array.from({ length: n }, (_, i) => (i % 20 < 3 ? (i * 104729) % w.vocab : -100)), { backend, dtype: 'int32' });
  let t = 0;
  return {
    step: () => {
      t++;
      lm.scope(() => {
        let h = lm.embedding(p['emb.w'], ids).add(p['pos.w']);
        h = lm.layerNorm(h, w.hidden, p['lnE.w'], p['lnE.b'], 1e-12);
        for (let l = 0; l < w.layers; l++) h = postLnBlock(lm, p, l, h, w.heads);
        const logits = linear(h, p['head.w'], p['head.b']).reshape([n, w.vocab]);
        lm.crossEntropy(logits, targets).backward();
      });
      const h = { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false, maximize: false, biasCorrection1: 1 - 0.9 ** t, biasCorrection2: 1 - 0.999 ** t };
      lm.noGrad(() => {
        for (const [name, param] of Object.entries(p)) {
          const [m, v] = state[name];
          lm.adamStep_(param, param.grad, m, v, null, h);
          param.grad.dispose();
          param.grad = null;
        }
      });
    },
    sync: () => backend.sync(),
    dispose: () => [ids, targets, ...Object.values(p), ...Object.values(state).flat()].forEach((x) => x.dispose()),
  };
}

function decode(lm, backend, w) {
  const p = params(lm, backend, blockShapes({ 'emb.w': [w.vocab, w.hidden], 'lnF.w': [w.hidden], 'lnF.b': [w.hidden], 'head.w': [w.vocab, w.hidden] }, w.layers, w.hidden, w.ffn), false, w.dtype);
  const D = w.hidden / w.heads;
  const kv = () => lm.randn([1, w.heads, w.cached, D], { backend, dtype: w.dtype });
  const cache = Array.from({ length: w.layers }, () => [kv(), kv()]);
  const token = lm.tensor([[17]], { backend, dtype: 'int32' });
  return {
    // one pre-LN decoder step: the new token attends to the cached keys/values plus its own
    step: () => lm.noGrad(() => lm.scope(() => {
      let x = lm.embedding(p['emb.w'], token); // [1, 1, hidden]
      for (let l = 0; l < w.layers; l++) {
        const h = lm.layerNorm(x, w.hidden, p[`${l}.ln1.w`], p[`${l}.ln1.b`]);
        const q = heads(linear(h, p[`${l}.q.w`], p[`${l}.q.b`]), w.heads);
        const k = lm.concat([cache[l][0], heads(linear(h, p[`${l}.k.w`], p[`${l}.k.b`]), w.heads)], 2); // [1, H, cached + 1, D]
        const v = lm.concat([cache[l][1], heads(linear(h, p[`${l}.v.w`], p[`${l}.v.b`]), w.heads)], 2);
        x = x.add(linear(merge(lm.scaledDotProductAttention(q, k, v)), p[`${l}.o.w`], p[`${l}.o.b`]));
        const h2 = lm.layerNorm(x, w.hidden, p[`${l}.ln2.w`], p[`${l}.ln2.b`]);
        const up = lm.biasActivation(h2.matmul(p[`${l}.up.w`].transpose(0, 1)), p[`${l}.up.b`], 'gelu');
        x = x.add(linear(up, p[`${l}.down.w`], p[`${l}.down.b`]));
      }
      const logits = lm.layerNorm(x, w.hidden, p['lnF.w'], p['lnF.b']).matmul(p['head.w'].transpose(0, 1)); // [1, 1, vocab]
      logits.argmax(-1);
    })),
    sync: () => backend.sync(),
    dispose: () => [token, ...Object.values(p), ...cache.flat()].forEach((x) => x.dispose()),
  };
}

/** The workload on lm, or null when it does not apply to w.dtype. */
export function buildLm(lm, backend, w) {
  return { bert, mlm, decode }[w.kind](lm, backend, w);
}
