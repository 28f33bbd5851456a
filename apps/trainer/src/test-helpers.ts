// Shared by the tests: a tiny generated corpus + vocab in a temporary folder, and a config for a
// MegatronBERT small enough that a training step takes milliseconds.

import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig, type TrainConfig } from './config.js';

const COUNTRIES = [
  ['france', 'paris', 'french'],
  ['spain', 'madrid', 'spanish'],
  ['japan', 'tokyo', 'japanese'],
  ['italy', 'rome', 'italian'],
  ['peru', 'lima', 'spanish'],
  ['greece', 'athens', 'greek'],
];
const ANIMALS = [
  ['dog', 'woof', 'puppy'],
  ['cat', 'meow', 'kitten'],
  ['cow', 'moo', 'calf'],
  ['duck', 'quack', 'duckling'],
];

export interface TinyCorpus {
  dir: string;
  corpus: string;
  vocab: string;
  words: string[];
}

/** Two text files of documents (blank-line separated), plus vocab.txt. */
export function makeTinyCorpus(docsPerEntity = 4): TinyCorpus {
  const dir = mkdtempSync(join(tmpdir(), 'lm-train-test-'));
  const corpus = join(dir, 'corpus');
  mkdirSync(corpus);
  const countryDocs: string[] = [];
  for (const [c, cap, lang] of COUNTRIES) {
    const s = [`the capital of ${c} is ${cap} .`, `${cap} is a city in ${c} .`, `people in ${c} speak ${lang} .`, `the language of ${c} is ${lang} .`];
    for (let k = 0; k < docsPerEntity; k++) countryDocs.push([...s.slice(k % 4), ...s.slice(0, k % 4)].join('\n'));
  }
  const animalDocs: string[] = [];
  for (const [a, snd, baby] of ANIMALS) {
    const s = [`the ${a} says ${snd} .`, `a baby ${a} is called a ${baby} .`, `${snd} is the sound of the ${a} .`];
    for (let k = 0; k < docsPerEntity; k++) animalDocs.push([...s.slice(k % 3), ...s.slice(0, k % 3)].join('\n'));
  }
  writeFileSync(join(corpus, 'a-countries.txt'), `${countryDocs.join('\n\n')}\n`);
  writeFileSync(join(corpus, 'b-animals.txt'), `${animalDocs.join('\n\n')}\n`);
  const words = new Set<string>();
  for (const d of [...countryDocs, ...animalDocs]) for (const w of d.split(/\s+/)) if (w) words.add(w);
  const vocabList = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...[...words].sort()];
  const vocab = join(dir, 'vocab.txt');
  writeFileSync(vocab, `${vocabList.join('\n')}\n`);
  return { dir, corpus, vocab, words: vocabList };
}

/** A validated config for a tiny MegatronBERT on the tiny corpus; `over` is merged section by section. */
export function tinyConfig(c: TinyCorpus, over: Record<string, Record<string, unknown> | string | number> = {}): TrainConfig {
  const section = (name: string) => (over[name] && typeof over[name] === 'object' ? (over[name] as Record<string, unknown>) : {});
  const raw = {
    model: {
      family: 'megatron-bert',
      config: { hiddenSize: 16, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 32, maxPositionEmbeddings: 32, hiddenDropoutProb: 0.1, attentionProbsDropoutProb: 0.1 },
      ...section('model'),
    },
    data: { paths: [c.corpus], tokenizer: c.vocab, seqLength: 24, validationFraction: 0.2, ...section('data') },
    training: { steps: 6, batchSize: 4, lr: 1e-3, warmupSteps: 1, logEvery: 1, ...section('training') },
    checkpointing: { dir: join(c.dir, 'ckpt'), everySteps: 3, keepLast: 2, ...section('checkpointing') },
    eval: { everySteps: 3, batches: 2, ...section('eval') },
    output: { metrics: join(c.dir, 'out', 'metrics.jsonl'), plot: join(c.dir, 'out', 'loss.png'), export: null, ...section('output') },
    backend: 'cpu',
    seed: typeof over.seed === 'number' ? over.seed : 7,
    ...(typeof over.objective === 'string' ? { objective: over.objective } : {}),
    ...(over.objectives ? { objectives: over.objectives } : {}),
  };
  return validateConfig(raw, 'test config');
}
