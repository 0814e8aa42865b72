import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, encode } from './g711';
import { DTMF_FREQUENCIES, InbandDtmfDetector } from './inband';
import { tone } from './tone';

const blocks = (pcm: Int16Array) =>
  Array.from({ length: Math.floor(pcm.length / 160) }, (_, i) => pcm.subarray(i * 160, (i + 1) * 160));

test('every key, through G.711, once per tone; silence between repeats is needed', () => {
  for (const [key, freqs] of Object.entries(DTMF_FREQUENCIES)) {
    const got: string[] = [];
    const d = new InbandDtmfDetector((x) => got.push(x));
    const signal = new Int16Array(160 * 20);
    signal.set(decode(encode(tone(freqs, 100, 6000), 'pcmu'), 'pcmu'), 0); // 5 blocks of tone
    signal.set(decode(encode(tone(freqs, 100, 6000), 'pcmu'), 'pcmu'), 160 * 10); // again after silence
    for (const b of blocks(signal)) d.block(b);
    assert.deepEqual(got, [key, key], key);
  }
});

test('speech-like signals are not digits: one tone, a chord off the grid, noise, a too-short tone', () => {
  const got: string[] = [];
  const d = new InbandDtmfDetector((x) => got.push(x));
  for (const b of blocks(tone(440, 400, 8000))) d.block(b);
  for (const b of blocks(tone([500, 1000, 2000], 400, 8000))) d.block(b);
  const noise = new Int16Array(160 * 20);
  let seed = 1;
  for (let i = 0; i < noise.length; i++)
    noise[i] = ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 16000) - 8000;
  for (const b of blocks(noise)) d.block(b);
  for (const b of blocks(tone([697, 1209], 20, 6000))) d.block(b); // one block: too short
  assert.deepEqual(got, []);
});
