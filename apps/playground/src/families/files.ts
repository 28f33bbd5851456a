// Which of a model folder's files go where. `fromPretrained(files)` of @lm/layers hands every file that
// is not JSON to the checkpoint reader, which rejects a list with vocab.txt in it ("several files and no
// *.index.json"), so the worker passes it config.json and the weights only, chosen in Hugging Face's
// order of preference, and gives the tokenizer its own files.
export class ModelFilesError extends Error {
  override name = 'ModelFilesError';
}

const WEIGHT_CHOICES: { index: string; single: string; shard: RegExp }[] = [
  { index: 'model.safetensors.index.json', single: 'model.safetensors', shard: /\.safetensors$/ },
  { index: 'pytorch_model.bin.index.json', single: 'pytorch_model.bin', shard: /\.bin$/ },
];

/** config.json plus the weights: a sharded index with its shards, or one checkpoint file. */
export function pretrainedFiles(files: File[]): File[] {
  const config = files.find((f) => f.name === 'config.json');
  if (!config) throw new ModelFilesError('no config.json among the files');
  for (const choice of WEIGHT_CHOICES) {
    const index = files.find((f) => f.name === choice.index);
    if (index) return [config, index, ...files.filter((f) => choice.shard.test(f.name))];
    const single = files.find((f) => f.name === choice.single);
    if (single) return [config, single];
  }
  const others = files.filter((f) => /\.(safetensors|bin)$/.test(f.name));
  if (others.length === 1) return [config, others[0]];
  throw new ModelFilesError(
    others.length
      ? `several weight files (${others.map((f) => f.name).join(', ')}) and no model.safetensors.index.json / pytorch_model.bin.index.json naming the shards`
      : `no weights among the files (${files.map((f) => f.name).join(', ')}): expected model.safetensors or pytorch_model.bin (sharded with their .index.json, or not)`,
  );
}

/** The tokenizer's files (vocab.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json). */
export function tokenizerFiles(files: File[]): File[] {
  return files.filter((f) => /^(vocab\.txt|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json)$/.test(f.name));
}
