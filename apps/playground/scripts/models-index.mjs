// Writes public/models/index.json: the models bundled with the app (`default`, `realm`), the files
// of each with their sizes (the page fetches exactly these, with download progress), where the model
// came from, and example inputs whose words are all in its vocabulary.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Keeps the examples whose words (lowercased, [MASK] aside) are all vocabulary entries. */
export function examplesInVocab(dir, candidates) {
  const vocab = new Set(readFileSync(join(dir, 'vocab.txt'), 'utf8').split(/\r?\n/).filter(Boolean));
  return candidates.filter((text) =>
    text
      .toLowerCase()
      .replace(/\[mask\]/g, ' ')
      .split(/\s+|(?=[.,!?])|(?<=[.,!?])/)
      .filter(Boolean)
      .every((word) => vocab.has(word)),
  );
}

export function writeModelsIndex(modelsDir, entry) {
  const dir = join(modelsDir, entry.id);
  const files = readdirSync(dir)
    .filter((name) => statSync(join(dir, name)).isFile())
    .sort()
    .map((name) => ({ name, size: statSync(join(dir, name)).size }));
  // The entry replaces the one with its id (in place) or is appended: the other bundled models stay.
  const path = join(modelsDir, 'index.json');
  const models = existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')).models : [];
  const at = models.findIndex((m) => m.id === entry.id);
  if (at >= 0) models[at] = { ...entry, files };
  else models.push({ ...entry, files });
  writeFileSync(path, `${JSON.stringify({ models }, null, 2)}\n`);
  return files;
}
