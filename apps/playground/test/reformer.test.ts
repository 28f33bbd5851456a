// End-to-end test of the Reformer panel in the BUILT playground (dist/, ?model=reformer), in headless
// Chromium on WebGPU (SwiftShader) and with WebGPU disabled (the cpu fallback): the streamed greedy
// generation (cached decoding through past_buckets_states) must give the ids and text that
// @lm/reformer generates in this Node process (cpu backend) from the same files, and the LSH bucket view
// must show Node's buckets (hash_seed is set in the bundled config, so the rotations are fixed). The
// bundled model is the character-level export of apps/trainer/configs/reformer-long.yaml (vocab.json,
// CharTokenizer); a WordPiece export (vocab.txt) is read the same way. A SentencePiece Reformer (a tiny
// random ReformerModelWithLMHead saved here with ReformerTokenizer's spiece.model, the T5 bundle's
// SentencePiece model) is then picked as files, as a person picks a Hugging Face folder, and must
// generate Node's ids and text too. Skips (test/panel-suite.ts) when Chromium or a WebGPU adapter is
// missing, unless LM_REQUIRE_WEBGPU=1.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BertTokenizer, type Tokenizer } from '@lm/layers';
import { CharTokenizer, LSHSelfAttention, ReformerConfig, ReformerModelWithLMHead, ReformerTokenizer } from '@lm/reformer';
import { init, noGrad, tensor } from '@lm/tensor-gpu';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { artifacts, BACKENDS, bundledModel, describePanel } from './panel-suite.js';

const here = dirname(fileURLToPath(import.meta.url));
const reformerDir = bundledModel('reformer');

const PROMPT = 'the capital of france is';
const NEW_TOKENS = 12;
const SPM_FILES = ['config.json', 'model.safetensors', 'spiece.model', 'tokenizer_config.json'];

interface Expected {
  promptIds: number[];
  generated: number[];
  text: string;
  /** `buckets-<layer>-<round>` -> head 0's bucket per position. */
  buckets: Map<string, number[]>;
}

/** Node's answers on the cpu backend from the files the page loads. */
async function reference(): Promise<Expected> {
  const backend = await init('cpu');
  const model = await ReformerModelWithLMHead.fromPretrained(reformerDir, { backend });
  model.eval();
  const charLevel = existsSync(join(reformerDir, 'vocab.json'));
  const tokenizer: Tokenizer = charLevel ? await CharTokenizer.fromPretrained(reformerDir) : await BertTokenizer.fromPretrained(reformerDir);
  // Prompts start as the panel starts them: nothing before the characters, [CLS] under WordPiece.
  const bos = tokenizer.specialTokenIds.bos ?? tokenizer.specialTokenIds.cls;
  const promptIds = [...(bos !== null ? [bos] : []), ...tokenizer.encode(PROMPT, null, { addSpecialTokens: false }).inputIds];
  const eos = tokenizer.specialTokenIds.eos ?? tokenizer.specialTokenIds.sep;
  const out = await model.generate(tensor([promptIds], { dtype: 'int32', backend }), { maxNewTokens: NEW_TOKENS, ...(eos !== null ? { eosTokenId: eos } : {}) });
  const generated = out.sequences[0].slice(promptIds.length);
  const buckets = new Map<string, number[]>();
  const layers = model.reformer.encoder.layers.items;
  const hidden = noGrad(() => model.reformer.forward({ inputIds: tensor([promptIds], { dtype: 'int32', backend }), outputHiddenStates: true, useCache: false }).hiddenStates!);
  for (const [i, layer] of layers.entries()) {
    const attn = layer.attention.self_attention;
    if (!(attn instanceof LSHSelfAttention)) continue;
    const b = noGrad(() => attn.bucketsFor(layer.attention.layer_norm.forward(hidden[i]))); // [1, heads, rounds, seq]
    const data = Array.from(await b.data());
    const [, , rounds, seq] = b.shape;
    for (let r = 0; r < rounds; r++) buckets.set(`buckets-${i}-${r}`, data.slice(r * seq, (r + 1) * seq));
  }
  model.dispose();
  return { promptIds, generated, text: tokenizer.decode(generated, { skipSpecialTokens: true }), buckets };
}

/**
 * A tiny random causal Reformer whose tokenizer is SentencePiece: the T5 bundle's spiece.model (200
 * pieces) saved by ReformerTokenizer, written to `dir`; returns Node's greedy ids and text for PROMPT.
 */
async function sentencePieceReformer(dir: string): Promise<{ promptIds: number[]; generated: number[]; text: string }> {
  const backend = await init('cpu');
  const tokenizer = new ReformerTokenizer(new Uint8Array(readFileSync(join(here, '..', 'public', 'models', 't5', 'spiece.model'))));
  const config = new ReformerConfig({
    vocabSize: tokenizer.vocabSize,
    hiddenSize: 32,
    numAttentionHeads: 2,
    attentionHeadSize: 16,
    feedForwardSize: 48,
    attnLayers: ['local', 'lsh'],
    axialPosShape: [8, 8],
    axialPosEmbdsDim: [16, 16],
    maxPositionEmbeddings: 64,
    localAttnChunkLength: 8,
    lshAttnChunkLength: 8,
    numBuckets: 4,
    numHashes: 2,
    isDecoder: true,
    hiddenDropoutProb: 0,
    localAttentionProbsDropoutProb: 0,
    lshAttentionProbsDropoutProb: 0,
    initializerRange: 0.5,
    hashSeed: 3,
    eosTokenId: tokenizer.eosTokenId,
  });
  const model = new ReformerModelWithLMHead(config, { backend });
  model.eval();
  await model.savePretrained(dir);
  for (const [name, content] of Object.entries(tokenizer.save())) writeFileSync(join(dir, name), content);
  const loaded = await ReformerTokenizer.fromPretrained(dir);
  const promptIds = loaded.encode(PROMPT).inputIds;
  const out = await model.generate(tensor([promptIds], { dtype: 'int32', backend }), { maxNewTokens: NEW_TOKENS, eosTokenId: loaded.eosTokenId });
  const generated = out.sequences[0].slice(promptIds.length);
  model.dispose();
  return { promptIds, generated, text: loaded.decode(generated, { skipSpecialTokens: true }) };
}

describePanel('reformer', 'the Reformer panel (?model=reformer) in headless Chromium', 'reformer', (suite) => {
  let expected: Expected;
  let spmDir = '';
  let spmExpected: { promptIds: number[]; generated: number[]; text: string };

  beforeAll(async () => {
    expected = await reference();
    // The bundled model is character-level: one id per character of the prompt, and LSH layers to show.
    expect(expected.promptIds).toHaveLength(PROMPT.length);
    expect(expected.buckets.size).toBeGreaterThan(0);
    spmDir = mkdtempSync(join(tmpdir(), 'playground-reformer-spm-'));
    spmExpected = await sentencePieceReformer(spmDir);
    // SentencePiece pieces, not characters; the reference ReformerTokenizer adds no </s>.
    expect(spmExpected.promptIds.length).toBeLessThan(PROMPT.length);
    expect(spmExpected.promptIds.at(-1)).not.toBe(1);
    expect(spmExpected.generated).not.toHaveLength(0);
  });

  afterAll(() => {
    if (spmDir) rmSync(spmDir, { recursive: true, force: true });
  });

  for (const backend of BACKENDS) {
    it(`generates, streamed, the ids Node generates, shows Node's LSH buckets, and opens a SentencePiece (spiece.model) Reformer picked as files (${backend.label})`, async (ctx) => {
      const browser = await suite.open(ctx, backend, `model=reformer&text=${encodeURIComponent(PROMPT)}`);
      const { page, log } = browser;
      try {
        // The summary names the character tokenizer read from vocab.json.
        expect(await page.textContent('body')).toContain('characters (vocab.json, CharTokenizer)');

        await page.fill('[data-testid=generate-max]', String(NEW_TOKENS));
        await page.click('[data-testid=generate-run]');
        await page.waitForFunction(
          () => ['done', 'error'].includes(document.querySelector<HTMLElement>('[data-testid=generate]')?.dataset.state ?? '') && ['done', 'error'].includes(document.querySelector<HTMLElement>('[data-testid=buckets]')?.dataset.state ?? ''),
          undefined,
          { timeout: 120_000 },
        );
        const context = `${await page.textContent('[data-testid=generate]')}\n${log.join('\n')}`;
        expect(await page.getAttribute('[data-testid=generate]', 'data-tokens'), context).toBe(expected.generated.join(','));
        expect(await page.textContent('[data-testid=generated]'), context).toBe(expected.text);
        expect(await page.getAttribute('[data-testid=buckets]', 'data-state'), await page.textContent('[data-testid=buckets]') ?? '').toBe('done');
        for (const [testid, groups] of expected.buckets) {
          expect(await page.getAttribute(`[data-testid=${testid}]`, 'data-groups'), testid).toBe(groups.join(','));
        }
        expect(await page.$$('[data-testid^=chunks-]')).not.toHaveLength(0);
        expect(log.filter((line) => line.startsWith('[pageerror]')), log.join('\n')).toEqual([]);
        await page.screenshot({ path: join(artifacts, `playground-reformer-${backend.name}.png`), fullPage: true });

        // The SentencePiece Reformer, picked as files: spiece.model read by ReformerTokenizer.
        await page.evaluate(() => (document.documentElement.dataset.model = 'picking'));
        await page.setInputFiles('[data-testid=open-files-input]', SPM_FILES.map((f) => join(spmDir, f)));
        await page.waitForFunction(() => ['ready', 'error'].includes(document.documentElement.dataset.model ?? ''), undefined, { timeout: 60_000 });
        expect(await page.evaluate(() => document.documentElement.dataset.model), `${await page.textContent('#model')}\n${log.join('\n')}`).toBe('ready');
        expect(await page.textContent('body')).toContain('SentencePiece (spiece.model, ReformerTokenizer)');
        await page.fill('[data-testid=generate-max]', String(NEW_TOKENS));
        await page.click('[data-testid=generate-run]');
        await page.waitForFunction(() => ['done', 'error'].includes(document.querySelector<HTMLElement>('[data-testid=generate]')?.dataset.state ?? ''), undefined, { timeout: 120_000 });
        const spmContext = `${await page.textContent('[data-testid=generate]')}\n${log.join('\n')}`;
        expect(await page.getAttribute('[data-testid=generate]', 'data-tokens'), spmContext).toBe(spmExpected.generated.join(','));
        expect(await page.textContent('[data-testid=generated]'), spmContext).toBe(spmExpected.text);
        expect(log.filter((line) => line.startsWith('[pageerror]')), log.join('\n')).toEqual([]);
      } finally {
        await browser.close();
      }
    });
  }
});
