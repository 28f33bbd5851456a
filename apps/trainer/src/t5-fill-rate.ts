#!/usr/bin/env node
// Sentinel-fill rate of a span-corruption T5 run's export on held-out sentences, for the README:
//
//   node apps/trainer/dist/t5-fill-rate.js -c apps/trainer/configs/t5-span-corruption-sp.yaml [export dir]
//
// The config gives the corpus, the split (seed, data.validationFraction) and the export (output.export,
// unless a folder is given). Held-out sentences: the distinct sentences of the run's validation documents,
// split as the trainer splits them. The corpus is generated from templates, so each of them also occurs in
// some training document (the output counts them): the documents are held out, not the facts, and the
// rate measures recall of trained facts. In each sentence three words are hidden behind <extra_id_0> (the
// configs' blocks always hide one span of 3 tokens, and every corpus word is one token in both tokenizers):
// the three that end with the word carrying the fact (the last before the final "."), and, as a second
// task, three at a seeded position. The model fills greedily (up to 12 new tokens, stopping at eos); a fill
// counts when the text between <extra_id_0> and <extra_id_1> (or the end) equals the hidden words exactly.
// The tokenizer is the export's own (spiece.model: T5Tokenizer; vocab.txt: WordPiece + extra ids), so runs
// on different tokenizers are scored alike. Prints one JSON line.

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ExtraIdsTokenizer, T5ForConditionalGeneration, type T5Config, type T5Tokenizer } from '@lm/t5';
import { init, tensor } from '@lm/tensor-gpu';
import { loadConfig } from './config.js';
import { isValidationDocument } from './core/data.js';
import { Rng } from './core/rng.js';
import { corpusSource } from './data/sources.js';
import { loadT5Tokenizer } from './models/t5.js';

const { values, positionals } = parseArgs({ options: { config: { type: 'string', short: 'c' } }, allowPositionals: true });
if (!values.config) {
  console.error('usage: t5-fill-rate -c <run config.yaml> [export dir]');
  process.exit(2);
}
const config = loadConfig({ file: values.config });
const exportDir = resolve(positionals[0] ?? config.output.export ?? '');
if (!existsSync(join(exportDir, 'config.json'))) {
  console.error(`t5-fill-rate: ${exportDir} holds no export (config.json); run the config first`);
  process.exit(2);
}

// The split's sentences, in the trainer's file order.
const source = await corpusSource(config.data.paths, config.data.format, config.data.jsonlField);
const train = new Set<string>();
const held = new Set<string>();
for await (const doc of source.read(Array.from({ length: source.fileCount }, (_, i) => i))) {
  for (const s of doc.sentences) (isValidationDocument(config.seed, config.data.validationFraction, doc) ? held : train).add(s);
}
const sentences = [...held].sort();

const backend = await init('cpu');
const tokenizer = await loadT5Tokenizer(exportDir, { lowercase: config.data.lowercase });
const model = await T5ForConditionalGeneration.fromPretrained<T5ForConditionalGeneration, T5Config>(exportDir, { backend });
model.eval();
const { eos, pad } = tokenizer.specialTokenIds;
const [s0, s1] = tokenizer instanceof ExtraIdsTokenizer ? [tokenizer.sentinelId(0), tokenizer.sentinelId(1)] : (tokenizer as T5Tokenizer).sentinelIds;

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
const tasks = { fact: { right: 0, of: 0 }, span: { right: 0, of: 0 } };
const examples: string[] = [];
for (const sentence of sentences) {
  const words = sentence.split(' ');
  const at = words.lastIndexOf('.') - 1;
  const spans: ['fact' | 'span', number][] = [];
  if (at >= 2) spans.push(['fact', at - 2]);
  if (words.length >= 3) spans.push(['span', Math.floor(rng.next() * (words.length - 2))]);
  for (const [task, from] of spans) {
    const answer = words.slice(from, from + 3).join(' ');
    const masked = [...words.slice(0, from), '<extra_id_0>', ...words.slice(from + 3)].join(' ');
    const got = await fill(masked);
    tasks[task].of++;
    if (got === answer) tasks[task].right++;
    if (examples.length < 4) examples.push(`${masked} => ${got} (${answer})`);
  }
}
model.dispose();
const rate = (t: { right: number; of: number }) => ({ ...t, rate: +(t.right / t.of).toFixed(3) });
console.log(JSON.stringify({ export: exportDir, heldOutSentences: sentences.length, alsoInTraining: sentences.filter((s) => train.has(s)).length, fact: rate(tasks.fact), span: rate(tasks.span), examples }));
process.exit(0);
