#!/usr/bin/env node
// How many of the corpus's facts an exported model recalls: every distinct sentence of the corpus
// with its answer (the last word before the final ".") replaced by [MASK], answered by fill-mask on
// the export; a fact counts when the top prediction is the answer. The held-out masked-token
// accuracy that a run reports also counts template words ("the", "is", "of"); this counts only the
// word that carries the fact (the capital, the sound, the color, the next day).
//
//   node apps/trainer/scripts/fact-recall.mjs [export dir] [corpus dir]
//   (defaults: apps/trainer/out/export and apps/trainer/data/corpus; build first: pnpm start does)

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BertTokenizer } from '@lm/layers';
import { MegatronBertForMaskedLM, fillMask } from '@lm/megatron-bert';
import { init } from '@lm/tensor-gpu';

const app = join(dirname(fileURLToPath(import.meta.url)), '..');
const exportDir = resolve(process.argv[2] ?? join(app, 'out', 'export'));
const corpusDir = resolve(process.argv[3] ?? join(app, 'data', 'corpus'));

const backend = await init('cpu');
const tokenizer = await BertTokenizer.fromPretrained(exportDir);
const model = await MegatronBertForMaskedLM.fromPretrained(exportDir, { backend });

let recalled = 0;
let total = 0;
const perFile = {};
for (const file of readdirSync(corpusDir).sort()) {
  const sentences = [...new Set(readFileSync(join(corpusDir, file), 'utf8').split('\n').map((s) => s.trim()).filter(Boolean))];
  let ok = 0;
  for (const sentence of sentences) {
    const words = sentence.split(' ');
    const at = words.lastIndexOf('.') - 1;
    if (at < 0) continue;
    const answer = words[at];
    words[at] = '[MASK]';
    const [candidates] = await fillMask(model, tokenizer, words.join(' '), { topK: 1 });
    if (candidates[0].tokenStr === answer) ok++;
  }
  perFile[file.replace(/\.txt$/, '')] = `${ok}/${sentences.length}`;
  recalled += ok;
  total += sentences.length;
}
model.dispose();
console.log(JSON.stringify({ export: exportDir, recalled, total, recall: +(recalled / total).toFixed(3), perFile }));
process.exit(0);
