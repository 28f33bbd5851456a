// The loop's metrics sink in the browser: the records in memory and in `metrics.jsonl` of the worker's
// file system (the format of `lm-train`'s metrics log), each also handed to the page.

import { writeFile } from 'node:fs/promises';
import type { MetricsRecord, MetricsSink } from '../core/ports.js';

export class BrowserMetrics implements MetricsSink {
  /** Every record of the run so far (a resumed run starts with those up to its step). */
  records: MetricsRecord[];

  constructor(
    readonly path: string,
    previous: readonly MetricsRecord[],
    private readonly onRecord: (record: MetricsRecord) => void,
  ) {
    this.records = [...previous];
  }

  /** Parses a metrics.jsonl (this sink's file, or `lm-train`'s). */
  static parse(text: string): MetricsRecord[] {
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as MetricsRecord);
  }

  start(resumeStep: number | null): void {
    this.records = resumeStep === null ? [] : this.records.filter((r) => r.step <= resumeStep);
  }

  append(record: MetricsRecord): void {
    this.records.push(record);
    this.onRecord(record);
  }

  /** Writes the file (after each checkpoint and at the end: a write per step would copy the whole log each time). */
  async flush(): Promise<void> {
    await writeFile(this.path, this.records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }
}
