// @lm/dist-ckpt: checkpoint formats (./format) and, later, sharded distributed checkpoints on top.

export * from './format/index.js';
