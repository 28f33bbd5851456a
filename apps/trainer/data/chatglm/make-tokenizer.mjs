// Trains the small SentencePiece model the chatglm configs tokenize with (tokenizer/ice_text.model),
// laid out as THUDM's ice_text.model is: nmt_nfkc normalization and byte
// fallback, ChatGLM's CONTROL pieces ([MASK] [gMASK] [sMASK] <unused_0> <sop> <eop> <ENC> <dBLOCK>)
// and USER_DEFINED pieces (<n>, <|tab|>, <|blank_2|> .. <|blank_80|>), <unk> 0, <s> 1, </s> 2, <pad> 3.
// THUDM's own 130k-piece model cannot be downloaded here; this one is trained on the prompt/response
// pairs of this folder (Debian's `sentencepiece` package: `apt-get install -y sentencepiece`).
// tokenizer_config.json says num_image_tokens 0, as THUDM's shipped config does, so the ids are the
// SentencePiece ids. `node data/chatglm/make-tokenizer.mjs` from apps/trainer; rerunning it gives the
// same bytes (one thread, a fixed work folder).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const here = new URL('.', import.meta.url).pathname;
const out = join(here, 'tokenizer');
// A fixed work folder: the model stores its input and prefix paths (trainer_spec), so the bytes repeat.
const work = join(tmpdir(), 'chatglm-make-tokenizer');
rmSync(work, { recursive: true, force: true });
mkdirSync(work);
try {
  // One pair per line, as the trainer reads them (the JSON lines' `text`).
  const lines = ['train.jsonl', 'ptuning.jsonl'].flatMap((f) =>
    readFileSync(join(here, f), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l).text),
  );
  const corpus = join(work, 'corpus.txt');
  writeFileSync(corpus, `${lines.join('\n')}\n`);
  const control = ['[MASK]', '[gMASK]', '[sMASK]', '<unused_0>', '<sop>', '<eop>', '<ENC>', '<dBLOCK>'];
  const userDefined = ['<n>', '<|tab|>', ...Array.from({ length: 79 }, (_, i) => `<|blank_${i + 2}|>`)];
  execFileSync(
    'spm_train',
    [
      `--input=${corpus}`,
      `--model_prefix=${join(work, 'ice_text')}`,
      '--model_type=bpe',
      // 4 meta + 8 control + 81 user-defined + 256 byte pieces + the text pieces (BPE merges up to whole words).
      '--vocab_size=440',
      '--hard_vocab_limit=false',
      '--character_coverage=1.0',
      '--normalization_rule_name=nmt_nfkc',
      '--byte_fallback=true',
      '--unk_id=0',
      '--bos_id=1',
      '--eos_id=2',
      '--pad_id=3',
      '--unk_piece=<unk>',
      '--bos_piece=<s>',
      '--eos_piece=</s>',
      '--pad_piece=<pad>',
      `--control_symbols=${control.join(',')}`,
      `--user_defined_symbols=${userDefined.join(',')}`,
      '--num_threads=1',
      '--minloglevel=1',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  renameSync(join(work, 'ice_text.model'), join(out, 'ice_text.model'));
} finally {
  rmSync(work, { recursive: true, force: true });
}
const config = {
  tokenizer_class: 'ChatGLMTokenizer',
  bos_token: '<sop>',
  eos_token: '<eop>',
  end_token: '</s>',
  gmask_token: '[gMASK]',
  mask_token: '[MASK]',
  pad_token: '<pad>',
  unk_token: '<unk>',
  num_image_tokens: 0,
  do_lower_case: false,
  remove_space: false,
  padding_side: 'left',
};
writeFileSync(join(out, 'tokenizer_config.json'), `${JSON.stringify(config, null, 2)}\n`);
console.log(`wrote ${join(out, 'ice_text.model')} and tokenizer_config.json`);
