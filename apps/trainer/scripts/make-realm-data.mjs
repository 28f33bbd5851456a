#!/usr/bin/env node
// Generates the REALM open-QA data the `realm` family trains on (configs/realm-ict.yaml, then
// configs/realm-openqa.yaml; facts.txt for the knowledge-mlm objective): a made-up world of countries, each with a capital, a language, a
// currency and a region, and rivers that flow through those capitals. Every name is invented (random
// syllables), so a model can only answer by retrieving the block that states the fact: nothing is
// known in advance, nothing is downloaded. Written for this project (Apache-2.0, like the repository).
//
//   node scripts/make-realm-data.mjs   (rewrites data/realm/*; deterministic)
//
// Files:
//   block_records.json  the document collection, one evidence block per entry (RealmRetriever's format)
//   blocks.txt          the same blocks as a corpus, one sentence a line, a blank line between blocks
//                       (what the inverse cloze task warms the retriever up on)
//   qa.jsonl            question/answer pairs: {"text": "what is the capital of veloria? mirth"}
//                       (the first sentence is the question, the rest the answer)
//   facts.txt           the facts restated as sentences, one document per country (the MLM corpus)
//   vocab.txt           a WordPiece vocabulary of the whole words used, single letters and digits

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mulberry32 } from './seeded-random.mjs';

const out = process.env.REALM_DATA_OUT ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'data', 'realm');
const COUNTRIES = Number(process.env.REALM_COUNTRIES ?? 120);
const RIVERS = Number(process.env.REALM_RIVERS ?? 80);

// Seeded: the data are the same on every run.
const rand = mulberry32(20261206);
const pick = (xs) => xs[Math.floor(rand() * xs.length)];

const TEMPLATE_WORDS = new Set(
  'what is the capital of which language do people speak in currency used region lies does river flow through a country its and pay with they call their it runs flows across on way to sea north south east west'.split(' '),
);
const used = new Set(TEMPLATE_WORDS);
/** An invented word of `syllables` consonant-vowel(-consonant) syllables, never used before. */
function invent(syllables) {
  const onsets = ['b', 'd', 'f', 'g', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'z', 'br', 'dr', 'kl', 'tr', 'sh'];
  const vowels = ['a', 'e', 'i', 'o', 'u', 'ai', 'ou'];
  const codas = ['', '', '', 'n', 'r', 'l', 's'];
  for (;;) {
    let w = '';
    for (let s = 0; s < syllables; s++) w += pick(onsets) + pick(vowels) + (s === syllables - 1 ? pick(codas) : '');
    if (!used.has(w)) {
      used.add(w);
      return w;
    }
  }
}

const regions = ['north', 'south', 'east', 'west'];
const languages = Array.from({ length: 12 }, () => `${invent(2)}ish`);
const countries = Array.from({ length: COUNTRIES }, () => ({
  name: invent(3),
  capital: invent(2),
  language: pick(languages),
  currency: invent(2),
  region: pick(regions),
}));
const rivers = Array.from({ length: RIVERS }, () => {
  const c = pick(countries);
  return { name: invent(2), city: c.capital, country: c.name, sea: pick(regions) };
});

const blocks = [];
const qa = [];
const facts = [];
for (const c of countries) {
  // Every sentence names its subject, as encyclopedia text mostly does: a question shares its
  // subject and relation words with the sentence that answers it (real open-QA overlaps its evidence
  // lexically), and each sentence is a fair inverse-cloze query for its block.
  blocks.push(`${c.name} is a country in the ${c.region}. the capital of ${c.name} is ${c.capital}. people in ${c.name} speak ${c.language}. the currency of ${c.name} is the ${c.currency}.`);
  qa.push([`what is the capital of ${c.name}?`, c.capital]);
  qa.push([`which language do people speak in ${c.name}?`, c.language]);
  qa.push([`what is the currency of ${c.name}?`, c.currency]);
  facts.push([`the capital of ${c.name} is ${c.capital}.`, `in ${c.name} they speak ${c.language}.`, `the currency of ${c.name} is the ${c.currency}.`]);
}
for (const r of rivers) {
  blocks.push(`the ${r.name} is a river of ${r.country}. the ${r.name} flows through ${r.city} on its way to the ${r.sea} sea.`);
  qa.push([`which city does the ${r.name} flow through?`, r.city]);
}
// Blocks in a shuffled order, so that a block's id says nothing about its kind.
for (let i = blocks.length - 1; i > 0; i--) {
  const j = Math.floor(rand() * (i + 1));
  [blocks[i], blocks[j]] = [blocks[j], blocks[i]];
}

const words = new Set();
for (const text of [...blocks, ...qa.flat(), ...facts.flat()]) for (const w of text.toLowerCase().match(/[a-z]+/g)) words.add(w);
// Letters and digits as word starts and ##pieces too, so that any text tokenizes (a document dropped on
// the playground's panel, a question about it) without [UNK].
const pieces = [...'abcdefghijklmnopqrstuvwxyz0123456789'].flatMap((c) => [c, `##${c}`]);
const punctuation = [...'.,;:!?\'"()-'];
const vocab = [...new Set(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...punctuation, ...pieces, ...[...words].sort()])];

mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'block_records.json'), `${JSON.stringify(blocks, null, 0).replace(/","/g, '",\n"')}\n`);
writeFileSync(join(out, 'blocks.txt'), blocks.map((b) => b.split(/(?<=[.?!])\s+/).join('\n')).join('\n\n') + '\n');
writeFileSync(join(out, 'qa.jsonl'), qa.map(([q, a]) => JSON.stringify({ text: `${q} ${a}` })).join('\n') + '\n');
writeFileSync(join(out, 'facts.txt'), facts.map((d) => d.join('\n')).join('\n\n') + '\n');
writeFileSync(join(out, 'vocab.txt'), `${vocab.join('\n')}\n`);
console.log(`${out}: ${blocks.length} blocks, ${qa.length} questions, ${facts.length} fact documents, ${vocab.length} vocabulary entries`);
