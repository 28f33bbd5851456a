#!/usr/bin/env node
// Sentinel-fill rate of an exported span-corruption T5 on held-out sentences, for the trainer README: the
// distinct sentences of the run's validation documents (the trainer's split: seeded hash of (file,
// ordinal) below data.validationFraction, recomputed here). The corpus is generated from templates, so
// each of these sentences also occurs in some training document (the output says how many): what is
// held out is the document, not the fact, and the rate measures recall of trained facts. In each,
// one span of three words is hidden behind <extra_id_0> (the configs' 18-token blocks always hide one
// span of 3 tokens, and every corpus word is one token in both tokenizers): the three words that end
// with the word carrying the fact (the last before the final "."), and, as a second task, three words
// at a seeded position. The model fills
// greedily (`generate`, up to 12 new tokens, stopping at eos); a fill counts when the text between
// <extra_id_0> and <extra_id_1> (or the end) equals the hidden span exactly, word for word. The
// tokenizer is the export's own (spiece.model: T5Tokenizer; vocab.txt: the WordPiece + extra ids), so
// runs on different tokenizers are scored alike.
//
//   node apps/trainer/scripts/t5-fill-rate.mjs <export dir> [corpus dir] [--seed 42] [--validation 0.1]
//   (the seed and fraction must be the run's `seed` and `data.validationFraction`; build first)

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ExtraIdsTokenizer, T5ForConditionalGeneration, T5Tokenizer } from '@lm/t5';
import { init, tensor } from '@lm/tensor-gpu';

const app = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const at = args.indexOf(name);
  if (at < 0) return fallback;
  const [, value] = args.splice(at, 2);
  return Number(value);
};
const seed = flag('--seed', 42);
const validationFraction = flag('--validation', 0.1);
if (!args[0]) {
  console.error('usage: t5-fill-rate.mjs <export dir> [corpus dir] [--seed 42] [--validation 0.1]');
  process.exit(2);
}
const exportDir = resolve(args[0]);
const corpusDir = resolve(args[1] ?? join(app, 'data', 'corpus'));

// The trainer's split (src/core/rng.ts mixSeed / hashUniform, src/core/data.ts STREAM_SPLIT = 5).
function mixSeed(...values) {
  let h = 0x811c9dc5;
  for (const v of values) {
    for (const w of [v >>> 0, Math.floor(v / 4294967296) >>> 0]) {
      let k = Math.imul(w, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      k = Math.imul(k, 0x1b873593);
      h ^= k;
      h = (h << 13) | (h >>> 19);
      h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    }
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
const isValidation = (file, ordinal) => mixSeed(seed, 5, file, ordinal) / 4294967296 < validationFraction;

// Documents: blank-line-separated groups of sentence lines, files in name order (src/data/documents.ts).
const train = new Set();
const held = new Set();
readdirSync(corpusDir)
  .filter((f) => !f.startsWith('.'))
  .sort()
  .forEach((name, file) => {
    let ordinal = 0;
    let doc = [];
    const flush = () => {
      if (doc.length) for (const s of doc) (isValidation(file, ordinal) ? held : train).add(s);
      if (doc.length) ordinal++;
      doc = [];
    };
    for (const line of readFileSync(join(corpusDir, name), 'utf8').split('\n')) {
      if (line.trim() === '') flush();
      else doc.push(line.trim());
    }
    flush();
  });
const sentences = [...held].sort();
const alsoInTraining = sentences.filter((s) => train.has(s)).length;

const backend = await init('cpu');
const tokenizer = existsSync(join(exportDir, 'spiece.model'))
  ? await T5Tokenizer.fromPretrained(exportDir)
  : ExtraIdsTokenizer.fromVocab(readFileSync(join(exportDir, 'vocab.txt'), 'utf8'), { lowercase: true });
const model = await T5ForConditionalGeneration.fromPretrained(exportDir, { backend });
model.eval();
const { eos, pad } = tokenizer.specialTokenIds;
const [s0, s1] = tokenizer instanceof T5Tokenizer ? tokenizer.sentinelIds : [tokenizer.sentinelId(0), tokenizer.sentinelId(1)];

/** The greedy fill of <extra_id_0> in `masked`, as words. */
async function fill(masked) {
  const input = tensor([tokenizer.encode(masked).inputIds], { dtype: 'int32', backend });
  const out = await model.generate(input, { maxNewTokens: 12, eosTokenId: eos });
  input.dispose();
  let ids = out.sequences[0].slice(1).filter((id) => id !== pad && id !== eos);
  if (ids[0] === s0) ids = ids.slice(1);
  if (ids.includes(s1)) ids = ids.slice(0, ids.indexOf(s1));
  return tokenizer.decode(ids, { skipSpecialTokens: true }).trim().split(/\s+/).filter(Boolean).join(' ');
}

let r = seed >>> 0;
const rand = () => ((r = mixSeed(r, 1)), r / 4294967296);
const tasks = { fact: [0, 0], span: [0, 0] };
const examples = [];
for (const sentence of sentences) {
  const words = sentence.split(' ');
  const at = words.lastIndexOf('.') - 1;
  const spans = [];
  if (at >= 2) spans.push(['fact', at - 2, 3]);
  if (words.length >= 3) spans.push(['span', Math.floor(rand() * (words.length - 2)), 3]);
  for (const [task, from, length] of spans) {
    const answer = words.slice(from, from + length).join(' ');
    const masked = [...words.slice(0, from), '<extra_id_0>', ...words.slice(from + length)].join(' ');
    const got = await fill(masked);
    tasks[task][1]++;
    if (got === answer) tasks[task][0]++;
    if (examples.length < 6) examples.push(`${masked} => ${got} (${answer})`);
  }
}
model.dispose();
const rate = ([hit, n]) => ({ right: hit, of: n, rate: +(hit / n).toFixed(3) });
console.log(JSON.stringify({ export: exportDir, heldOutSentences: sentences.length, alsoInTraining, fact: rate(tasks.fact), span: rate(tasks.span), examples }));
process.exit(0);
