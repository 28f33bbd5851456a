// The live curves on a canvas: training loss per step (light), its moving average (dark blue) and the
// validation loss at each evaluation (red points), as lm-train's plot draws them; the held-out
// token accuracy (green, right axis, 0 to 1).
import type { MetricsRecord } from './protocol.js';

const ACCURACY = /^(mlmAccuracy|accuracy|tokenAccuracy|nextTokenAccuracy|targetAccuracy)$/;

export function accuracyKey(records: readonly MetricsRecord[]): string | null {
  for (const r of records) if (r.type === 'eval') for (const k of Object.keys(r)) if (ACCURACY.test(k)) return k;
  return null;
}

export function drawCurves(canvas: HTMLCanvasElement, records: readonly MetricsRecord[], totalSteps: number): void {
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 640;
  const hgt = canvas.clientHeight || 220;
  canvas.width = w * dpr;
  canvas.height = hgt * dpr;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, hgt);
  const train = records.filter((r) => r.type === 'train' && typeof r.loss === 'number');
  const evals = records.filter((r) => r.type === 'eval' && typeof r.loss === 'number');
  const pad = { l: 44, r: 44, t: 10, b: 24 };
  const maxStep = Math.max(totalSteps, ...records.map((r) => r.step), 1);
  const losses = [...train, ...evals].map((r) => r.loss as number);
  const maxLoss = Math.max(1e-6, ...losses);
  const x = (step: number) => pad.l + (step / maxStep) * (w - pad.l - pad.r);
  const y = (loss: number) => pad.t + (1 - loss / maxLoss) * (hgt - pad.t - pad.b);
  const yAcc = (a: number) => pad.t + (1 - a) * (hgt - pad.t - pad.b);

  ctx.strokeStyle = '#ccc';
  ctx.fillStyle = '#666';
  ctx.font = '11px system-ui, sans-serif';
  ctx.beginPath();
  ctx.moveTo(pad.l, pad.t);
  ctx.lineTo(pad.l, hgt - pad.b);
  ctx.lineTo(w - pad.r, hgt - pad.b);
  ctx.stroke();
  ctx.fillText(maxLoss.toFixed(2), 4, pad.t + 8);
  ctx.fillText('0', 30, hgt - pad.b);
  ctx.fillText(`step ${maxStep}`, w - pad.r - 50, hgt - 6);
  ctx.fillText('loss', 4, hgt / 2);

  const line = (points: [number, number][], color: string, width: number) => {
    if (points.length < 2) return;
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.beginPath();
    points.forEach(([px, py], i) => (i ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
    ctx.stroke();
  };
  line(train.map((r) => [x(r.step), y(r.loss as number)]), '#b9cfe8', 1);
  let avg = 0;
  line(train.map((r, i) => [x(r.step), y((avg = i ? 0.95 * avg + 0.05 * (r.loss as number) : (r.loss as number)))]), '#1f4e8c', 2);
  line(evals.map((r) => [x(r.step), y(r.loss as number)]), '#c0392b', 1.5);
  ctx.fillStyle = '#c0392b';
  for (const r of evals) ctx.fillRect(x(r.step) - 2, y(r.loss as number) - 2, 4, 4);
  const acc = accuracyKey(records);
  if (acc) {
    line(evals.map((r) => [x(r.step), yAcc(r[acc] as number)]), '#27ae60', 1.5);
    ctx.fillStyle = '#27ae60';
    ctx.fillText('acc 1', w - pad.r + 4, pad.t + 8);
    ctx.fillText('0', w - pad.r + 4, hgt - pad.b);
  }
  ctx.lineWidth = 1;
}
