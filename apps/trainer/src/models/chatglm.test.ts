import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChatGLMConfig, ChatGLMForConditionalGeneration, ChatGLMTokenizer } from '@lm/chatglm';
import { BertTokenizer } from '@lm/layers';
import { init, manualSeed } from '@lm/tensor-gpu';
import { describe, expect, it } from 'vitest';
import type { PromptResponseObjective } from './chatglm.js';
import { chatglm, loadChatGLMTokenizer } from './chatglm.js';

const backend = await init('cpu');
const vocab = readFileSync(new URL('../../data/chatglm/vocab.txt', import.meta.url), 'utf8');
const tokenizer = BertTokenizer.fromVocab(vocab);
// data/chatglm/vocab.txt: [PAD] 0, [gMASK] 5, <sop> 6, <eop> 7, repeat 8, reverse 9, ? 10, . 11, red 12, blue 13, green 14.
const settings = { tokenizer, backend, seqLength: 10, maskProbability: 0, shortSeqProbability: 0, settings: {} };

describe('chatglm family: prompt/response pairs as ptuning/main.py frames them', () => {
  it('frames prompt [gMASK] <sop> response <eop> and labels from <sop> on, shifted by one, right-padded', async () => {
    const objective = chatglm.objectives['causal-lm'].objective(settings) as unknown as PromptResponseObjective;
    async function* docs() {
      yield { id: 0, sentences: [[8, 12, 13, 10], [12, 13, 11]] }; // repeat red blue ? | red blue .
    }
    const examples = [];
    for await (const e of objective.examples(docs())) examples.push(e);
    const batch = objective.collate(examples);
    expect(Array.from(batch.inputIds)).toEqual([8, 12, 13, 10, 5, 6, 12, 13, 11, 7]);
    // Position 4 ([gMASK]) predicts <sop>, then the response and <eop>; nothing before it, nothing after <eop>.
    expect(Array.from(batch.labels)).toEqual([-100, -100, -100, -100, 6, 12, 13, 11, 7, -100]);
    expect(batch.targets).toBe(5);
  });

  it('refuses a document without a response, and a tokenizer without [gMASK]', async () => {
    const objective = chatglm.objectives['causal-lm'].objective(settings) as unknown as PromptResponseObjective;
    async function* docs() {
      yield { id: 3, sentences: [[8, 12, 10]] };
    }
    await expect(objective.examples(docs()).next()).rejects.toThrow(/document 3 has 1 sentence\(s\); ChatGLM fine-tuning needs a prompt/);
    const plain = BertTokenizer.fromVocab('[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nred\n');
    expect(() => chatglm.objectives['causal-lm'].objective({ ...settings, tokenizer: plain })).toThrow(/ChatGLM needs the token \[gMASK\]/);
  });

  it('P-tuning: only transformer.prefix_encoder.* is in the registry and trains; the frozen weights come from the base folder', async () => {
    manualSeed(5);
    const dir = mkdtempSync(join(tmpdir(), 'chatglm-ptuning-'));
    const config = new ChatGLMConfig({ vocabSize: 28, hiddenSize: 16, numLayers: 2, numAttentionHeads: 2, innerHiddenSize: 32, maxSequenceLength: 16, padTokenId: 0, maskTokenId: 4, gmaskTokenId: 5, bosTokenId: 6, eosTokenId: 7 });
    const base = new ChatGLMForConditionalGeneration(config, { backend });
    await base.savePretrained(dir);
    const model = await chatglm.objectives['prefix-lm'].createModel(config, { fromPretrained: dir, backend, settings: { preSeqLen: 3 } });
    expect([...model.module.stateDict().keys()]).toEqual(['transformer.prefix_encoder.embedding.weight']);
    expect(model.module.stateDict().get('transformer.prefix_encoder.embedding.weight')!.shape).toEqual([3, 2 * 2 * 16]);
    const frozen = (model.module as unknown as { model: ChatGLMForConditionalGeneration }).model;
    expect([...frozen.namedParameters()].filter(([, p]) => p.requiresGrad).map(([n]) => n)).toEqual(['transformer.prefix_encoder.embedding.weight']);
    expect(Array.from(await frozen.lm_head.weight.data())).toEqual(Array.from(await base.lm_head.weight.data()));
    model.module.dispose();
    base.dispose();
  });

  it('refuses prefix-lm without model.fromPretrained, and unknown settings by name', async () => {
    await expect(chatglm.objectives['prefix-lm'].createModel(new ChatGLMConfig(), { fromPretrained: null, backend, settings: {} })).rejects.toThrow(/model.fromPretrained: prefix-lm tunes a prefix/);
    expect(() => chatglm.objectives['prefix-lm'].objective({ ...settings, settings: { preSeqLenn: 2 } })).toThrow(/objectives.prefix-lm.preSeqLenn: unknown field/);
  });

  it('data.tokenizer: ChatGLMTokenizer on the shipped ice_text.model (folder or file), the word-level stand-in for a vocab.txt, clear errors otherwise', async () => {
    const shipped = new URL('../../data/chatglm/tokenizer', import.meta.url).pathname;
    for (const path of [shipped, join(shipped, 'ice_text.model')]) {
      const tok = await chatglm.loadTokenizer(path, { lowercase: true });
      expect(tok).toBeInstanceOf(ChatGLMTokenizer);
      expect(tok.vocabSize).toBe(440);
    }
    const tok = (await loadChatGLMTokenizer(shipped, { lowercase: true })) as ChatGLMTokenizer;
    // The ids the configs give the model: <pad> 3, [MASK] 4, [gMASK] 5, <sop> 8, <eop> 9.
    expect(tok.convertTokensToIds(['<pad>', '[MASK]', '[gMASK]', '<sop>', '<eop>'])).toEqual([3, 4, 5, 8, 9]);
    expect(tok.convertIdsToTokens(tok.encode('repeat red dog ?', null, { addSpecialTokens: false }).inputIds)).toEqual(['▁repeat', '▁red', '▁dog', '▁?']);
    const objective = chatglm.objectives['causal-lm'].objective({ ...settings, tokenizer: tok, seqLength: 12 }) as unknown as PromptResponseObjective;
    const encode = (text: string) => tok.encode(text, null, { addSpecialTokens: false }).inputIds;
    const example = objective.frame(encode('repeat red dog ?'), encode('red dog .'));
    expect(Array.from(example.ids)).toEqual([...encode('repeat red dog ?'), 5, 8, ...encode('red dog .'), 9]);
    expect(tok.decode(Array.from(example.ids).slice(6, -1))).toBe('red dog .');

    expect(await chatglm.loadTokenizer(new URL('../../data/chatglm/vocab.txt', import.meta.url).pathname, { lowercase: true })).toBeInstanceOf(BertTokenizer);
    await expect(chatglm.loadTokenizer('/nonexistent/ice_text.model', { lowercase: true })).rejects.toThrow(/data.tokenizer: \/nonexistent\/ice_text.model does not exist/);
    const broken = mkdtempSync(join(tmpdir(), 'chatglm-tokenizer-'));
    writeFileSync(join(broken, 'ice_text.model'), 'not a sentencepiece model');
    copyFileSync(join(shipped, 'tokenizer_config.json'), join(broken, 'tokenizer_config.json'));
    await expect(chatglm.loadTokenizer(broken, { lowercase: true })).rejects.toThrow(new RegExp(`data.tokenizer: ${join(broken, 'ice_text.model')}: `));
  });
});
