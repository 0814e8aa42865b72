/** Tones (beeps, test signals) and the Goertzel filter (power of one frequency, for tests and in-band DTMF). */
import { SAMPLE_RATE } from './wav';

/** A sine of `hz` (or the sum of several) for `ms` milliseconds at amplitude `amp` (of full scale 32767). */
export function tone(hz: number | number[], ms: number, amp = 8000): Int16Array {
  const freqs = Array.isArray(hz) ? hz : [hz];
  const n = Math.round((ms * SAMPLE_RATE) / 1000);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    let v = 0;
    for (const f of freqs) v += Math.sin((2 * Math.PI * f * i) / SAMPLE_RATE);
    out[i] = Math.round((v / freqs.length) * amp);
  }
  return out;
}

/** Relative power of `hz` in samples[from, to) (Goertzel), normalised by length. */
export function goertzel(samples: ArrayLike<number>, hz: number, from = 0, to = samples.length): number {
  const k = 2 * Math.cos((2 * Math.PI * hz) / SAMPLE_RATE);
  let s1 = 0;
  let s2 = 0;
  for (let i = from; i < to; i++) {
    const s0 = samples[i] + k * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const n = Math.max(1, to - from);
  return (s1 * s1 + s2 * s2 - k * s1 * s2) / (n * n);
}

/** The frequency among `candidates` with the most power in the samples. */
export function dominant(samples: ArrayLike<number>, candidates: number[]): number {
  let best = candidates[0];
  let bestP = -1;
  for (const f of candidates) {
    const p = goertzel(samples, f);
    if (p > bestP) {
      bestP = p;
      best = f;
    }
  }
  return best;
}
