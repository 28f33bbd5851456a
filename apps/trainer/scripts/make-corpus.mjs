#!/usr/bin/env node
// Generates the corpus the embedded default run trains on, and its vocab.txt: short documents of
// simple, true, templated sentences (capitals, languages and continents of countries; animal sounds,
// babies and homes; colors of things; order and parity of numbers; days of the week). Few entities
// and few templates on purpose: a model small enough to train in three minutes on a CPU sees each
// fact many times, and a document states each fact once (see `documents`), so the facts have to be
// learned rather than copied from the context. Written for this project (Apache-2.0, like the
// repository); nothing is downloaded. Held-out masked-token accuracy rises well above chance and
// fill-mask answers name the right things (scripts/fact-recall.mjs counts them).
//
//   node scripts/make-corpus.mjs      (rewrites data/corpus/*.txt and data/vocab.txt; deterministic)
//   CORPUS_OUT=/tmp/c/data CORPUS_COUNTRIES=8 node scripts/make-corpus.mjs   (try another size elsewhere)
//
// Format: one sentence per line, a blank line between documents (BERT's pretraining format).

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mulberry32 } from './seeded-random.mjs';

const root = process.env.CORPUS_OUT ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'data');

// Seeded: the corpus is the same on every run.
const rand = mulberry32(20261122);
function sample(xs, n) {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a.slice(0, n);
}

/**
 * Documents for each entity: `perEntity` documents of `min`-`max` sentences. `relations` lists the
 * facts about an entity, each as one or more phrasings of the same fact; a document states a fact at
 * most once, in one phrasing. Were the answer repeated within a document ("the capital of spain is
 * madrid . madrid is the capital of spain ."), a masked answer could be copied from the rest of the
 * sequence, and a small model learns to copy instead of storing the facts: measured, the default run
 * then answered "the capital of france is [MASK] ." with a capital, but not paris.
 */
function documents(entities, relations, perEntity, min, max) {
  const docs = [];
  for (const e of entities) {
    const facts = relations.map((phrasings) => phrasings.map((t) => t(e)).filter(Boolean)).filter((p) => p.length > 0);
    for (let k = 0; k < perEntity; k++) {
      const n = Math.min(facts.length, min + Math.floor(rand() * (max - min + 1)));
      docs.push(sample(facts, n).map((phrasings) => phrasings[Math.floor(rand() * phrasings.length)]));
    }
  }
  return sample(docs, docs.length);
}

// How many entities of each kind, and documents per entity: env overrides are for trying sizes.
const size = (name, fallback) => Number(process.env[`CORPUS_${name}`] ?? fallback);
const N_COUNTRIES = size('COUNTRIES', 14);
const N_ANIMALS = size('ANIMALS', 12);
const N_COLORS = size('COLORS', 6);
const THINGS_PER_COLOR = size('THINGS_PER_COLOR', 3);
const N_NUMBERS = size('NUMBERS', 10);
const COUNTRY_DOCS = size('COUNTRY_DOCS', 12);
const ANIMAL_DOCS = size('ANIMAL_DOCS', 12);
const COLOR_DOCS = size('COLOR_DOCS', 84);
const NUMBER_DOCS = size('NUMBER_DOCS', 10);
const DAY_DOCS = size('DAY_DOCS', 10);

// ---- countries --------------------------------------------------------------------------------------
const COUNTRIES = [
  ['france', 'paris', 'europe', 'french'], ['germany', 'berlin', 'europe', 'german'], ['italy', 'rome', 'europe', 'italian'],
  ['spain', 'madrid', 'europe', 'spanish'], ['portugal', 'lisbon', 'europe', 'portuguese'], ['japan', 'tokyo', 'asia', 'japanese'],
  ['china', 'beijing', 'asia', 'chinese'], ['russia', 'moscow', 'europe', 'russian'], ['egypt', 'cairo', 'africa', 'arabic'],
  ['kenya', 'nairobi', 'africa', 'swahili'], ['peru', 'lima', 'america', 'spanish'], ['brazil', 'brasilia', 'america', 'portuguese'],
  ['canada', 'ottawa', 'america', 'english'], ['australia', 'canberra', 'oceania', 'english'], ['india', 'delhi', 'asia', 'hindi'],
  ['greece', 'athens', 'europe', 'greek'], ['norway', 'oslo', 'europe', 'norwegian'], ['sweden', 'stockholm', 'europe', 'swedish'],
  ['finland', 'helsinki', 'europe', 'finnish'], ['poland', 'warsaw', 'europe', 'polish'], ['austria', 'vienna', 'europe', 'german'],
  ['hungary', 'budapest', 'europe', 'hungarian'], ['turkey', 'ankara', 'asia', 'turkish'], ['thailand', 'bangkok', 'asia', 'thai'],
  ['vietnam', 'hanoi', 'asia', 'vietnamese'], ['chile', 'santiago', 'america', 'spanish'], ['cuba', 'havana', 'america', 'spanish'],
  ['morocco', 'rabat', 'africa', 'arabic'], ['nigeria', 'abuja', 'africa', 'english'], ['ghana', 'accra', 'africa', 'english'],
  ['iran', 'tehran', 'asia', 'persian'], ['korea', 'seoul', 'asia', 'korean'], ['denmark', 'copenhagen', 'europe', 'danish'],
  ['netherlands', 'amsterdam', 'europe', 'dutch'], ['ireland', 'dublin', 'europe', 'english'], ['colombia', 'bogota', 'america', 'spanish'],
];
const countryDocs = documents(
  COUNTRIES.slice(0, N_COUNTRIES).map(([country, capital, continent, language]) => ({ country, capital, continent, language })),
  [
    [(e) => `the capital of ${e.country} is ${e.capital} .`, (e) => `${e.capital} is the capital of ${e.country} .`],
    [(e) => `${e.country} is a country in ${e.continent} .`],
    [(e) => `people in ${e.country} speak ${e.language} .`],
  ],
  COUNTRY_DOCS,
  2,
  3,
);

// ---- animals ----------------------------------------------------------------------------------------
const ANIMALS = [
  ['dog', 'woof', 'puppy', 'house'], ['cat', 'meow', 'kitten', 'house'], ['cow', 'moo', 'calf', 'farm'], ['sheep', 'baa', 'lamb', 'farm'],
  ['pig', 'oink', 'piglet', 'farm'], ['duck', 'quack', 'duckling', 'pond'], ['horse', 'neigh', 'foal', 'stable'], ['lion', 'roar', 'cub', 'savanna'],
  ['frog', 'croak', 'tadpole', 'pond'], ['owl', 'hoot', 'owlet', 'forest'], ['bee', 'buzz', 'larva', 'hive'], ['goat', 'bleat', 'kid', 'farm'],
  ['wolf', 'howl', 'pup', 'forest'], ['mouse', 'squeak', 'pinkie', 'field'], ['chicken', 'cluck', 'chick', 'farm'], ['donkey', 'bray', 'foal', 'farm'],
  ['bear', 'growl', 'cub', 'forest'], ['elephant', 'trumpet', 'calf', 'savanna'], ['bird', 'tweet', 'chick', 'nest'], ['snake', 'hiss', 'hatchling', 'grass'],
];
const animalDocs = documents(
  ANIMALS.slice(0, N_ANIMALS).map(([animal, sound, baby, home]) => ({ animal, sound, baby, home })),
  [
    [(e) => `the ${e.animal} says ${e.sound} .`, (e) => `${e.sound} is the sound of the ${e.animal} .`],
    [(e) => `a baby ${e.animal} is called a ${e.baby} .`],
    [(e) => `the ${e.animal} lives in the ${e.home} .`],
  ],
  ANIMAL_DOCS,
  2,
  3,
);

// ---- colors -----------------------------------------------------------------------------------------
const COLORS = {
  red: ['tomato', 'cherry', 'strawberry', 'blood', 'ruby'],
  green: ['grass', 'leaf', 'lime', 'frog', 'cucumber'],
  blue: ['sky', 'sea', 'ocean', 'sapphire', 'blueberry'],
  yellow: ['banana', 'lemon', 'sun', 'corn', 'butter'],
  white: ['snow', 'milk', 'cloud', 'salt', 'sugar'],
  black: ['coal', 'night', 'crow', 'ink', 'tar'],
  orange: ['carrot', 'pumpkin', 'orange', 'tangerine', 'apricot'],
  purple: ['grape', 'plum', 'eggplant', 'lavender', 'violet'],
  brown: ['chocolate', 'coffee', 'soil', 'wood', 'bread'],
};
// A color document lists things of different colors, so no color is stated twice in it.
const THINGS = Object.entries(COLORS)
  .slice(0, N_COLORS)
  .flatMap(([color, all]) => all.slice(0, THINGS_PER_COLOR).map((thing) => ({ thing, color })));
const colorDocs = [];
for (let k = 0; k < COLOR_DOCS; k++) {
  const picked = [];
  for (const t of sample(THINGS, THINGS.length)) {
    if (picked.length < 2 + Math.floor(rand() * 2) && !picked.some((p) => p.color === t.color)) picked.push(t);
  }
  colorDocs.push(picked.map((t) => (rand() < 0.5 ? `the ${t.thing} is ${t.color} .` : `the color of the ${t.thing} is ${t.color} .`)));
}

// ---- numbers ----------------------------------------------------------------------------------------
const NUM = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen', 'twenty'];
const numberDocs = documents(
  NUM.map((w, n) => ({ w, n })).slice(1, N_NUMBERS + 1),
  [
    [(e) => `after ${e.w} comes ${NUM[e.n + 1]} .`, (e) => `${e.w} plus one is ${NUM[e.n + 1]} .`],
    [(e) => `before ${e.w} comes ${NUM[e.n - 1]} .`],
    [(e) => `${e.w} is an ${e.n % 2 === 0 ? 'even' : 'odd'} number .`],
  ],
  NUMBER_DOCS,
  2,
  3,
);

// ---- calendar ---------------------------------------------------------------------------------------
const DAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];
const calendarDocs = [
  ...documents(
    DAYS.map((d, i) => ({ d, i })),
    [
      [(e) => `the day after ${e.d} is ${DAYS[(e.i + 1) % 7]} .`],
      [(e) => `the day before ${e.d} is ${DAYS[(e.i + 6) % 7]} .`],
      [(e) => (e.i >= 5 ? `${e.d} is a day of the weekend .` : `${e.d} is a working day .`)],
    ],
    DAY_DOCS,
    2,
    3,
  ),
];

// ---- write ------------------------------------------------------------------------------------------
const corpus = { 'countries.txt': countryDocs, 'animals.txt': animalDocs, 'colors.txt': colorDocs, 'numbers.txt': numberDocs, 'calendar.txt': calendarDocs };
mkdirSync(join(root, 'corpus'), { recursive: true });
const words = new Set();
let sentences = 0;
let docs = 0;
for (const [name, list] of Object.entries(corpus)) {
  const text = `${list.map((d) => d.join('\n')).join('\n\n')}\n`;
  writeFileSync(join(root, 'corpus', name), text);
  for (const d of list) for (const s of d) for (const w of s.split(' ')) words.add(w);
  sentences += list.reduce((a, d) => a + d.length, 0);
  docs += list.length;
}
const special = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
const vocab = [...special, ...[...words].sort()];
writeFileSync(join(root, 'vocab.txt'), `${vocab.join('\n')}\n`);
console.log(`corpus: ${docs} documents, ${sentences} sentences; vocab: ${vocab.length} tokens -> ${root}`);
