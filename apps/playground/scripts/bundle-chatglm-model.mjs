#!/usr/bin/env node
// Puts the bundled ChatGLM into public/models/chatglm/: the export of the trainer's
// configs/chatglm-finetune.yaml run (apps/trainer/out/chatglm-finetune/export: config.json,
// model.safetensors, and ChatGLMTokenizer's ice_text.model + tokenizer_config.json, the small
// SentencePiece model of apps/trainer/data/chatglm/tokenizer/), and its entry in index.json. Refuses a
// folder without those files or over the size limit (3 MiB: it is committed and fetched by visitors).
//
//   node scripts/bundle-chatglm-model.mjs [--from <dir>] [--max-mib <n>]
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeModelsIndex } from './models-index.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..', '..');
const modelsDir = join(here, '..', 'public', 'models');
const target = join(modelsDir, 'chatglm');
const { values } = parseArgs({
  options: {
    from: { type: 'string', default: join(repo, 'apps', 'trainer', 'out', 'chatglm-finetune', 'export') },
    'max-mib': { type: 'string', default: '3' },
  },
});
const from = resolve(values.from);
const FILES = ['config.json', 'model.safetensors', 'ice_text.model', 'tokenizer_config.json'];
const missing = FILES.filter((f) => !existsSync(join(from, f)));
if (missing.length) {
  console.error(`bundle-chatglm-model: ${relative(repo, from)} lacks ${missing.join(', ')}; run \`lm-train -c apps/trainer/configs/chatglm-finetune.yaml\` first`);
  process.exit(1);
}
const total = FILES.reduce((n, f) => n + statSync(join(from, f)).size, 0);
if (total > Number(values['max-mib']) * 2 ** 20) {
  console.error(`bundle-chatglm-model: ${total} bytes is over the ${values['max-mib']} MiB limit`);
  process.exit(1);
}
rmSync(target, { recursive: true, force: true });
mkdirSync(target, { recursive: true });
for (const f of FILES) copyFileSync(join(from, f), join(target, f));
const files = writeModelsIndex(modelsDir, {
  id: 'chatglm',
  name: 'ChatGLM-shaped chat model from the trainer',
  description:
    'A 2-block ChatGLMForConditionalGeneration (hidden 64, 2-D rotary positions, prefix-LM mask) that `lm-train -c apps/trainer/configs/chatglm-finetune.yaml` fine-tunes on prompt/response pairs (`repeat ... ?` and `reverse ... ?` over 16 words), with ChatGLMTokenizer on the small ice_text.model trained by apps/trainer/data/chatglm/make-tokenizer.mjs. It answers those two tasks (89.9% of held-out response tokens right); anything else, later rounds of a conversation included, is outside what it learned.',
  source: 'apps/trainer/out/chatglm-finetune/export',
  examples: ['repeat cat moon ?', 'reverse red dog sun ?', 'repeat fish tree black ?', 'reverse blue star rain ?'],
});
console.log(`bundle-chatglm-model: ${files.map((f) => `${f.name} (${f.size} B)`).join(', ')} -> ${relative(repo, target)}`);
