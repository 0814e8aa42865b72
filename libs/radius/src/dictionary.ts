/**
 * RADIUS dictionaries in the FreeRADIUS text format: ATTRIBUTE, VALUE, VENDOR,
 * BEGIN-VENDOR / END-VENDOR and $INCLUDE. The dictionary names attributes and
 * their values and says how a value's octets read (string, integer, ipaddr...).
 *
 * Dictionary.standard() is the one shipped with this package (libs/radius/dictionary):
 * RFC 2865/2866/2869 attributes, Kamailio's SIP accounting attributes and
 * Switchboard's vendor attributes.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isIPv4, isIPv6 } from 'node:net';
import {
  ATTR_VENDOR_SPECIFIC,
  HEADER_LENGTH,
  MAX_PACKET_LENGTH,
  RadiusDecodeError,
  type RawAttribute,
} from './packet';

export type AttributeType =
  'string' | 'octets' | 'integer' | 'ipaddr' | 'date' | 'ipv6addr' | 'byte' | 'short';

export interface AttributeDef {
  readonly name: string;
  /** The attribute type: the RFC type for standard attributes, the vendor type for VSAs. */
  readonly code: number;
  /** Vendor-Id (Private Enterprise Number) for a vendor attribute; undefined for a standard one. */
  readonly vendor?: number;
  readonly type: AttributeType;
  /** VALUE name -> number (integer attributes). */
  readonly values: Map<string, number>;
  /** number -> VALUE name (the first name defined for a number wins). */
  readonly names: Map<number, string>;
}

/** A decoded attribute value: text, a number, an enum name, an address, or raw octets. */
export type AttributeValue = string | number | Buffer;

export class DictionaryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DictionaryError';
  }
}

const TYPES: Record<string, AttributeType> = {
  string: 'string',
  text: 'string',
  octets: 'octets',
  integer: 'integer',
  ipaddr: 'ipaddr',
  ipv4addr: 'ipaddr',
  date: 'date',
  ipv6addr: 'ipv6addr',
  byte: 'byte',
  short: 'short',
};

/** Where this package's dictionary files are (libs/radius/). */
export const DICTIONARY_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Standard attributes by code; a vendor's attributes by vendor type. */
type CodeTable = Array<AttributeDef | undefined>;

export class Dictionary {
  private readonly byName = new Map<string, AttributeDef>();
  private readonly standardCodes: CodeTable = new Array<AttributeDef | undefined>(256).fill(undefined);
  private readonly vendorCodes = new Map<number, CodeTable>();
  private readonly vendorIds = new Map<string, number>();
  private readonly vendorNames = new Map<number, string>();

  private static std: Dictionary | undefined;

  /** The dictionary shipped with this package, loaded once. */
  static standard(): Dictionary {
    if (!Dictionary.std) Dictionary.std = Dictionary.load(join(DICTIONARY_DIR, 'dictionary'));
    return Dictionary.std;
  }

  /** Loads a dictionary file and the files it $INCLUDEs (relative to the including file). */
  static load(file: string): Dictionary {
    const d = new Dictionary();
    d.loadFile(file);
    return d;
  }

  /** Parses dictionary text; $INCLUDE is resolved with `include` (relative names against `dir`). */
  static parse(
    text: string,
    dir = '.',
    include: (path: string) => string = (p) => readFileSync(p, 'utf8'),
  ): Dictionary {
    const d = new Dictionary();
    d.parseText(text, dir, '<text>', include, 0);
    return d;
  }

  loadFile(file: string): void {
    this.parseText(readFileSync(file, 'utf8'), dirname(file), file, (p) => readFileSync(p, 'utf8'), 0);
  }

  private parseText(
    text: string,
    dir: string,
    where: string,
    include: (path: string) => string,
    depth: number,
  ): void {
    if (depth > 16) throw new DictionaryError(`${where}: $INCLUDE nested too deep`);
    let vendor: number | undefined;
    const lines = text.split(/\r?\n/);
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].replace(/#.*$/, '').trim();
      if (!line) continue;
      const f = line.split(/\s+/);
      const at = `${where}:${i + 1}`;
      const fail = (msg: string): never => {
        throw new DictionaryError(`${at}: ${msg}`);
      };
      switch (f[0]) {
        case '$INCLUDE':
        case '$INCLUDE-': {
          if (!f[1]) fail('$INCLUDE needs a file');
          const path = isAbsolute(f[1]) ? f[1] : join(dir, f[1]);
          let body: string;
          try {
            body = include(path);
          } catch (e) {
            if (f[0] === '$INCLUDE-') break;
            throw new DictionaryError(`${at}: cannot include ${path}: ${(e as Error).message}`);
          }
          this.parseText(body, dirname(path), path, include, depth + 1);
          break;
        }
        case 'VENDOR': {
          const id = Number(f[2]);
          if (!f[1] || !Number.isInteger(id) || id < 0) fail(`bad VENDOR line "${line}"`);
          this.vendorIds.set(f[1], id);
          if (!this.vendorNames.has(id)) this.vendorNames.set(id, f[1]);
          break;
        }
        case 'BEGIN-VENDOR': {
          const id = this.vendorIds.get(f[1]);
          if (id === undefined) fail(`unknown vendor ${f[1]}`);
          vendor = id;
          break;
        }
        case 'END-VENDOR':
          vendor = undefined;
          break;
        case 'ATTRIBUTE': {
          const [, name, codeText, typeText, extra] = f;
          const code = Number(codeText);
          if (!name || !Number.isInteger(code) || code < 1 || code > 255)
            fail(`bad ATTRIBUTE line "${line}"`);
          const type = TYPES[typeText];
          if (!type) fail(`unsupported type ${typeText} for ${name}`);
          // "ATTRIBUTE name code type VendorName" is the old way to name the vendor.
          const v = extra && this.vendorIds.has(extra) ? this.vendorIds.get(extra) : vendor;
          this.define({ name, code, vendor: v, type, values: new Map(), names: new Map() });
          break;
        }
        case 'VALUE': {
          const [, attrName, valueName, numText] = f;
          const def = this.byName.get(attrName?.toLowerCase());
          const n = Number(numText);
          if (!def) fail(`VALUE for unknown attribute ${attrName}`);
          if (!valueName || !Number.isInteger(n)) fail(`bad VALUE line "${line}"`);
          def!.values.set(valueName, n);
          if (!def!.names.has(n)) def!.names.set(n, valueName);
          break;
        }
        default:
          fail(`unknown keyword ${f[0]}`);
      }
    }
  }

  private define(def: AttributeDef): void {
    const lower = def.name.toLowerCase();
    const prev = this.byName.get(lower);
    if (prev) {
      // Redefining the same attribute the same way (two files share it) is fine.
      if (prev.code === def.code && prev.vendor === def.vendor && prev.type === def.type) return;
      throw new DictionaryError(`attribute ${def.name} defined twice, differently`);
    }
    this.byName.set(lower, def);
    let table = this.standardCodes;
    if (def.vendor !== undefined) {
      let t = this.vendorCodes.get(def.vendor);
      if (!t)
        this.vendorCodes.set(def.vendor, (t = new Array<AttributeDef | undefined>(256).fill(undefined)));
      table = t;
    }
    table[def.code] ??= def;
  }

  /** The attribute named (case-insensitive). */
  attribute(name: string): AttributeDef | undefined {
    return this.byName.get(name.toLowerCase());
  }

  /** The attribute with this code (and vendor). */
  byType(code: number, vendor?: number): AttributeDef | undefined {
    return vendor === undefined ? this.standardCodes[code] : this.vendorCodes.get(vendor)?.[code];
  }

  vendorId(name: string): number | undefined {
    return this.vendorIds.get(name);
  }

  vendorName(id: number): string | undefined {
    return this.vendorNames.get(id);
  }

  /** The name of a raw attribute: the dictionary's, or "Attr-N" / "Vendor-V-Attr-N" when unknown. */
  nameOf(a: RawAttribute): string {
    const def = this.byType(a.type, a.vendor);
    if (def) return def.name;
    return a.vendor === undefined ? `Attr-${a.type}` : `Vendor-${a.vendor}-Attr-${a.type}`;
  }

  /** Reads a raw attribute's value as its dictionary type says; unknown attributes stay octets. */
  decodeValue(a: RawAttribute): AttributeValue {
    const def = this.byType(a.type, a.vendor);
    if (!def) return a.value;
    return decodeTyped(def, a.value);
  }

  /** Name -> value of every attribute; an attribute that occurs more than once gives an array. */
  decodeAll(attrs: readonly RawAttribute[]): Record<string, AttributeValue | AttributeValue[]> {
    const out: Record<string, AttributeValue | AttributeValue[]> = {};
    for (const a of attrs) {
      const name = this.nameOf(a);
      const v = this.decodeValue(a);
      const prev = out[name];
      if (prev === undefined) out[name] = v;
      else if (Array.isArray(prev)) prev.push(v);
      else out[name] = [prev, v];
    }
    return out;
  }

  /**
   * The attributes of an encoded packet, name -> value: the same as
   * `decodeAll(decodePacket(buf).attributes)`, read straight from the buffer (no
   * RawAttribute objects, strings decoded in place). Throws RadiusDecodeError where
   * decodePacket does. The header is not checked beyond its Length (the caller has).
   */
  decodePacketAttributes(buf: Buffer): Record<string, AttributeValue | AttributeValue[]> {
    if (buf.length < HEADER_LENGTH)
      throw new RadiusDecodeError(`packet of ${buf.length} octets is shorter than the header`);
    const length = buf.readUInt16BE(2);
    if (length < HEADER_LENGTH || length > MAX_PACKET_LENGTH)
      throw new RadiusDecodeError(`bad Length ${length}`);
    if (length > buf.length)
      throw new RadiusDecodeError(`Length ${length} exceeds the datagram (${buf.length} octets)`);
    const out: Record<string, AttributeValue | AttributeValue[]> = {};
    let off = HEADER_LENGTH;
    while (off < length) {
      if (off + 2 > length) throw new RadiusDecodeError(`truncated attribute at offset ${off}`);
      const type = buf[off];
      const len = buf[off + 1];
      if (len < 2 || off + len > length)
        throw new RadiusDecodeError(`attribute ${type} at offset ${off} has bad length ${len}`);
      if (type === ATTR_VENDOR_SPECIFIC && this.vendorAttributes(buf, off + 2, off + len, out)) {
        off += len;
        continue;
      }
      const def = this.standardCodes[type];
      if (def) add(out, def.name, decodeAt(def, buf, off + 2, off + len));
      else add(out, `Attr-${type}`, buf.subarray(off + 2, off + len));
      off += len;
    }
    return out;
  }

  /** Vendor-Specific in [start, end) in the usual format into `out`; false (nothing added) when it is not. */
  private vendorAttributes(
    buf: Buffer,
    start: number,
    end: number,
    out: Record<string, AttributeValue | AttributeValue[]>,
  ): boolean {
    if (end - start < 6) return false;
    // Check the sub-attributes first, as splitVendorSpecific does: a bad one keeps the whole 26.
    for (let o = start + 4; o < end;) {
      const l = buf[o + 1];
      if (o + 2 > end || l < 2 || o + l > end) return false;
      o += l;
    }
    const vendor = buf.readUInt32BE(start);
    const table = this.vendorCodes.get(vendor);
    for (let o = start + 4; o < end;) {
      const t = buf[o];
      const l = buf[o + 1];
      const def = table?.[t];
      if (def) add(out, def.name, decodeAt(def, buf, o + 2, o + l));
      else add(out, `Vendor-${vendor}-Attr-${t}`, buf.subarray(o + 2, o + l));
      o += l;
    }
    return true;
  }

  /** Encodes one named attribute (a VALUE name is accepted for integer attributes). */
  encode(name: string, value: AttributeValue): RawAttribute {
    const def = this.attribute(name);
    if (!def) throw new DictionaryError(`unknown attribute ${name}`);
    if (def.code === ATTR_VENDOR_SPECIFIC && def.vendor === undefined) {
      throw new DictionaryError('encode a vendor attribute by its own name, not Vendor-Specific');
    }
    return { type: def.code, vendor: def.vendor, value: encodeTyped(def, value) };
  }

  /** Encodes a list of [name, value] pairs (order kept). */
  encodeAll(attrs: Iterable<readonly [string, AttributeValue]>): RawAttribute[] {
    const out: RawAttribute[] = [];
    for (const [n, v] of attrs) out.push(this.encode(n, v));
    return out;
  }
}

function add(out: Record<string, AttributeValue | AttributeValue[]>, name: string, v: AttributeValue): void {
  const prev = out[name];
  if (prev === undefined) out[name] = v;
  else if (Array.isArray(prev)) prev.push(v);
  else out[name] = [prev, v];
}

/** decodeTyped of buf[start, end), without a subarray for the common types. */
function decodeAt(def: AttributeDef, buf: Buffer, start: number, end: number): AttributeValue {
  const len = end - start;
  switch (def.type) {
    case 'string':
      return buf.toString('utf8', start, end);
    case 'integer':
      if (len !== 4) break;
      return def.names.get(buf.readUInt32BE(start)) ?? buf.readUInt32BE(start);
    case 'date':
      if (len !== 4) break;
      return buf.readUInt32BE(start);
    case 'ipaddr':
      if (len !== 4) break;
      return `${buf[start]}.${buf[start + 1]}.${buf[start + 2]}.${buf[start + 3]}`;
  }
  return decodeTyped(def, buf.subarray(start, end));
}

function decodeTyped(def: AttributeDef, b: Buffer): AttributeValue {
  switch (def.type) {
    case 'string':
      return b.toString('utf8');
    case 'integer':
    case 'date':
    case 'short':
    case 'byte': {
      const len = def.type === 'short' ? 2 : def.type === 'byte' ? 1 : 4;
      if (b.length !== len) return b;
      const n = len === 4 ? b.readUInt32BE(0) : len === 2 ? b.readUInt16BE(0) : b[0];
      return def.type === 'date' ? n : (def.names.get(n) ?? n);
    }
    case 'ipaddr':
      return b.length === 4 ? `${b[0]}.${b[1]}.${b[2]}.${b[3]}` : b;
    case 'ipv6addr': {
      if (b.length !== 16) return b;
      const parts: string[] = [];
      for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(i).toString(16));
      return parts.join(':');
    }
    default:
      return b;
  }
}

function encodeTyped(def: AttributeDef, v: AttributeValue): Buffer {
  const bad = (): never => {
    throw new DictionaryError(`bad value ${JSON.stringify(String(v))} for ${def.name} (${def.type})`);
  };
  if (Buffer.isBuffer(v)) return v;
  switch (def.type) {
    case 'string':
      return Buffer.from(String(v), 'utf8');
    case 'integer':
    case 'date':
    case 'short':
    case 'byte': {
      let n: number | undefined = typeof v === 'number' ? v : def.values.get(v);
      if (n === undefined && /^\d+$/.test(String(v))) n = Number(v);
      const len = def.type === 'short' ? 2 : def.type === 'byte' ? 1 : 4;
      if (n === undefined || !Number.isInteger(n) || n < 0 || n >= 2 ** (8 * len)) bad();
      const b = Buffer.alloc(len);
      b.writeUIntBE(n!, 0, len);
      return b;
    }
    case 'ipaddr': {
      const s = String(v);
      if (!isIPv4(s)) bad();
      return Buffer.from(s.split('.').map(Number));
    }
    case 'ipv6addr': {
      const s = String(v);
      if (!isIPv6(s) || s.includes('.')) bad();
      return ipv6Bytes(s);
    }
    default:
      if (typeof v === 'string') return Buffer.from(v, 'utf8');
      return bad();
  }
}

function ipv6Bytes(s: string): Buffer {
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}
