#!/usr/bin/env node
// lm-ckpt: inspect and convert checkpoints. Errors are one line on stderr and a non-zero exit code;
// nothing a file contains is ever executed (the readers are header-only and the unpickler is an allowlist).

import { Command, CommanderError } from 'commander';

import { consolidateToHuggingFace, inspectCheckpoint, isDistCheckpoint, splitFromHuggingFace } from './distributed/convert.js';

/** A file-system error as "<path>: does not exist" rather than libuv's "ENOENT: ..., open '<path>'". */
function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e instanceof Error && e.path && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return `${e.path}: does not exist`;
  if (e instanceof Error && e.path && e.code === 'EACCES') return `${e.path}: permission denied`;
  return err instanceof Error ? err.message : String(err);
}

function fail(err: unknown): never {
  const message = describe(err);
  process.stderr.write(`lm-ckpt: ${message.split('\n')[0]}\n`);
  process.exit(1);
}

const program = new Command()
  .name('lm-ckpt')
  .description('Inspect and convert checkpoints: distributed (lm-dist-ckpt), Hugging Face folders, safetensors and PyTorch .bin files.')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `lm-ckpt: ${s.split('\n')[0]}\n` : s) });

program
  .command('inspect')
  .description('list tensors, shapes, dtypes (and, for distributed checkpoints, shards and files)')
  .argument('<path>', 'a distributed checkpoint folder, a Hugging Face folder, or a .safetensors / .bin file')
  .action(async (path: string) => {
    const lines = await inspectCheckpoint(path);
    process.stdout.write(`${lines.join('\n')}\n`);
  });

program
  .command('convert')
  .description('distributed checkpoint -> Hugging Face folder, or Hugging Face checkpoint -> distributed checkpoint')
  .argument('<src>', 'a distributed checkpoint folder, or a Hugging Face folder / file')
  .argument('<dst>', 'output folder')
  .option('--max-shard-size <size>', 'shard size of the Hugging Face output ("5GB", "500MB", bytes)', '5GB')
  .option('--tp <n>', 'tensor-parallel size of the distributed output (Megatron BERT rules)', '1')
  .option('--prefix <prefix>', "distributed -> HF: only keys starting with this, written without it ('model.' for lm-train checkpoints)")
  .action(async (src: string, dst: string, opts: { maxShardSize: string; tp: string; prefix?: string }) => {
    if (await isDistCheckpoint(src)) {
      const result = await consolidateToHuggingFace(src, dst, {
        maxShardSize: /^\d+$/.test(opts.maxShardSize) ? Number(opts.maxShardSize) : opts.maxShardSize,
        prefix: opts.prefix,
      });
      process.stdout.write(`wrote ${result.files.length} safetensors file(s)${result.indexFile ? ` and ${result.indexFile}` : ''} to ${dst}\n`);
    } else {
      const tp = Number(opts.tp);
      if (!Number.isSafeInteger(tp) || tp < 1) throw new Error(`--tp must be a positive integer, got '${opts.tp}'`);
      await splitFromHuggingFace(src, dst, { tpSize: tp });
      process.stdout.write(`wrote a distributed checkpoint with tensor-parallel size ${tp} to ${dst}\n`);
    }
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 1);
  fail(err);
}
