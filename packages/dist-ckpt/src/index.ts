// @lm/dist-ckpt: checkpoint formats (./format) and sharded distributed checkpoints on top (./distributed).

export * from './format/index.js';
export * from './distributed/index.js';
