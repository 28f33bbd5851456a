#!/usr/bin/env node
// Bundles the REALM model of the playground's REALM panel: the RealmForOpenQA that the trainer's open-QA
// recipe exports (apps/trainer: `lm-train -c configs/realm-ict.yaml`, then `-c configs/realm-openqa.yaml`,
// writing apps/trainer/out/realm-openqa/export/), trained on the trainer's made-up world
// (apps/trainer/data/realm: invented countries and rivers, 200 evidence blocks). The folder holds the
// weights with block_emb (the collection embedded by the trained embedder), block_records.json and the
// tokenizer; it is copied to public/models/realm/ and listed in public/models/index.json beside the
// other bundled models (writeModelsIndex).
//
// Before copying, the model answers every question of the trainer's qa.jsonl here (cpu backend, the
// same RealmOpenQA pipeline the panel runs): the exact match over them goes into the description, and
// the panel's examples are questions it answers correctly, one of each kind.
//
//   node scripts/make-realm-model.mjs [--from <export dir>] [--max-mib 3]   (needs pnpm build)
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { init } from '@lm/tensor-gpu';
import { RealmOpenQA } from '@lm/realm';
import { writeModelsIndex } from './models-index.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..', '..');
const modelsDir = join(here, '..', 'public', 'models');
const outDir = join(modelsDir, 'realm');
const { values } = parseArgs({
  options: {
    from: { type: 'string', default: join(repo, 'apps', 'trainer', 'out', 'realm-openqa', 'export') },
    qa: { type: 'string', default: join(repo, 'apps', 'trainer', 'data', 'realm', 'qa.jsonl') },
    'max-mib': { type: 'string', default: '3' },
  },
});
const from = resolve(values.from);
const FILES = ['config.json', 'model.safetensors', 'block_records.json', 'tokenizer_config.json', 'vocab.txt'];
const missing = FILES.filter((f) => !existsSync(join(from, f)));
if (missing.length) {
  console.error(
    `make-realm-model: ${relative(repo, from)} lacks ${missing.join(', ')}: train the model first ` +
      '(apps/trainer: lm-train -c configs/realm-ict.yaml, then lm-train -c configs/realm-openqa.yaml)',
  );
  process.exit(1);
}
const bytes = FILES.reduce((n, f) => n + statSync(join(from, f)).size, 0);
if (bytes > Number(values['max-mib']) * 2 ** 20) {
  console.error(`make-realm-model: ${relative(repo, from)} holds ${(bytes / 2 ** 20).toFixed(2)} MiB, over the ${values['max-mib']} MiB limit for the committed model (--max-mib)`);
  process.exit(1);
}

// The trainer's questions: {"text": "<question>? <answer>"}.
const questions = readFileSync(values.qa, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((line) => {
    const text = JSON.parse(line).text;
    const at = text.indexOf('?') + 1;
    return { question: text.slice(0, at), gold: text.slice(at).trim() };
  });

const backend = await init('cpu');
const qa = await RealmOpenQA.fromPretrained(from, { backend });
const kinds = new Map(); // the first question of each kind ("what is the capital of", ...) it answers
let correct = 0;
for (const { question, gold } of questions) {
  const { answer } = await qa.ask(question);
  if (answer !== gold) continue;
  correct++;
  const kind = question.split(' ').slice(0, 4).join(' ');
  if (!kinds.has(kind)) kinds.set(kind, question);
}
const numBlocks = qa.model.block_emb.shape[0];
const { hiddenSize, numHiddenLayers, numAttentionHeads, retrieverProjSize, readerBeamSize } = qa.model.config;
qa.model.dispose();
const capitalised = (q) => q[0].toUpperCase() + q.slice(1);
const examples = [...kinds.values()].map(capitalised);
console.log(`make-realm-model: exact match ${correct}/${questions.length} over ${relative(repo, values.qa)}`);

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
for (const f of FILES) copyFileSync(join(from, f), join(outDir, f));
const entry = {
  id: 'realm',
  name: 'tiny REALM open QA, trained, over a made-up world',
  description:
    `RealmForOpenQA (hidden ${hiddenSize}, ${numHiddenLayers} layers, ${numAttentionHeads} heads, retriever projection ${retrieverProjSize}, ` +
    `reads the top ${readerBeamSize} blocks) trained by apps/trainer (configs/realm-ict.yaml, then configs/realm-openqa.yaml) ` +
    `on invented countries and rivers: its index holds the ${numBlocks} evidence blocks of apps/trainer/data/realm. ` +
    `It answers ${correct} of the ${questions.length} questions of that data set (the trainer held 15% of them out); ` +
    'ask about those names: it knows nothing else, and documents you add are retrieved and read only as well as that world taught it.',
  source: 'apps/trainer/out/realm-openqa/export (scripts/make-realm-model.mjs)',
  examples,
};
const files = writeModelsIndex(modelsDir, entry); // replaces the earlier `realm` entry; the other models stay
console.log(`make-realm-model: wrote ${files.map((f) => `${f.name} (${f.size} B)`).join(', ')} to ${relative(repo, outDir)}`);
console.log(`make-realm-model: examples ${JSON.stringify(examples)}`);
