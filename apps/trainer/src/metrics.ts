// The metrics log: one JSON object per line, `{"type":"train"|"eval", "step": n, ...}`, appended as
// training goes (and flushed each line, so a crash or Ctrl-C loses nothing). On resume the records
// after the resumed step are dropped first, so the file reads as one continuous run.

import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

import type { MetricsRecord, MetricsSink } from './core/ports.js';

export type { MetricsRecord };

export function readMetrics(path: string): MetricsRecord[] {
  const text = readFileSync(path, 'utf8');
  const out: MetricsRecord[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.parse(line) as MetricsRecord);
    } catch {
      throw new Error(`${path}:${i + 1}: not a JSON line`);
    }
  });
  return out;
}

/** The loop's metrics sink over a JSONL file. */
export class MetricsLog implements MetricsSink {
  constructor(readonly path: string) {}

  /** A new run starts an empty file; a resumed run keeps the records up to `resumeStep`. */
  start(resumeStep: number | null): void {
    mkdirSync(dirname(this.path), { recursive: true });
    if (resumeStep === null || !existsSync(this.path)) {
      writeFileSync(this.path, '');
      return;
    }
    const kept = readMetrics(this.path).filter((r) => r.step <= resumeStep);
    writeFileSync(this.path, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }

  append(record: MetricsRecord): void {
    appendFileSync(this.path, `${JSON.stringify(record)}\n`);
  }
}
