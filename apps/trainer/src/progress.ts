// What a person watches while training: on a terminal, a cli-progress bar with step, loss, tokens/s,
// learning rate and ETA; elsewhere (CI, pipes, tests) a plain line every `logEvery` steps, so logs
// stay readable. Messages printed during training go above the bar.

import cliProgress from 'cli-progress';

import type { ProgressSink, ProgressValues } from './core/ports.js';

export type { ProgressValues };

export interface ProgressOptions {
  total: number;
  start: number;
  /** Use the bar (default: stderr is a TTY). */
  tty?: boolean;
  logEvery: number;
  /** Where plain lines go (default console.log). */
  print?: (line: string) => void;
}

const fmtLr = (lr: number) => lr.toExponential(2);

/** The loop's progress sink on a terminal (cli-progress) or as log lines. */
export class Progress implements ProgressSink {
  private readonly bar: cliProgress.SingleBar | null;
  private readonly print: (line: string) => void;
  private readonly started = performance.now();
  private readonly startStep: number;
  private payload: Record<string, string | number> = { loss: '-', tps: '-', lr: '-', elapsed: '0s' };
  private value: number;

  constructor(private readonly options: ProgressOptions) {
    this.print = options.print ?? ((l) => console.log(l));
    this.startStep = options.start;
    this.value = options.start;
    const tty = options.tty ?? Boolean(process.stderr.isTTY);
    this.bar = tty
      ? new cliProgress.SingleBar(
          {
            format: 'train |{bar}| step {value}/{total} | loss {loss} | {tps} tok/s | lr {lr} | ETA {eta_formatted} | {elapsed}',
            barCompleteChar: '\u2588',
            barIncompleteChar: '\u2591',
            hideCursor: true,
            etaBuffer: 20,
            fps: 5,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
    this.bar?.start(options.total, options.start, this.payload);
  }

  private elapsed(): string {
    const s = Math.round((performance.now() - this.started) / 1000);
    return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
  }

  update(step: number, v: ProgressValues): void {
    this.value = step;
    if (this.bar) {
      this.payload = { loss: v.loss.toFixed(4), tps: Math.round(v.tokensPerSecond), lr: fmtLr(v.lr), elapsed: this.elapsed() };
      this.bar.update(step, this.payload);
      return;
    }
    if (step % this.options.logEvery === 0 || step === this.options.total || step === this.startStep + 1) {
      const done = step - this.startStep;
      const perStep = (performance.now() - this.started) / 1000 / Math.max(1, done);
      const eta = Math.round(perStep * (this.options.total - step));
      this.print(
        `step ${step}/${this.options.total}  loss ${v.loss.toFixed(4)}  ${Math.round(v.tokensPerSecond)} tok/s  lr ${fmtLr(v.lr)}  elapsed ${this.elapsed()}  ETA ${eta}s`,
      );
    }
  }

  /** Prints a line without breaking the bar. */
  log(line: string): void {
    if (this.bar) {
      this.bar.stop();
      this.print(line);
      // cli-progress has no "print above the bar": stop, print, and start again where it was.
      this.bar.start(this.options.total, this.value, this.payload);
    } else {
      this.print(line);
    }
  }

  stop(): void {
    this.bar?.stop();
  }
}
