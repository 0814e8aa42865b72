/**
 * WAV (RIFF) files: reading 8 kHz mono prompts (16-bit PCM, or G.711 µ-law /
 * A-law, WAVE format tags 7 and 6) and writing 16-bit PCM recordings.
 */
import { decode } from './g711';

export const SAMPLE_RATE = 8000;
const FORMAT_PCM = 1;
const FORMAT_ALAW = 6;
const FORMAT_MULAW = 7;

export class WavError extends Error {
  override name = 'WavError';
}

/** Reads a WAV file's bytes into 16-bit linear samples; only 8 kHz mono is accepted. */
export function readWav(buf: Buffer): Int16Array {
  if (buf.length < 12 || buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE')
    throw new WavError('not a RIFF/WAVE file');
  let fmt: { format: number; channels: number; rate: number; bits: number } | undefined;
  let off = 12;
  while (off + 8 <= buf.length) {
    const id = buf.toString('ascii', off, off + 4);
    const size = buf.readUInt32LE(off + 4);
    const body = off + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > buf.length) throw new WavError('short fmt chunk');
      fmt = {
        format: buf.readUInt16LE(body),
        channels: buf.readUInt16LE(body + 2),
        rate: buf.readUInt32LE(body + 4),
        bits: buf.readUInt16LE(body + 14),
      };
      // WAVE_FORMAT_EXTENSIBLE: the real tag is the first two bytes of the sub-format GUID.
      if (fmt.format === 0xfffe && size >= 40) fmt.format = buf.readUInt16LE(body + 24);
    } else if (id === 'data') {
      if (!fmt) throw new WavError('data chunk before fmt chunk');
      if (fmt.channels !== 1 || fmt.rate !== SAMPLE_RATE)
        throw new WavError(`need 8000 Hz mono, got ${fmt.rate} Hz with ${fmt.channels} channels`);
      const data = buf.subarray(body, Math.min(body + size, buf.length));
      if (fmt.format === FORMAT_PCM && fmt.bits === 16) {
        const out = new Int16Array(data.length >> 1);
        for (let i = 0; i < out.length; i++) out[i] = data.readInt16LE(i * 2);
        return out;
      }
      if ((fmt.format === FORMAT_MULAW || fmt.format === FORMAT_ALAW) && fmt.bits === 8)
        return decode(data, fmt.format === FORMAT_MULAW ? 'pcmu' : 'pcma');
      throw new WavError(
        `unsupported format tag ${fmt.format} with ${fmt.bits} bits (need 16-bit PCM or G.711)`,
      );
    }
    off = body + size + (size & 1);
  }
  throw new WavError('no data chunk');
}

/** A 16-bit PCM, 8 kHz, mono WAV file of the samples. */
export function writeWav(pcm: Int16Array): Buffer {
  const dataLen = pcm.length * 2;
  const buf = Buffer.alloc(44 + dataLen);
  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(36 + dataLen, 4);
  buf.write('WAVE', 8, 'ascii');
  buf.write('fmt ', 12, 'ascii');
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(FORMAT_PCM, 20);
  buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(SAMPLE_RATE, 24);
  buf.writeUInt32LE(SAMPLE_RATE * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36, 'ascii');
  buf.writeUInt32LE(dataLen, 40);
  for (let i = 0; i < pcm.length; i++) buf.writeInt16LE(pcm[i], 44 + i * 2);
  return buf;
}
