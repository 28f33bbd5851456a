// The text2text pipeline: task prefixes (given, derived, or from config.task_specific_params), padded
// batches that generate what each input generates alone, the task's generation defaults, streaming.
import { describe, expect, it } from 'vitest';
import { manualSeed, tensor } from '@lm/tensor-gpu';
import { testCpuBackend } from '@lm/tensor-gpu/testing';
import type { SpecialTokenIds, Tokenizer } from '@lm/layers';
import { T5Config } from './config.js';
import { T5ForConditionalGeneration } from './modeling.js';
import { Text2TextGenerationPipeline } from './pipelines.js';

const backend = testCpuBackend();

/** Words -> ids (pad 0, eos 1, unk 2); records what it encoded. */
class Words implements Tokenizer {
  readonly words = ['<pad>', '</s>', '<unk>', 'summarize:', 'translate', 'english', 'to', 'german:', 'the', 'cat', 'sat', 'on', 'a', 'mat', 'dog', 'ran', 'far', 'away'];
  readonly seen: string[] = [];
  get vocabSize() {
    return 40;
  }
  encode(text: string) {
    this.seen.push(text);
    return { inputIds: [...text.toLowerCase().split(/\s+/).filter(Boolean).map((w) => Math.max(this.words.indexOf(w), 2)), 1] };
  }
  decode(ids: Iterable<number> | ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}) {
    return Array.from(ids as ArrayLike<number>)
      .filter((id) => !(options.skipSpecialTokens && id < 3))
      .map((id) => this.words[id] ?? `w${id}`)
      .join(' ');
  }
  get specialTokenIds(): SpecialTokenIds {
    return { pad: 0, eos: 1, unk: 2, bos: null, cls: null, sep: null, mask: null };
  }
  get allSpecialIds() {
    return [0, 1, 2];
  }
  save() {
    return {};
  }
}

manualSeed(3);
const config = new T5Config({ vocabSize: 40, dModel: 16, dKv: 8, dFf: 32, numLayers: 2, numHeads: 2, relativeAttentionNumBuckets: 8, relativeAttentionMaxDistance: 16, dropoutRate: 0, decoderStartTokenId: 0 }, { task_specific_params: { summarization: { prefix: 'summarize: ', num_beams: 2, max_length: 5 } } });
const model = new T5ForConditionalGeneration(config, { backend });
model.eval();

describe('Text2TextGenerationPipeline', () => {
  it('prefixes by task and generates for a padded batch what each input generates alone', async () => {
    const tok = new Words();
    const translate = new Text2TextGenerationPipeline(model, tok, { task: 'translation_en_to_de' });
    expect(translate.prefix).toBe('translate English to German: ');
    const texts = ['the cat sat on a mat', 'the dog ran'];
    const batch = await translate.call(texts, { maxNewTokens: 6, eosTokenId: [] });
    expect(tok.seen).toEqual(texts.map((t) => `translate English to German: ${t}`));
    for (const [i, text] of texts.entries()) {
      const alone = await model.generate(tensor([tok.encode(`translate English to German: ${text}`).inputIds], { dtype: 'int32', backend }), { maxNewTokens: 6, eosTokenId: [] });
      expect(batch[i].generatedTokenIds).toEqual(alone.sequences[0].slice(1));
      expect(batch[i].generatedText).toBe(tok.decode(alone.sequences[0].slice(1), { skipSpecialTokens: true }));
    }
    const plain = new Text2TextGenerationPipeline(model, tok);
    expect(plain.prefix).toBe('');
    expect(() => new Text2TextGenerationPipeline(model, tok, { task: 'fill-mask' as never })).toThrow(/task "fill-mask"/);
  });

  it('takes the prefix and generation defaults from config.task_specific_params, the call overriding them', async () => {
    const tok = new Words();
    const summarize = new Text2TextGenerationPipeline(model, tok, { task: 'summarization' });
    expect(summarize.prefix).toBe('summarize: ');
    expect(summarize.defaults).toEqual({ numBeams: 2, maxNewTokens: 4 });
    const [out] = await summarize.call('the cat sat on a mat', { eosTokenId: [] });
    expect(out.generatedTokenIds.length).toBe(4);
    const beams = await model.generate(tensor([tok.encode('summarize: the cat sat on a mat').inputIds], { dtype: 'int32', backend }), { numBeams: 2, maxNewTokens: 4, eosTokenId: [] });
    expect(out.generatedTokenIds).toEqual(beams.sequences[0].slice(1));
    const [longer] = await summarize.call('the cat sat on a mat', { maxNewTokens: 6, eosTokenId: [] });
    expect(longer.generatedTokenIds.length).toBe(6);
  });

  it('streams the text decoded so far, token by token', async () => {
    const tok = new Words();
    const pipe = new Text2TextGenerationPipeline(model, tok);
    const events = [];
    for await (const ev of pipe.stream('the dog ran far away', { maxNewTokens: 5, eosTokenId: [] })) events.push(ev);
    const [whole] = await pipe.call('the dog ran far away', { maxNewTokens: 5, eosTokenId: [] });
    expect(events.map((e) => e.token)).toEqual(whole.generatedTokenIds);
    expect(events[events.length - 1].text).toBe(whole.generatedText);
  });
});
