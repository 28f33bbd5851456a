// Trains the small SentencePiece model the HF T5 family's SentencePiece run tokenizes with
// (tokenizer/spiece.model), laid out as Google's T5 spiece.model is: a Unigram model, nmt_nfkc
// normalization, pad 0 (also the decoder start), </s> 1, <unk> 2, no <s>; tokenizer_config.json adds the
// 100 sentinels (extra_ids) that T5Tokenizer puts above the pieces, counting down from the top. Google's
// 32k-piece model cannot be downloaded here; this one is trained on the trainer's corpus (data/corpus,
// one sentence a line) with Debian's `sentencepiece` package (`apt-get install -y sentencepiece`).
// `node data/t5/make-tokenizer.mjs` from apps/trainer; rerunning it gives the same bytes (one thread,
// a fixed work folder, the corpus files in sorted order).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const here = new URL('.', import.meta.url).pathname;
const corpusDir = join(here, '..', 'corpus');
const out = join(here, 'tokenizer');
// A fixed work folder: the model stores its input and prefix paths (trainer_spec), so the bytes repeat.
const work = join(tmpdir(), 't5-make-tokenizer');
rmSync(work, { recursive: true, force: true });
mkdirSync(work);
mkdirSync(out, { recursive: true });
try {
  // One sentence a line, as the trainer reads them (blank lines separate documents).
  const lines = readdirSync(corpusDir)
    .filter((f) => f.endsWith('.txt'))
    .sort()
    .flatMap((f) => readFileSync(join(corpusDir, f), 'utf8').split('\n'))
    .map((l) => l.trim())
    .filter(Boolean);
  const corpus = join(work, 'corpus.txt');
  writeFileSync(corpus, `${lines.join('\n')}\n`);
  // The Unigram trainer seeds its pieces with substrings that occur in at least two distinct words, so in
  // a corpus of ~160 distinct words a word that is part of no other (`the`, `paris`) is never a seed and
  // ends up spelled in characters. One extra line per distinct word, the word written twice (`thethe`),
  // makes every word a seed (every corpus word then encodes to one piece); the made-up words leave a few
  // pieces only they use (`africa` without ▁), which the corpus never produces.
  const words = [...new Set(lines.flatMap((l) => l.split(/\s+/)))].sort();
  const seeds = join(work, 'seeds.txt');
  writeFileSync(seeds, `${words.map((w) => w + w).join('\n')}\n`);
  execFileSync(
    'spm_train',
    [
      `--input=${corpus},${seeds}`,
      `--model_prefix=${join(work, 'spiece')}`,
      '--model_type=unigram',
      // 3 meta pieces + 28 characters + the corpus's words (whole, as T5's 32k model keeps common words).
      '--vocab_size=200',
      '--hard_vocab_limit=false',
      '--character_coverage=1.0',
      '--normalization_rule_name=nmt_nfkc',
      '--pad_id=0',
      '--eos_id=1',
      '--unk_id=2',
      '--bos_id=-1',
      '--pad_piece=<pad>',
      '--eos_piece=</s>',
      '--unk_piece=<unk>',
      '--num_threads=1',
      '--minloglevel=1',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  renameSync(join(work, 'spiece.model'), join(out, 'spiece.model'));
} finally {
  rmSync(work, { recursive: true, force: true });
}
// What T5's save_pretrained writes (transformers 4.37's T5Tokenizer), minus the added-tokens table
// that T5Tokenizer recomputes from extra_ids.
const config = {
  tokenizer_class: 'T5Tokenizer',
  eos_token: '</s>',
  unk_token: '<unk>',
  pad_token: '<pad>',
  extra_ids: 100,
  additional_special_tokens: Array.from({ length: 100 }, (_, i) => `<extra_id_${i}>`),
  legacy: true,
  model_max_length: 512,
};
writeFileSync(join(out, 'tokenizer_config.json'), `${JSON.stringify(config, null, 2)}\n`);
console.log(`wrote ${join(out, 'spiece.model')} and tokenizer_config.json`);
