/**
 * G.711 (ITU-T G.711) µ-law and A-law, by table: decoding is a 256-entry
 * lookup, encoding a 64 Ki-entry lookup on the 16-bit sample, so the hot path
 * (RTP in and out, the conference mixer) does one array read per sample.
 * Tables are built once from the reference algorithms (Sun's g711.c).
 */
export type Law = 'pcmu' | 'pcma';

/** RTP static payload types (RFC 3551 §6). */
export const PT_PCMU = 0;
export const PT_PCMA = 8;
/** The encoded value of silence in each law. */
export const SILENCE: Record<Law, number> = { pcmu: 0xff, pcma: 0xd5 };

const BIAS = 0x84;
const CLIP = 32635;

function ulawEncode(sample: number): number {
  let s = sample;
  const sign = s < 0 ? 0x80 : 0;
  if (sign) s = -s;
  if (s > CLIP) s = CLIP;
  s += BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

function ulawDecode(u: number): number {
  const v = ~u & 0xff;
  const exponent = (v >> 4) & 7;
  const s = (((v & 0x0f) << 3) + BIAS) << exponent;
  return v & 0x80 ? BIAS - s : s - BIAS;
}

const SEG_AEND = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];

function alawEncode(sample: number): number {
  let pcm = sample >> 3;
  let mask: number;
  if (pcm >= 0) mask = 0xd5;
  else {
    mask = 0x55;
    pcm = -pcm - 1;
  }
  let seg = 0;
  while (seg < 8 && pcm > SEG_AEND[seg]) seg++;
  if (seg >= 8) return 0x7f ^ mask;
  let aval = seg << 4;
  aval |= seg < 2 ? (pcm >> 1) & 0x0f : (pcm >> seg) & 0x0f;
  return aval ^ mask;
}

function alawDecode(a: number): number {
  const v = a ^ 0x55;
  let t = (v & 0x0f) << 4;
  const seg = (v & 0x70) >> 4;
  if (seg === 0) t += 8;
  else if (seg === 1) t += 0x108;
  else t = (t + 0x108) << (seg - 1);
  return v & 0x80 ? t : -t;
}

const DECODE: Record<Law, Int16Array> = { pcmu: new Int16Array(256), pcma: new Int16Array(256) };
const ENCODE: Record<Law, Uint8Array> = { pcmu: new Uint8Array(65536), pcma: new Uint8Array(65536) };
for (let i = 0; i < 256; i++) {
  DECODE.pcmu[i] = ulawDecode(i);
  DECODE.pcma[i] = alawDecode(i);
}
for (let i = 0; i < 65536; i++) {
  const s = i >= 32768 ? i - 65536 : i;
  ENCODE.pcmu[i] = ulawEncode(s);
  ENCODE.pcma[i] = alawEncode(s);
}

/** The decode table of a law (index: encoded byte, value: 16-bit linear sample). */
export const decodeTable = (law: Law): Int16Array => DECODE[law];
/** The encode table of a law (index: sample & 0xffff). */
export const encodeTable = (law: Law): Uint8Array => ENCODE[law];

/** Encode 16-bit linear samples into a new G.711 buffer. */
export function encode(pcm: Int16Array, law: Law): Uint8Array {
  const t = ENCODE[law];
  const out = new Uint8Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) out[i] = t[pcm[i] & 0xffff];
  return out;
}

/** Decode G.711 bytes into `out` at `offset` (no allocation). */
export function decodeInto(g711: Uint8Array, law: Law, out: Int16Array, offset = 0): void {
  const t = DECODE[law];
  const n = Math.min(g711.length, out.length - offset);
  for (let i = 0; i < n; i++) out[offset + i] = t[g711[i]];
}

/** Decode buf[start, end) into `out` at `offset` (no allocation; for the receive path). */
export function decodeRange(
  buf: Uint8Array,
  start: number,
  end: number,
  law: Law,
  out: Int16Array,
  offset: number,
): void {
  const t = DECODE[law];
  const n = Math.min(end - start, out.length - offset);
  for (let i = 0; i < n; i++) out[offset + i] = t[buf[start + i]];
}

export function decode(g711: Uint8Array, law: Law): Int16Array {
  const out = new Int16Array(g711.length);
  decodeInto(g711, law, out);
  return out;
}

export const lawOfPayloadType = (pt: number): Law | undefined =>
  pt === PT_PCMU ? 'pcmu' : pt === PT_PCMA ? 'pcma' : undefined;
