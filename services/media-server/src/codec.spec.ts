import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, encode, decodeTable } from './g711';
import { dominant, goertzel, tone } from './tone';
import { readWav, writeWav, WavError } from './wav';

test('G.711: silence codes and reference values (Sun g711.c)', () => {
  assert.deepEqual([...encode(new Int16Array([0]), 'pcmu')], [0xff]);
  assert.deepEqual([...encode(new Int16Array([0]), 'pcma')], [0xd5]);
  assert.equal(decodeTable('pcmu')[0x00], -32124);
  assert.equal(decodeTable('pcmu')[0x80], 32124);
  assert.equal(decodeTable('pcma')[0xd5], 8);
  assert.equal(decodeTable('pcma')[0x55], -8);
  assert.equal(decodeTable('pcma')[0xaa], 32256);
});

test('G.711: encode then decode stays within the quantisation step of each segment', () => {
  for (const law of ['pcmu', 'pcma'] as const) {
    const pcm = new Int16Array(65536);
    for (let i = 0; i < pcm.length; i++) pcm[i] = i - 32768;
    const back = decode(encode(pcm, law), law);
    for (let i = 0; i < pcm.length; i++) {
      const err = Math.abs(back[i] - pcm[i]);
      // 8 bits give at most ~1/16 relative error (plus the small-signal step, and clipping at the top).
      assert.ok(
        err <= Math.max(16, Math.abs(pcm[i]) / 16) || Math.abs(pcm[i]) > 32000,
        `${law} ${pcm[i]} -> ${back[i]}`,
      );
    }
    // every code decodes to a value that encodes back to itself (except the two zeros of µ-law)
    for (let c = 0; c < 256; c++) {
      const v = decodeTable(law)[c];
      const again = encode(new Int16Array([v]), law)[0];
      assert.ok(again === c || decodeTable(law)[again] === v, `${law} code ${c}`);
    }
  }
});

test('WAV: 16-bit PCM written and read back; G.711 WAV read; wrong rate refused', () => {
  const pcm = tone(440, 100);
  const back = readWav(writeWav(pcm));
  assert.deepEqual([...back], [...pcm]);
  const ulaw = encode(pcm, 'pcmu');
  const hdr = writeWav(new Int16Array(0));
  const wav = Buffer.concat([hdr, Buffer.from(ulaw)]);
  wav.writeUInt16LE(7, 20); // WAVE_FORMAT_MULAW
  wav.writeUInt16LE(8, 34); // 8 bits
  wav.writeUInt32LE(ulaw.length, 40);
  wav.writeUInt32LE(36 + ulaw.length, 4);
  assert.deepEqual([...readWav(wav)], [...decode(ulaw, 'pcmu')]);
  const stereo = writeWav(pcm);
  stereo.writeUInt32LE(16000, 24);
  assert.throws(() => readWav(stereo), WavError);
  assert.throws(() => readWav(Buffer.from('nonsense')), WavError);
});

test('tone and Goertzel: the generated frequency dominates', () => {
  const t = tone(697, 200);
  assert.equal(dominant(t, [440, 697, 1000, 1209]), 697);
  assert.ok(goertzel(t, 697) > 100 * goertzel(t, 1209));
  assert.equal(t.length, 1600);
});
