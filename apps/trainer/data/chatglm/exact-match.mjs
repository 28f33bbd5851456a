// Exact-match of greedy responses on pairs outside the training files (fresh draws of the same
// tasks), for the trainer README: `node data/chatglm/exact-match.mjs` from apps/trainer after
// configs/chatglm-finetune.yaml and configs/chatglm-ptuning.yaml have run (cpu backend).
import { readFileSync } from 'node:fs';
import { ChatGLMConfig, ChatGLMForConditionalGeneration, ChatGLMTokenizer } from '@lm/chatglm';
import { openCheckpoint } from '@lm/dist-ckpt';
import { fromHost, init, noGrad, scope } from '@lm/tensor-gpu';

const here = new URL('.', import.meta.url).pathname;
const out = new URL('../../out/', import.meta.url).pathname;
const words = 'red blue green yellow black white cat dog cow bird fish tree sun moon star rain'.split(' ');
let s = 2024;
const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648), s / 2147483648);
const seen = new Set([...readFileSync(`${here}train.jsonl`, 'utf8').split('\n'), ...readFileSync(`${here}ptuning.jsonl`, 'utf8').split('\n')].filter(Boolean).map((l) => JSON.parse(l).text));

/** n fresh pairs of `make(words)` -> [prompt, response], none in the training files. */
function heldOut(n, make) {
  const pairs = [];
  while (pairs.length < n) {
    const w = Array.from({ length: 2 + Math.floor(rand() * 3) }, () => words[Math.floor(rand() * words.length)]);
    const [p, r] = make(w);
    if (!seen.has(`${p} ${r}`)) pairs.push([p, r]);
  }
  return pairs;
}

// The tokenizer the run exported (ChatGLMTokenizer on data/chatglm/tokenizer/ice_text.model).
const tokenizer = await ChatGLMTokenizer.fromPretrained(`${out}chatglm-finetune/export`);
const [gmask, bos, eos] = tokenizer.convertTokensToIds(['[gMASK]', '<sop>', '<eop>']);

function respond(model, prompt) {
  const ids = [...tokenizer.encode(prompt, null, { addSpecialTokens: false }).inputIds, gmask, bos];
  const start = ids.length;
  while (ids.length - start < 16) {
    const next = noGrad(() => scope(() => model.forward({ inputIds: fromHost(Int32Array.from(ids), [1, ids.length], 'int32'), useCache: false }).logits.select(1, ids.length - 1).argmax(-1).dataSync()[0]));
    if (next === eos) break;
    ids.push(next);
  }
  return tokenizer.decode(ids.slice(start), { skipSpecialTokens: true });
}

function score(name, model, pairs) {
  let hits = 0;
  for (const [p, r] of pairs) if (respond(model, p) === tokenizer.decode(tokenizer.encode(r, null, { addSpecialTokens: false }).inputIds)) hits++;
  console.log(`${name}: exact match ${hits}/${pairs.length} (${((100 * hits) / pairs.length).toFixed(1)}%)`);
}

await init('cpu');
const base = await ChatGLMForConditionalGeneration.fromPretrained(`${out}chatglm-finetune/export`);
base.eval();
const tasks = heldOut(100, (w) => (rand() < 0.5 ? [`repeat ${w.join(' ')} ?`, `${w.join(' ')} .`] : [`reverse ${w.join(' ')} ?`, `${[...w].reverse().join(' ')} .`]));
score('causal-lm (repeat / reverse, held out)', base, tasks);
const bare = heldOut(100, (w) => [`${w.join(' ')} ?`, `${[...w].reverse().join(' ')} .`]);
score('base model on the P-tuning task (no prefix)', base, bare);
// The P-tuned model: the fine-tuned weights, then the prefix alone from the P-tuning export.
const prefixConfig = JSON.parse(readFileSync(`${out}chatglm-ptuning/export/config.json`, 'utf8'));
const withPrefix = new ChatGLMForConditionalGeneration(ChatGLMConfig.fromJSON({ ...base.config.toJSON(), pre_seq_len: prefixConfig.pre_seq_len, prefix_projection: prefixConfig.prefix_projection }));
noGrad(() => withPrefix.loadStateDict(base.stateDict(), { strict: false }));
const ckpt = await openCheckpoint(`${out}chatglm-ptuning/export/model.safetensors`);
await withPrefix.loadPrefix(ckpt);
await ckpt.close();
withPrefix.eval();
score('prefix-lm (P-tuned, held out)', withPrefix, bare);
