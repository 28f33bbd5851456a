#!/usr/bin/env node
// Sentinel-fill rate of a span-corruption T5 run's export on held-out sentences, for the README:
//
//   node apps/trainer/dist/t5-fill-rate.js -c apps/trainer/configs/t5-span-corruption-sp.yaml [--examples N] [export dir]
//
// The config gives the corpus, the split (seed, data.validationFraction) and the export (output.export,
// unless a folder is given). Held-out sentences: the distinct sentences of the run's validation documents,
// split as the trainer splits them. The corpus is generated from templates, so each of them also occurs in
// some training document (the output counts them): the documents are held out, not the facts, and the
// rate measures recall of trained facts. In each sentence three words are hidden behind <extra_id_0> (the
// configs' blocks always hide one span of 3 tokens, and every corpus word is one token in both tokenizers):
// the three that end with the word carrying the fact (the last before the final "."), and, as a second
// task, three at a seeded position. Each is asked twice: the sentence alone, and inside its held-out
// document (the document's other sentences around it, as training blocks show text; a document states
// each fact once, so the answer is never in it). The model fills greedily (up to 12 new tokens, stopping
// at eos); the fill is the text between <extra_id_0> and <extra_id_1> (or the end). It is right when it
// equals the hidden words, and sensible when it is right or each of its three words is one seen in that
// slot in training (t5-fill-score.ts: training sentences of the same template, i.e. as long and differing
// in at most two words): `called a kitten` for `called a puppy` is sensible, `is called a` is not.
// The tokenizer is the export's own (spiece.model: T5Tokenizer; vocab.txt: WordPiece + extra ids), so runs
// on different tokenizers are scored alike. Prints one JSON line; --examples N adds N fills spread evenly
// over the run.

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { T5ForConditionalGeneration, type T5Config } from '@lm/t5';
import { init, tensor } from '@lm/tensor-gpu';
import { loadConfig } from './config.js';
import { isValidationDocument } from './core/data.js';
import { Rng } from './core/rng.js';
import { corpusSource } from './data/sources.js';
import { loadT5Tokenizer } from './models/t5.js';
import { isSensibleFill, slotWords } from './t5-fill-score.js';

const { values, positionals } = parseArgs({ options: { config: { type: 'string', short: 'c' }, examples: { type: 'string', default: '4' } }, allowPositionals: true });
if (!values.config) {
  console.error('usage: t5-fill-rate -c <run config.yaml> [--examples N] [export dir]');
  process.exit(2);
}
const maxExamples = Number(values.examples);
if (!Number.isInteger(maxExamples) || maxExamples < 0) {
  console.error(`t5-fill-rate: --examples: expected a whole number >= 0, got ${values.examples}`);
  process.exit(2);
}
const config = loadConfig({ file: values.config });
const exportDir = resolve(positionals[0] ?? config.output.export ?? '');
if (!existsSync(join(exportDir, 'config.json'))) {
  console.error(`t5-fill-rate: ${exportDir} holds no export (config.json); run the config first`);
  process.exit(2);
}

// The split's sentences, in the trainer's file order, and the first held-out document of each held-out one.
const source = await corpusSource(config.data.paths, config.data.format, config.data.jsonlField);
const train = new Set<string>();
const documentOf = new Map<string, readonly string[]>();
for await (const doc of source.read(Array.from({ length: source.fileCount }, (_, i) => i))) {
  const held = isValidationDocument(config.seed, config.data.validationFraction, doc);
  for (const s of doc.sentences) {
    if (!held) train.add(s);
    else if (!documentOf.has(s)) documentOf.set(s, doc.sentences);
  }
}
const sentences = [...documentOf.keys()].sort();
const trainingWords = [...train].map((s) => s.split(' '));

const backend = await init('cpu');
const tokenizer = await loadT5Tokenizer(exportDir, { lowercase: config.data.lowercase });
const model = await T5ForConditionalGeneration.fromPretrained<T5ForConditionalGeneration, T5Config>(exportDir, { backend });
model.eval();
const { eos, pad } = tokenizer.specialTokenIds;
const [s0, s1] = tokenizer.sentinelIds;

/** The greedy fill of <extra_id_0> in `masked`, as words. */
async function fill(masked: string): Promise<string> {
  const input = tensor([tokenizer.encode(masked).inputIds], { dtype: 'int32', backend });
  const out = await model.generate(input, { maxNewTokens: 12, eosTokenId: eos ?? undefined });
  input.dispose();
  let ids = out.sequences[0].slice(1).filter((id) => id !== pad && id !== eos);
  if (ids[0] === s0) ids = ids.slice(1);
  if (ids.includes(s1)) ids = ids.slice(0, ids.indexOf(s1));
  return tokenizer.decode(ids, { skipSpecialTokens: true }).trim().split(/\s+/).filter(Boolean).join(' ');
}

const rng = new Rng(config.seed);
type Score = { right: number; sensible: number; of: number };
const presentations = ['alone', 'inDocument'] as const;
const scores = Object.fromEntries(presentations.map((p) => [p, { fact: { right: 0, sensible: 0, of: 0 }, span: { right: 0, sensible: 0, of: 0 } }])) as Record<
  (typeof presentations)[number],
  Record<'fact' | 'span', Score>
>;
const all: string[] = [];
for (const sentence of sentences) {
  const words = sentence.split(' ');
  const slots = slotWords(words, trainingWords);
  const at = words.lastIndexOf('.') - 1;
  const spans: ['fact' | 'span', number][] = [];
  if (at >= 2) spans.push(['fact', at - 2]);
  if (words.length >= 3) spans.push(['span', Math.floor(rng.next() * (words.length - 2))]);
  for (const [task, from] of spans) {
    const answer = words.slice(from, from + 3).join(' ');
    const masked = [...words.slice(0, from), '<extra_id_0>', ...words.slice(from + 3)].join(' ');
    const inputs = { alone: masked, inDocument: documentOf.get(sentence)!.map((s) => (s === sentence ? masked : s)).join(' ') };
    for (const p of presentations) {
      const got = await fill(inputs[p]);
      const score = scores[p][task];
      score.of++;
      if (got === answer) score.right++;
      if (got === answer || isSensibleFill(got.split(' ').filter(Boolean), from, 3, slots)) score.sensible++;
      all.push(`[${p}, ${task}] ${inputs[p]} => ${got} (${answer})`);
    }
  }
}
model.dispose();
// --examples N: N fills spread evenly over the run (sentences in sorted order, both presentations).
const shown = Math.min(maxExamples, all.length);
const examples = Array.from({ length: shown }, (_, i) => all[Math.floor((i * all.length) / shown)]);
const rates = (t: Score) => ({ ...t, rate: t.of ? +(t.right / t.of).toFixed(3) : null, sensibleRate: t.of ? +(t.sensible / t.of).toFixed(3) : null });
const figures = Object.fromEntries(presentations.map((p) => [p, { fact: rates(scores[p].fact), span: rates(scores[p].span) }]));
console.log(JSON.stringify({ export: exportDir, heldOutSentences: sentences.length, alsoInTraining: sentences.filter((s) => train.has(s)).length, ...figures, examples }));
process.exit(0);
