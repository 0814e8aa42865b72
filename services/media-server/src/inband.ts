/**
 * In-band DTMF (ITU-T Q.23 tones in the audio), for callers that did not
 * negotiate telephone-event: Goertzel power at the four row and four column
 * frequencies of each 20 ms block. A digit counts when one row and one column
 * tone hold most of the block's energy (little twist) for two blocks in a row,
 * and again only after a block without it.
 */
import { goertzel } from './tone';

const ROWS = [697, 770, 852, 941];
const COLS = [1209, 1336, 1477, 1633];
const KEYS = ['123A', '456B', '789C', '*0#D'];
/** Share of the block's energy the two tones must hold (a pure pair holds 1/2 in this measure). */
const MIN_SHARE = 0.35;
/** Quietest block examined (mean square); about -40 dBm0. */
const MIN_ENERGY = 20_000;
/** Largest power ratio between the row and column tone (8 dB twist). */
const MAX_TWIST = 6.3;

export class InbandDtmfDetector {
  private candidate: string | undefined;
  private reported: string | undefined;

  constructor(private readonly onDigit: (digit: string) => void) {}

  /** One block of linear samples (any length; 160 = 20 ms). */
  block(pcm: Int16Array): void {
    const d = this.classify(pcm);
    if (d === undefined) {
      this.candidate = undefined;
      this.reported = undefined;
      return;
    }
    if (d === this.candidate && d !== this.reported) {
      this.reported = d;
      this.onDigit(d);
    }
    this.candidate = d;
  }

  private classify(pcm: Int16Array): string | undefined {
    let energy = 0;
    for (let i = 0; i < pcm.length; i++) energy += pcm[i] * pcm[i];
    energy /= pcm.length || 1;
    if (energy < MIN_ENERGY) return undefined;
    let r = 0;
    let rp = 0;
    for (let i = 0; i < 4; i++) {
      const p = goertzel(pcm, ROWS[i]);
      if (p > rp) {
        rp = p;
        r = i;
      }
    }
    let c = 0;
    let cp = 0;
    for (let i = 0; i < 4; i++) {
      const p = goertzel(pcm, COLS[i]);
      if (p > cp) {
        cp = p;
        c = i;
      }
    }
    if ((rp + cp) / energy < MIN_SHARE) return undefined;
    if (rp > cp * MAX_TWIST || cp > rp * MAX_TWIST) return undefined;
    return KEYS[r][c];
  }
}

export const DTMF_FREQUENCIES: Record<string, [number, number]> = Object.fromEntries(
  KEYS.flatMap((row, r) => [...row].map((k, c) => [k, [ROWS[r], COLS[c]] as [number, number]])),
);
