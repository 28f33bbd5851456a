#!/usr/bin/env node
// Puts the model the app ships with into public/models/default/: the trainer's Hugging Face export
// (apps/trainer/out/export/, written by `pnpm start` at the repository root) when it is there, else a
// tiny random-init model from make-model.mjs. Refuses a model over the size limit (2 MiB by default:
// it is committed), because the bundled model is fetched by every visitor.
//
//   pnpm --filter playground bundle-model [--from <dir>] [--source <text>] [--max-mib <n>]
// --source: what index.json records as the model's origin (default: the --from path).
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { examplesInVocab, writeModelsIndex } from './models-index.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..', '..');
const modelsDir = join(here, '..', 'public', 'models');
const target = join(modelsDir, 'default');
const { values } = parseArgs({
  options: {
    from: { type: 'string', default: join(repo, 'apps', 'trainer', 'out', 'export') },
    source: { type: 'string' },
    'max-mib': { type: 'string', default: '2' },
  },
});
const from = resolve(values.from);
const maxBytes = Number(values['max-mib']) * 1024 * 1024;

// What a Hugging Face MegatronBERT folder may hold that the app reads.
const WANTED = /^(config\.json|model\.safetensors|pytorch_model\.bin|.*\.index\.json|model-\d+-of-\d+\.safetensors|vocab\.txt|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json)$/;
const hasModel = (dir) =>
  existsSync(join(dir, 'config.json')) &&
  (existsSync(join(dir, 'vocab.txt')) || existsSync(join(dir, 'tokenizer.json'))) &&
  readdirSync(dir).some((f) => /\.(safetensors|bin)$/.test(f));

if (!hasModel(from)) {
  console.log(`bundle-model: no Hugging Face export in ${relative(repo, from)} (run \`pnpm start\` at the repository root); generating a random-init model`);
  const run = spawnSync(process.execPath, [join(here, 'make-model.mjs')], { stdio: 'inherit' });
  process.exit(run.status ?? 1);
}

const files = readdirSync(from).filter((f) => WANTED.test(f));
const bytes = files.reduce((n, f) => n + statSync(join(from, f)).size, 0);
if (bytes > maxBytes) {
  console.error(`bundle-model: ${relative(repo, from)} holds ${(bytes / 2 ** 20).toFixed(2)} MiB, over the ${values['max-mib']} MiB limit for the committed model (--max-mib to raise it)`);
  process.exit(1);
}
rmSync(target, { recursive: true, force: true });
mkdirSync(target, { recursive: true });
for (const f of files) copyFileSync(join(from, f), join(target, f));
const written = writeModelsIndex(modelsDir, {
  id: 'default',
  name: 'MegatronBERT from the trainer\'s default run',
  description:
    `The small MegatronBERT that \`pnpm start\` (apps/trainer) pretrains with masked LM + next-sentence prediction ` +
    'on its generated corpus, exported in Hugging Face format and copied here by `pnpm --filter playground bundle-model`.',
  source: values.source ?? relative(repo, from),
  examples: examplesInVocab(target, [
    'the capital of france is [MASK] .',
    'the cow says [MASK] .',
    'a baby dog is called a [MASK] .',
    'the color of the banana is [MASK] .',
    'the day after monday is [MASK] .',
  ]),
});
console.log(`bundle-model: copied ${written.map((f) => `${f.name} (${f.size} B)`).join(', ')} from ${relative(repo, from)}`);
