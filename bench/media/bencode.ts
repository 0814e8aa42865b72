/**
 * Bencode (BitTorrent BEP 3), as rtpengine's ng control protocol uses it:
 * integers, byte strings, lists and dictionaries (keys sorted on encode).
 * Strings decode to JS strings (latin1 would keep bytes; SDP is ASCII).
 */
export type BValue = number | string | Buffer | BValue[] | { [k: string]: BValue };

export function encode(v: BValue): Buffer {
  const parts: Buffer[] = [];
  const walk = (x: BValue): void => {
    if (typeof x === 'number') {
      if (!Number.isInteger(x)) throw new Error(`bencode: ${x} is not an integer`);
      parts.push(Buffer.from(`i${x}e`));
    } else if (typeof x === 'string' || Buffer.isBuffer(x)) {
      const b = Buffer.isBuffer(x) ? x : Buffer.from(x, 'utf8');
      parts.push(Buffer.from(`${b.length}:`), b);
    } else if (Array.isArray(x)) {
      parts.push(Buffer.from('l'));
      x.forEach(walk);
      parts.push(Buffer.from('e'));
    } else {
      parts.push(Buffer.from('d'));
      for (const k of Object.keys(x).sort()) {
        walk(k);
        walk(x[k]!);
      }
      parts.push(Buffer.from('e'));
    }
  };
  walk(v);
  return Buffer.concat(parts);
}

/** Decode one value from b (from offset); throws on malformed input or trailing bytes. */
export function decode(b: Buffer, offset = 0): BValue {
  let i = offset;
  const value = (): BValue => {
    const c = b[i];
    if (c === undefined) throw new Error('bencode: truncated');
    if (c === 0x69 /* i */) {
      const end = b.indexOf(0x65, i);
      if (end < 0) throw new Error('bencode: unterminated integer');
      const s = b.toString('latin1', i + 1, end);
      if (!/^-?\d+$/.test(s)) throw new Error(`bencode: bad integer "${s}"`);
      i = end + 1;
      return Number(s);
    }
    if (c === 0x6c /* l */) {
      i++;
      const out: BValue[] = [];
      while (b[i] !== 0x65) out.push(value());
      i++;
      return out;
    }
    if (c === 0x64 /* d */) {
      i++;
      const out: { [k: string]: BValue } = {};
      while (b[i] !== 0x65) {
        const k = value();
        if (typeof k !== 'string') throw new Error('bencode: dictionary key is not a string');
        // defineProperty: a key named __proto__ stays a key
        Object.defineProperty(out, k, {
          value: value(),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      i++;
      return out;
    }
    if (c >= 0x30 && c <= 0x39) {
      const colon = b.indexOf(0x3a, i);
      if (colon < 0) throw new Error('bencode: bad string length');
      const len = Number(b.toString('latin1', i, colon));
      if (!Number.isInteger(len) || colon + 1 + len > b.length)
        throw new Error('bencode: string runs past the end');
      const s = b.toString('utf8', colon + 1, colon + 1 + len);
      i = colon + 1 + len;
      return s;
    }
    throw new Error(`bencode: unexpected byte 0x${c.toString(16)} at ${i}`);
  };
  const v = value();
  if (i !== b.length) throw new Error(`bencode: ${b.length - i} trailing bytes`);
  return v;
}
