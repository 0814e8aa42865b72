/**
 * SipRequest / SipResponse: a view over the received Buffer. Header fields are
 * kept as byte offsets; typed values are parsed on first use and cached.
 * Edits (add Via, remove Route, ...) replace entries of the field list; the
 * serializer copies the untouched byte ranges of the original buffer.
 */
import { isAscii } from 'node:buffer';
import { TOKEN, strBytes } from './chars';
import { SipParseError, badHeader } from './errors';
import {
  Contact,
  HID,
  NameAddr,
  Via,
  findComma,
  headerName,
  KNOWN_HEADERS,
  parseCSeq,
  parseNameAddr,
  parseNameAddrAt,
  parseOneNameAddrAt,
  checkNameAddrAt,
  TAG_END,
  TAG_START,
  parseUint,
  parseVia,
  parseViaAt,
  splitList,
  type CSeq,
  type HeaderId,
  type HeaderName,
} from './headers';
import { MAX_VIA_COUNT } from './limits';
import { parseUri, parseUriB, type Uri } from './uri';

const FOLD = /\r?\n[ \t]*/g;
/** name = 1*token char (RFC 3261 §25) */
function isToken(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c > 127 || TOKEN[c] !== 1) return false;
  }
  return true;
}
/** Array splice(i, 0, f) / splice(i, 1) without the builtin's cost on small arrays. */
function insertAt(a: HeaderField[], i: number, f: HeaderField): void {
  a.push(f);
  for (let j = a.length - 1; j > i; j--) a[j] = a[j - 1];
  a[i] = f;
}
function removeAt(a: HeaderField[], i: number): void {
  for (let j = i; j < a.length - 1; j++) a[j] = a[j + 1];
  a.pop();
}
const isTrimWs = (c: number) => c === 32 || (c >= 9 && c <= 13);

/** One header field. Original fields point into the buffer; new or edited ones carry `value`. */
export class HeaderField {
  /** buffer of an original field (null for new fields) */
  readonly src: Buffer | null;
  private _name: string | undefined;
  private _key: string | undefined;
  readonly id: HeaderId;
  readonly nameStart: number;
  readonly nameEnd: number;
  /** original line [lineStart, lineEnd) including its line end; -1 for new fields */
  readonly lineStart: number;
  readonly lineEnd: number;
  readonly valueStart: number;
  readonly valueEnd: number;
  readonly folded: boolean;
  /** value of a new/edited field */
  readonly value: string | undefined;
  constructor(
    src: Buffer | null,
    name: string | undefined,
    key: string | undefined,
    id: HeaderId,
    nameEnd: number,
    lineStart: number,
    lineEnd: number,
    valueStart: number,
    valueEnd: number,
    folded: boolean,
    value: string | undefined,
  ) {
    this.src = src;
    this._name = name;
    this._key = key;
    this.id = id;
    this.nameStart = lineStart;
    this.nameEnd = nameEnd;
    this.lineStart = lineStart;
    this.lineEnd = lineEnd;
    this.valueStart = valueStart;
    this.valueEnd = valueEnd;
    this.folded = folded;
    this.value = value;
  }
  /** name as written (original) or canonical (new) */
  get name(): string {
    return (this._name ??= this.src!.toString('latin1', this.nameStart, this.nameEnd));
  }
  /** lower-case full name (compact forms expanded) */
  get key(): string {
    return (this._key ??= headerName(this.name).key);
  }
  /** A new field; `h` is headerName(name) when the caller has it already. */
  static create(name: string, value: string, h: HeaderName = headerName(name)): HeaderField {
    const written = h.id !== HID.other || h.canonical !== name ? h.canonical : name;
    if (value.indexOf('\r') >= 0 || value.indexOf('\n') >= 0)
      throw new SipParseError('bad_header', `${name}: CR/LF in value`, 400, h.key);
    // a known name (any spelling headerName resolved) is a token
    if (h.index < 0 && !isToken(name))
      throw new SipParseError('bad_header', `bad header name "${name}"`, 400);
    return new HeaderField(null, written, h.key, h.id, -1, -1, -1, -1, -1, false, value);
  }
}

/**
 * Layout of the parser's header index: IDX_STRIDE numbers per field, offsets packed two
 * to a number (messages are at most 64 KiB): half the array to allocate and copy.
 *   [k]     id | folded << 4 | (KNOWN_HEADERS index + 1) << 5
 *   [k + 1] lineStart | nameEnd << 16
 *   [k + 2] lineEnd | valueStart << 16
 *   [k + 3] valueEnd
 * A field added or edited while the index is still in use (proxy edits) is an entry with the
 * IDX_NEW bit in [k] and, in [k + 1], its place in the message's list of new fields; a
 * removed field is an entry IDX_GONE.
 */
export const IDX_STRIDE = 4;
const IDX_NEW = 1 << 24;
/** @internal */
export function idxEntry(
  x: number[],
  k: number,
  id: HeaderId,
  name: number,
  folded: boolean,
  nameEnd: number,
  lineStart: number,
  lineEnd: number,
  vs: number,
  ve: number,
): void {
  x[k] = id | (folded ? 16 : 0) | ((name + 1) << 5);
  x[k + 1] = lineStart | (nameEnd << 16);
  x[k + 2] = lineEnd | (vs << 16);
  x[k + 3] = ve;
}
const idxId = (x: number[], k: number) => (x[k] & 15) as HeaderId;
/** @internal */
export const idxFolded = (x: number[], k: number) => (x[k] & 16) !== 0;
const idxName = (x: number[], k: number) => ((x[k] & (IDX_NEW - 1)) >> 5) - 1;
const idxIsNew = (x: number[], k: number) => (x[k] & IDX_NEW) !== 0;
/**
 * Unused entries the parser leaves at the start of the index, so that the fields a proxy
 * puts on top (Via, Record-Route) go in without moving the others.
 */
export const IDX_HEAD = 2 * IDX_STRIDE;
/** [k] of a removed entry: an id no header has, so every lookup passes over it */
const IDX_GONE = 15;
const idxLineStart = (x: number[], k: number) => x[k + 1] & 0xffff;
const idxNameEnd = (x: number[], k: number) => x[k + 1] >>> 16;
const idxLineEnd = (x: number[], k: number) => x[k + 2] & 0xffff;
/** @internal */
export const idxValueStart = (x: number[], k: number) => x[k + 2] >>> 16;
/** @internal */
export const idxValueEnd = (x: number[], k: number) => x[k + 3];

export type BodyInput = Buffer | string;

/**
 * Serialized messages are written into slabs of 64 KiB, as views. Buffer.from and allocUnsafe
 * take theirs from a pool of 8 KiB, a new ArrayBuffer every ten messages or so, and making
 * them was 6% of a proxy's time at 1,600 calls/s. A slab lives as long as a view of it does,
 * so bytes kept for seconds (a completed transaction's, for its retransmissions) are copied
 * into slabs of their own (keepBytes): the slabs of the messages just sent then die young, in
 * a scavenge. Pinned by a few kept views each, they were promoted and grew V8's external memory
 * until it forced a full collection every few seconds (bench/RESULTS.md, SIP proxy).
 */
const SLAB = 64 * 1024;

class Slabs {
  private slab = Buffer.allocUnsafeSlow(SLAB);
  private at = 0;

  /** n bytes to write into: a view of the current slab, or a Buffer of their own past a quarter slab. */
  bytes(n: number): Buffer {
    if (n > SLAB >>> 2) return Buffer.allocUnsafe(n);
    if (this.at + n > SLAB) {
      this.slab = Buffer.allocUnsafeSlow(SLAB);
      this.at = 0;
    }
    const out = this.slab.subarray(this.at, this.at + n);
    this.at = (this.at + n + 7) & ~7;
    return out;
  }
}

const sent = new Slabs();
const kept = new Slabs();
const slabBytes = (n: number): Buffer => sent.bytes(n);

/** A copy of bytes that will be kept for seconds, in the slabs of such bytes (see Slabs). */
export function keepBytes(b: Buffer): Buffer {
  const out = kept.bytes(b.length);
  b.copy(out);
  return out;
}

/** A string's UTF-8 bytes, in a slab. */
function textBytes(s: string): Buffer {
  const out = slabBytes(Buffer.byteLength(s, 'utf8'));
  out.write(s, 0, 'utf8');
  return out;
}

export abstract class SipMessage {
  /** the buffer the message was parsed from (empty for built messages) */
  readonly buf: Buffer;
  /**
   * Header fields as parsed: IDX_STRIDE numbers each (see idxEntry), turned into
   * HeaderField objects only when something needs them (edits, lookups by name).
   */
  private idx: number[] | null;
  /** first entry in use of idx (entries before it are free room, see IDX_HEAD) */
  private i0 = 0;
  /** fields added or edited while idx is in use (entries with IDX_NEW point here) */
  private added: HeaderField[] | null = null;
  /** an entry of idx was added, replaced or removed */
  private idxEdited = false;
  private _fields: HeaderField[] | undefined;
  /** SIP-Version as received (always "SIP/2.0" once parsed) */
  version = 'SIP/2.0';
  protected slStart: number;
  protected slEnd: number;
  /** true when the original start line can be copied as is */
  protected slClean: boolean;
  protected bodyStart: number;
  protected bodyEnd: number;
  private _body: Buffer | null = null;
  private bodyDirty = false;

  // caches
  private _vias: Via[] | undefined;
  private _via: Via | undefined;
  /** @internal set by the parser when it validated the field on the bytes */
  _cseq: CSeq | undefined;
  private _from: NameAddr | undefined;
  private _to: NameAddr | undefined;
  /**
   * From / To tags found when the parser checked the field without building it (null: no
   * tag value); undefined when not known (then from / to give it)
   */
  private _fromTag: string | null | undefined;
  private _toTag: string | null | undefined;
  /** @internal */
  _callId: string | undefined;
  /** @internal */
  _mf: number | null | undefined;
  private _routes: NameAddr[] | undefined;
  private _rr: NameAddr[] | undefined;
  private _contacts: Contact[] | undefined;

  constructor(
    buf: Buffer,
    fields: HeaderField[] | number[],
    slStart: number,
    slEnd: number,
    bodyStart: number,
    bodyEnd: number,
  ) {
    this.buf = buf;
    if (fields.length > 0 && typeof fields[0] === 'number') {
      // the parser's index: IDX_HEAD free numbers, then the entries
      this.idx = fields as number[];
      this.i0 = IDX_HEAD;
      this._fields = undefined;
    } else {
      this.idx = null;
      this._fields = fields as HeaderField[];
    }
    this.slStart = slStart;
    this.slEnd = slEnd;
    this.slClean = slEnd > slStart;
    this.bodyStart = bodyStart;
    this.bodyEnd = bodyEnd;
  }

  abstract readonly isRequest: boolean;
  abstract startLine(): string;

  /**
   * @internal the header section decoded when it is all ASCII (then its chars are the
   * buffer's bytes; the parser may set the whole message's text), else null
   */
  _text: string | null | undefined;
  /**
   * Text of buf[s, e) in the header section. An all-ASCII header section is
   * decoded once (one native call) and values are substrings of it: far cheaper
   * in V8 than one Buffer-to-string call per value. Otherwise UTF-8 per value.
   * The body is never decoded.
   */
  /** @internal */
  text(s: number, e: number): string {
    let t = this._text;
    if (t === undefined) t = this.decodeHeaders();
    return t !== null ? t.substring(s, e) : this.buf.toString('utf8', s, e);
  }
  /**
   * Decodes the header section once when it is all ASCII (one char per byte: offsets
   * hold, and the text's chars are the buffer's bytes); null otherwise (values are then
   * decoded one by one as UTF-8).
   */
  private decodeHeaders(): string | null {
    const end = this.bodyStart;
    const b = this.buf;
    let t: string | null = '';
    if (end > 0)
      t =
        isAscii(b) || isAscii(b.subarray(0, end))
          ? (b as unknown as { latin1Slice(s: number, e: number): string }).latin1Slice(0, end)
          : null;
    return (this._text = t);
  }

  /** The value of a field as a string (unfolded). */
  fieldValue(f: HeaderField): string {
    if (f.value !== undefined) return f.value;
    const s =
      f.src === this.buf
        ? this.text(f.valueStart, f.valueEnd)
        : f.src!.toString('utf8', f.valueStart, f.valueEnd);
    return f.folded ? s.replace(FOLD, ' ') : s;
  }

  /** header fields in order */
  get fields(): HeaderField[] {
    if (this._fields !== undefined) return this._fields;
    const x = this.idx!;
    const out: HeaderField[] = [];
    for (let k = this.i0; k < x.length; k += IDX_STRIDE) {
      if (x[k] === IDX_GONE) continue;
      if (idxIsNew(x, k)) {
        out.push(this.added![x[k + 1]]);
        continue;
      }
      const ni = idxName(x, k);
      out.push(
        new HeaderField(
          this.buf,
          undefined,
          ni < 0 ? undefined : KNOWN_HEADERS[ni].key,
          idxId(x, k),
          idxNameEnd(x, k),
          idxLineStart(x, k),
          idxLineEnd(x, k),
          idxValueStart(x, k),
          idxValueEnd(x, k),
          idxFolded(x, k),
          undefined,
        ),
      );
    }
    this.idx = null;
    this.added = null;
    return (this._fields = out);
  }
  set fields(f: HeaderField[]) {
    this._fields = f;
    this.idx = null;
    this.added = null;
  }
  /**
   * Index entry of the first field `id` when its value can be parsed in place in the
   * decoded header text (one line, text decoded one char per byte); else -1.
   */
  private flatField(id: HeaderId): number {
    const x = this.idx;
    if (x === null) return -1;
    for (let k = this.i0; k < x.length; k += IDX_STRIDE) {
      if (idxId(x, k) !== id) continue;
      if (idxFolded(x, k) || idxIsNew(x, k)) return -1;
      if (this._text === undefined) this.decodeHeaders();
      return this._text === null ? -1 : k;
    }
    return -1;
  }
  private idxValue(k: number): string {
    const x = this.idx!;
    if (idxIsNew(x, k)) return this.added![x[k + 1]].value!;
    const s = this.text(idxValueStart(x, k), idxValueEnd(x, k));
    return idxFolded(x, k) ? s.replace(FOLD, ' ') : s;
  }

  /** Key (lower-case full name) of index entry k. */
  private idxKey(x: number[], k: number): string {
    if (idxIsNew(x, k)) return this.added![x[k + 1]].key;
    const ni = idxName(x, k);
    return ni >= 0 ? KNOWN_HEADERS[ni].key : headerName(this.idxNameText(x, k)).key;
  }
  /** Name of index entry k as written. */
  private idxNameText(x: number[], k: number): string {
    if (idxIsNew(x, k)) return this.added![x[k + 1]].name;
    return this.buf.toString('latin1', idxLineStart(x, k), idxNameEnd(x, k));
  }
  /** Index entry of the first field of a header at or after entry `from`, or -1. */
  private idxFind(x: number[], h: HeaderName, from: number): number {
    for (let k = from; k < x.length; k += IDX_STRIDE) {
      if (idxId(x, k) !== h.id) continue;
      if (h.id !== HID.other || this.idxKey(x, k) === h.key) return k;
    }
    return -1;
  }
  /** Adds a new field to the index at entry k (edits made without building the field objects). */
  private idxPut(x: number[], k: number, f: HeaderField, replace: boolean): void {
    const a = this.added ?? (this.added = []);
    this.idxEdited = true;
    const entry = f.id | IDX_NEW;
    if (!replace) k = this.idxInsert(x, k);
    x[k] = entry;
    x[k + 1] = a.length;
    a.push(f);
  }
  /** Makes room for an entry before entry k; returns where it goes. */
  private idxInsert(x: number[], k: number): number {
    if (k === this.i0 && k > 0) return (this.i0 -= IDX_STRIDE);
    x.push(0, 0, 0, 0);
    for (let j = x.length - 1; j >= k + IDX_STRIDE; j--) x[j] = x[j - IDX_STRIDE];
    return k;
  }
  private idxRemove(x: number[], k: number): void {
    this.idxEdited = true;
    if (k === this.i0) this.i0 += IDX_STRIDE;
    else x[k] = IDX_GONE;
  }

  /** Index of the first field of a header: by id for the indexed ones (no key computed for other fields). */
  private find(h: HeaderName, from = 0): number {
    const fs = this.fields;
    if (h.id !== HID.other) {
      for (let i = from; i < fs.length; i++) if (fs[i].id === h.id) return i;
      return -1;
    }
    for (let i = from; i < fs.length; i++) if (fs[i].id === HID.other && fs[i].key === h.key) return i;
    return -1;
  }
  private matches(f: HeaderField, h: HeaderName): boolean {
    return h.id !== HID.other ? f.id === h.id : f.id === HID.other && f.key === h.key;
  }

  private hasId(id: HeaderId): boolean {
    const x = this.idx;
    if (x !== null) {
      for (let k = this.i0; k < x.length; k += IDX_STRIDE) if (idxId(x, k) === id) return true;
      return false;
    }
    return this.indexOfId(id) >= 0;
  }
  private indexOfId(id: HeaderId): number {
    const fs = this.fields;
    for (let i = 0; i < fs.length; i++) if (fs[i].id === id) return i;
    return -1;
  }
  private valueOfId(id: HeaderId): string | undefined {
    const x = this.idx;
    if (x !== null) {
      for (let k = this.i0; k < x.length; k += IDX_STRIDE) if (idxId(x, k) === id) return this.idxValue(k);
      return undefined;
    }
    const i = this.indexOfId(id);
    return i < 0 ? undefined : this.fieldValue(this.fields[i]);
  }
  /**
   * @internal The fields of one known header as [name as written, value], in order, without
   * turning the header index into field objects (`fields` does, for good): createResponse
   * copies Via, From, Call-ID, CSeq and Record-Route this way.
   */
  _namedValuesOfId(id: HeaderId): [string, string][] {
    const out: [string, string][] = [];
    const x = this.idx;
    if (x !== null) {
      for (let k = this.i0; k < x.length; k += IDX_STRIDE)
        if (idxId(x, k) === id) out.push([this.idxNameText(x, k), this.idxValue(k)]);
      return out;
    }
    for (const f of this.fields) if (f.id === id) out.push([f.name, this.fieldValue(f)]);
    return out;
  }
  private valuesOfId(id: HeaderId): string[] {
    const out: string[] = [];
    const x = this.idx;
    if (x !== null) {
      for (let k = this.i0; k < x.length; k += IDX_STRIDE) if (idxId(x, k) === id) out.push(this.idxValue(k));
      return out;
    }
    for (const f of this.fields) if (f.id === id) out.push(this.fieldValue(f));
    return out;
  }

  // ------------------------------------------------------------ generic access

  /** First field value of a header (any case, compact or full name), or undefined. */
  getHeader(name: string): string | undefined {
    const h = headerName(name);
    if (h.id !== HID.other) return this.valueOfId(h.id);
    const x = this.idx;
    if (x !== null) {
      const k = this.idxFind(x, h, this.i0);
      return k < 0 ? undefined : this.idxValue(k);
    }
    const i = this.find(h);
    return i < 0 ? undefined : this.fieldValue(this.fields[i]);
  }
  /** Every field value of a header, one per field line (not split on commas). */
  getHeaders(name: string): string[] {
    const h = headerName(name);
    if (h.id !== HID.other) return this.valuesOfId(h.id);
    const out: string[] = [];
    const x = this.idx;
    if (x !== null) {
      // read from the index: `fields` would turn it into one object per header, for good
      for (let k = this.idxFind(x, h, this.i0); k >= 0; k = this.idxFind(x, h, k + IDX_STRIDE))
        out.push(this.idxValue(k));
      return out;
    }
    for (const f of this.fields) if (this.matches(f, h)) out.push(this.fieldValue(f));
    return out;
  }
  /** Every value of a list header, fields split on top-level commas (throws SipParseError). */
  getHeaderValues(name: string): string[] {
    const h = headerName(name);
    const out: string[] = [];
    for (const v of this.getHeaders(name)) out.push(...splitList(v, h.key));
    return out;
  }
  hasHeader(name: string): boolean {
    const h = headerName(name);
    if (h.id !== HID.other) return this.hasId(h.id);
    return this.idx !== null ? this.idxFind(this.idx, h, this.i0) >= 0 : this.find(h) >= 0;
  }
  /** All fields as [name as written, value] pairs, in order. */
  headerEntries(): Array<[string, string]> {
    return this.fields.map((f) => [f.name, this.fieldValue(f)]);
  }

  // ------------------------------------------------------------ typed access (cached)

  /** All Via values, top first. */
  get vias(): Via[] {
    if (this._vias) return this._vias;
    const out: Via[] = [];
    for (const v of this.valuesOfId(HID.via)) {
      for (const part of splitList(v, 'via', MAX_VIA_COUNT)) {
        out.push(parseVia(part));
        if (out.length > MAX_VIA_COUNT)
          throw new SipParseError('too_large', 'too many Via values', 513, 'via');
      }
    }
    return (this._vias = out);
  }
  /** The topmost Via (throws SipParseError when there is none). */
  get via(): Via {
    if (this._via) return this._via;
    if (this._vias) {
      if (!this._vias.length) throw new SipParseError('missing_header', 'no Via', 400, 'via');
      return (this._via = this._vias[0]);
    }
    const k = this.flatField(HID.via);
    if (k >= 0) {
      const t = this._text!;
      const s = idxValueStart(this.idx!, k);
      const e = idxValueEnd(this.idx!, k);
      if (s === e || t.charCodeAt(s) === 44) throw badHeader('via', 'empty Via');
      return (this._via = parseViaAt(this.buf, 0, t, s, e, s));
    }
    const v = this.valueOfId(HID.via);
    if (v === undefined) throw new SipParseError('missing_header', 'no Via', 400, 'via');
    if (v.length === 0 || v.charCodeAt(0) === 44) throw badHeader('via', 'empty Via');
    return (this._via = parseViaAt(strBytes(v), 0, v, 0, v.length, 0));
  }
  get cseq(): CSeq {
    if (this._cseq) return this._cseq;
    const v = this.valueOfId(HID.cseq);
    if (v === undefined) throw new SipParseError('missing_header', 'no CSeq', 400, 'cseq');
    return (this._cseq = parseCSeq(v));
  }
  get callId(): string {
    if (this._callId !== undefined) return this._callId;
    const v = this.valueOfId(HID.callId);
    if (v === undefined) throw new SipParseError('missing_header', 'no Call-ID', 400, 'call-id');
    if (v.length === 0 || /[\s]/.test(v)) throw badHeader('call-id', 'empty or with whitespace');
    return (this._callId = v);
  }
  get from(): NameAddr {
    if (this._from) return this._from;
    const k = this.flatField(HID.from);
    if (k >= 0)
      return (this._from = parseNameAddrAt(
        this.buf,
        0,
        this._text!,
        idxValueStart(this.idx!, k),
        idxValueEnd(this.idx!, k),
        'from',
        NameAddr,
      ));
    const v = this.valueOfId(HID.from);
    if (v === undefined) throw new SipParseError('missing_header', 'no From', 400, 'from');
    return (this._from = parseNameAddr(v, 'from', NameAddr));
  }
  get to(): NameAddr {
    if (this._to) return this._to;
    const k = this.flatField(HID.to);
    if (k >= 0)
      return (this._to = parseNameAddrAt(
        this.buf,
        0,
        this._text!,
        idxValueStart(this.idx!, k),
        idxValueEnd(this.idx!, k),
        'to',
        NameAddr,
      ));
    const v = this.valueOfId(HID.to);
    if (v === undefined) throw new SipParseError('missing_header', 'no To', 400, 'to');
    return (this._to = parseNameAddr(v, 'to', NameAddr));
  }
  get fromTag(): string | undefined {
    if (this._from === undefined && this._fromTag !== undefined) return this._fromTag ?? undefined;
    return this.from.tag;
  }
  get toTag(): string | undefined {
    if (this._to === undefined && this._toTag !== undefined) return this._toTag ?? undefined;
    return this.to.tag;
  }
  /**
   * @internal The parser's check of From and To: a field on one line of the decoded text is
   * checked in place (the same checks and errors as `from` / `to`) and its tag kept; the
   * NameAddr is built on first use. Other fields are parsed at once.
   */
  _checkFromTo(): void {
    let k = this.flatField(HID.from);
    if (k < 0) void this.from;
    else {
      const t = this._text!;
      checkNameAddrAt(this.buf, 0, t, idxValueStart(this.idx!, k), idxValueEnd(this.idx!, k), 'from');
      this._fromTag = TAG_START < 0 ? null : t.substring(TAG_START, TAG_END);
    }
    k = this.flatField(HID.to);
    if (k < 0) void this.to;
    else {
      const t = this._text!;
      checkNameAddrAt(this.buf, 0, t, idxValueStart(this.idx!, k), idxValueEnd(this.idx!, k), 'to');
      this._toTag = TAG_START < 0 ? null : t.substring(TAG_START, TAG_END);
    }
  }
  /** Max-Forwards, or null when absent. */
  get maxForwards(): number | null {
    if (this._mf !== undefined) return this._mf;
    const v = this.valueOfId(HID.maxForwards);
    return (this._mf = v === undefined ? null : parseUint(v, 'max-forwards'));
  }
  get routes(): NameAddr[] {
    return (this._routes ??= this.nameAddrList(HID.route, 'route'));
  }
  get recordRoutes(): NameAddr[] {
    return (this._rr ??= this.nameAddrList(HID.recordRoute, 'record-route'));
  }
  /** Contact values; a `Contact: *` gives [] here and `contactStar` true. */
  get contacts(): Contact[] {
    if (this._contacts) return this._contacts;
    const out: Contact[] = [];
    for (const v of this.valuesOfId(HID.contact)) {
      if (v === '*') continue;
      for (const part of splitList(v, 'contact')) out.push(parseNameAddr(part, 'contact', Contact));
    }
    return (this._contacts = out);
  }
  get contactStar(): boolean {
    return this.valuesOfId(HID.contact).some((v) => v === '*');
  }
  get contentType(): string | undefined {
    return this.valueOfId(HID.contentType);
  }
  get expires(): number | undefined {
    const v = this.valueOfId(HID.expires);
    return v === undefined ? undefined : parseUint(v, 'expires');
  }
  get authorization(): string[] {
    return this.valuesOfId(HID.authorization);
  }
  get proxyAuthorization(): string[] {
    return this.valuesOfId(HID.proxyAuthorization);
  }
  /** Length of the body (as delimited by Content-Length, or set by setBody). */
  get contentLength(): number {
    return this._body !== null ? this._body.length : this.bodyEnd - this.bodyStart;
  }
  private nameAddrList(id: HeaderId, key: string): NameAddr[] {
    const x = this.idx;
    if (x === null || this.flatField(id) < 0) {
      const out: NameAddr[] = [];
      for (const v of this.valuesOfId(id))
        for (const part of splitList(v, key)) out.push(parseNameAddr(part, key, NameAddr));
      return out;
    }
    // the usual single value ends up in an array literal of one (an array grown from empty
    // by push costs more than the value's parse)
    let first: NameAddr | null = null;
    let out: NameAddr[] | null = null;
    // in place in the decoded text when a field holds one value (splitList's shortcut, on the range)
    const t = this._text!;
    const b = this.buf;
    for (let k = this.i0; k < x.length; k += IDX_STRIDE) {
      if (idxId(x, k) !== id) continue;
      let s = idxValueStart(x, k);
      let e = idxValueEnd(x, k);
      if (!idxFolded(x, k) && !idxIsNew(x, k)) {
        // String.prototype.trim on a text of ASCII and U+FFFD: TAB, LF, VT, FF, CR, SP
        while (s < e && isTrimWs(b[s])) s++;
        while (e > s && isTrimWs(b[e - 1])) e--;
        if (s === e) throw badHeader(key, 'empty list element');
        // the usual field of one value: parsed in place; one that goes on after its first
        // value (a comma: several values) or a bad one goes the general way, which splits the
        // list and gives the error of a bad value (without an exception for a list: it costs
        // more than the split)
        let one: NameAddr | null;
        try {
          one = parseOneNameAddrAt(b, 0, t, s, e, key);
        } catch {
          one = null;
        }
        if (one !== null) {
          if (first === null) first = one;
          else (out ??= [first]).push(one);
          continue;
        }
      }
      for (const part of splitList(this.idxValue(k), key)) {
        const na = parseNameAddr(part, key, NameAddr);
        if (first === null) first = na;
        else (out ??= [first]).push(na);
      }
    }
    return out !== null ? out : first !== null ? [first] : [];
  }

  /** The body: a slice of the original buffer, or the body set by setBody. */
  get body(): Buffer {
    return this._body ?? (this._body = this.buf.subarray(this.bodyStart, this.bodyEnd));
  }

  // ------------------------------------------------------------ edits

  private invalidate(id: HeaderId): void {
    switch (id) {
      case HID.via:
        this._via = this._vias = undefined;
        break;
      case HID.cseq:
        this._cseq = undefined;
        break;
      case HID.from:
        this._from = undefined;
        this._fromTag = undefined;
        break;
      case HID.to:
        this._to = undefined;
        this._toTag = undefined;
        break;
      case HID.callId:
        this._callId = undefined;
        break;
      case HID.maxForwards:
        this._mf = undefined;
        break;
      case HID.route:
        this._routes = undefined;
        break;
      case HID.recordRoute:
        this._rr = undefined;
        break;
      case HID.contact:
        this._contacts = undefined;
        break;
    }
  }

  /** Replaces every field of `name` with one field (at the place of the first; else appended). */
  setHeader(name: string, value: string | { toString(): string }): this {
    const h = headerName(name);
    const f = HeaderField.create(name, String(value), h);
    const x = this.idx;
    if (x !== null) {
      const k = this.idxFind(x, h, this.i0);
      if (k < 0) this.idxPut(x, x.length, f, false);
      else {
        this.idxPut(x, k, f, true);
        for (let j = this.idxFind(x, h, k + IDX_STRIDE); j >= 0; j = this.idxFind(x, h, j))
          this.idxRemove(x, j);
      }
      this.invalidate(h.id);
      return this;
    }
    const fs = this.fields;
    const i = this.find(h);
    if (i < 0) fs.push(f);
    else {
      fs[i] = f;
      if (this.find(h, i + 1) >= 0) this.fields = fs.filter((g, j) => j <= i || !this.matches(g, h));
    }
    this.invalidate(h.id);
    return this;
  }
  /**
   * Adds a field. `first`: before the first field of that name (Via, Record-Route:
   * RFC 3261 §16.6 / §16.6.4), or at the very top when there is none; otherwise at the end.
   */
  addHeader(name: string, value: string | { toString(): string }, opts: { first?: boolean } = {}): this {
    const h = headerName(name);
    const f = HeaderField.create(name, String(value), h);
    const x = this.idx;
    if (x !== null) {
      const k = opts.first ? this.idxFind(x, h, this.i0) : -1;
      this.idxPut(x, k >= 0 ? k : opts.first ? this.i0 : x.length, f, false);
      this.invalidate(h.id);
      return this;
    }
    if (opts.first) {
      const i = this.find(h);
      insertAt(this.fields, i < 0 ? 0 : i, f);
    } else this.fields.push(f);
    this.invalidate(h.id);
    return this;
  }
  removeHeader(name: string): this {
    const h = headerName(name);
    const x = this.idx;
    if (x !== null) {
      for (let k = this.idxFind(x, h, this.i0); k >= 0; k = this.idxFind(x, h, k + IDX_STRIDE))
        this.idxRemove(x, k);
    } else this.fields = this.fields.filter((f) => !this.matches(f, h));
    this.invalidate(h.id);
    return this;
  }
  /** Removes the first value of a list header (e.g. the first Route, RFC 3261 §16.4 / §16.12). Returns it. */
  removeFirstValue(name: string): string | undefined {
    const h = headerName(name);
    const x = this.idx;
    if (x !== null) {
      const k = this.idxFind(x, h, this.i0);
      if (k < 0) return undefined;
      const v = this.idxValue(k);
      const c = findComma(v, 0, h.key);
      if (c < 0) this.idxRemove(x, k);
      else this.idxPut(x, k, HeaderField.create(this.idxNameText(x, k), v.slice(c + 1).trim()), true);
      this.invalidate(h.id);
      return (c < 0 ? v : v.slice(0, c)).trim();
    }
    const i = this.find(h);
    if (i < 0) return undefined;
    const f = this.fields[i];
    const v = this.fieldValue(f);
    const c = findComma(v, 0, h.key);
    if (c < 0) removeAt(this.fields, i);
    else this.fields[i] = HeaderField.create(f.name, v.slice(c + 1).trim());
    this.invalidate(h.id);
    return (c < 0 ? v : v.slice(0, c)).trim();
  }
  /** Replaces the first value of a list header (e.g. the top Via after adding received/rport). */
  replaceFirstValue(name: string, value: string | { toString(): string }): this {
    const h = headerName(name);
    const x = this.idx;
    if (x !== null) {
      // edited in the index, as removeFirstValue does (`fields` would make an object per header)
      const k = this.idxFind(x, h, this.i0);
      if (k < 0) return this.addHeader(name, value);
      const v = this.idxValue(k);
      const c = findComma(v, 0, h.key);
      const nv = c < 0 ? String(value) : `${String(value)}, ${v.slice(c + 1).trim()}`;
      this.idxPut(x, k, HeaderField.create(this.idxNameText(x, k), nv), true);
      this.invalidate(h.id);
      return this;
    }
    const i = this.find(h);
    if (i < 0) return this.addHeader(name, value);
    const f = this.fields[i];
    const v = this.fieldValue(f);
    const c = findComma(v, 0, h.key);
    this.fields[i] = HeaderField.create(
      f.name,
      c < 0 ? String(value) : `${String(value)}, ${v.slice(c + 1).trim()}`,
    );
    this.invalidate(h.id);
    return this;
  }
  /** Pushes a Via on top (proxy, RFC 3261 §16.6 step 8). */
  pushVia(via: Via | string): this {
    return this.addHeader('Via', via, { first: true });
  }
  /** Removes the topmost Via value (response forwarding, RFC 3261 §16.7 step 3). */
  popVia(): Via | undefined {
    const top = this.hasId(HID.via) ? this.via : undefined;
    this.removeFirstValue('Via');
    return top;
  }
  /**
   * Sets received / rport on the top Via (RFC 3261 §18.2.1, RFC 3581 §4).
   * `received` is set when given (callers pass it when it differs from sent-by, or always).
   */
  setViaReceived(received: string | undefined, rport?: number): this {
    const v = this.via.clone();
    if (received !== undefined) v.params.set('received', received);
    if (rport !== undefined && v.params.has('rport')) v.params.set('rport', String(rport));
    return this.replaceFirstValue('Via', v);
  }
  /** Decrements Max-Forwards, adding Max-Forwards: 70-1 when absent (RFC 3261 §16.6 step 3). Returns the new value. */
  decrementMaxForwards(initial = 70): number {
    const mf = this.maxForwards;
    const n = mf === null ? initial - 1 : Math.max(0, mf - 1);
    this.setHeader('Max-Forwards', String(n));
    return n;
  }
  /** Replaces the body; Content-Length is recomputed, Content-Type set when given. */
  setBody(body: BodyInput, contentType?: string): this {
    this._body = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    this.bodyDirty = true;
    if (contentType !== undefined) this.setHeader('Content-Type', contentType);
    else if (this._body.length === 0) this.removeHeader('Content-Type');
    this.setHeader('Content-Length', String(this._body.length));
    return this;
  }

  // ------------------------------------------------------------ serialize

  /** Writes the message; untouched ranges are copied from the original buffer. */
  serialize(): Buffer {
    const x = this.idx;
    if (x !== null && this.slClean && !this.bodyDirty && !this.idxEdited) {
      // untouched: one copy of the original bytes, when they are a complete message
      let hasCl = false;
      for (let k = this.i0; k < x.length; k += IDX_STRIDE)
        if (idxId(x, k) === HID.contentLength) hasCl = true;
      const lastEnd = x.length > this.i0 ? idxLineEnd(x, x.length - IDX_STRIDE) : this.slEnd;
      if (hasCl && this.bodyStart > lastEnd && this.buf[lastEnd - 1] === 10) {
        const out = slabBytes(this.bodyEnd - this.slStart);
        this.buf.copy(out, 0, this.slStart, this.bodyEnd);
        return out;
      }
    }
    const t = this._text === undefined ? this.decodeHeaders() : this._text;
    if (t !== null) return this.serializeText(t);
    const fields = this.fields;
    const src = this.buf;
    const body = this.body;
    // pieces: a number pair [start, end) of the original buffer, or text; adjacent texts joined
    const ranges: number[] = [];
    const texts: string[] = [];
    let pending = this.slClean ? '' : this.startLine() + '\r\n';
    if (this.slClean) {
      ranges.push(this.slStart, this.slEnd);
      texts.push('');
    }
    let hasCl = false;
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i];
      if (f.id === HID.contentLength) hasCl = true;
      if (f.value !== undefined) {
        pending += f.name + ': ' + f.value + '\r\n';
        continue;
      }
      const n = ranges.length;
      if (pending === '' && n > 0 && ranges[n - 1] === f.lineStart && texts[texts.length - 1] === '') {
        ranges[n - 1] = f.lineEnd; // contiguous original lines: one copy
      } else {
        if (pending !== '') {
          ranges.push(-1, -1);
          texts.push(pending);
          pending = '';
        }
        ranges.push(f.lineStart, f.lineEnd);
        texts.push('');
      }
      if (src[f.lineEnd - 1] !== 10) pending += '\r\n'; // a last line without its line end (datagram tolerance)
    }
    if (!hasCl) pending += `Content-Length: ${body.length}\r\n`;
    pending += '\r\n';
    ranges.push(-1, -1);
    texts.push(pending);
    let size = body.length;
    for (let k = 0, t = 0; k < ranges.length; k += 2, t++) {
      size += ranges[k] < 0 ? Buffer.byteLength(texts[t]) : ranges[k + 1] - ranges[k];
    }
    const out = slabBytes(size);
    let o = 0;
    for (let k = 0, t = 0; k < ranges.length; k += 2, t++) {
      o += ranges[k] < 0 ? out.write(texts[t], o, 'utf8') : src.copy(out, o, ranges[k], ranges[k + 1]);
    }
    o += body.copy(out, o);
    return o === size ? out : out.subarray(0, o);
  }

  /**
   * serialize() when the header section is decoded (all ASCII): the message as one string
   * (substrings of the decoded text and the new fields' text) encoded by one native call,
   * instead of a copy per range of the original buffer.
   */
  private serializeText(t: string): Buffer {
    const x = this.idx;
    const fs = x === null ? this.fields : null;
    const n = x !== null ? (x.length - this.i0) / IDX_STRIDE : fs!.length;
    const src = this.buf;
    let s = this.slClean ? t.substring(this.slStart, this.slEnd) : this.startLine() + '\r\n';
    // a run of contiguous original lines [runStart, runEnd) is added as one substring
    let runStart = -1;
    let runEnd = -1;
    let hasCl = false;
    for (let i = 0; i < n; i++) {
      // an original line [ls, le) of this buffer, or a field f written out by name and value
      let f: HeaderField | null = null;
      let ls = 0;
      let le = 0;
      if (x !== null) {
        const k = this.i0 + i * IDX_STRIDE;
        if (x[k] === IDX_GONE) continue;
        if (idxId(x, k) === HID.contentLength) hasCl = true;
        if (idxIsNew(x, k)) f = this.added![x[k + 1]];
        else {
          ls = idxLineStart(x, k);
          le = idxLineEnd(x, k);
        }
      } else {
        f = fs![i];
        if (f.id === HID.contentLength) hasCl = true;
        if (f.value === undefined && f.src === src) {
          ls = f.lineStart;
          le = f.lineEnd;
          f = null;
        }
      }
      if (f === null) {
        if (ls !== runEnd) {
          if (runStart >= 0) s += t.substring(runStart, runEnd);
          runStart = ls;
        }
        runEnd = le;
        if (src[le - 1] === 10) continue;
        s += t.substring(runStart, runEnd) + '\r\n'; // a last line without its line end (datagram tolerance)
        runStart = runEnd = -1;
        continue;
      }
      if (runStart >= 0) s += t.substring(runStart, runEnd);
      runStart = runEnd = -1;
      s += f.name + ': ' + this.fieldValue(f) + '\r\n';
    }
    if (runStart >= 0) s += t.substring(runStart, runEnd);
    const bodyLen = this._body !== null ? this._body.length : this.bodyEnd - this.bodyStart;
    if (!hasCl) s += 'Content-Length: ' + bodyLen + '\r\n';
    s += '\r\n';
    if (bodyLen === 0) return textBytes(s);
    if (this._body === null && t.length >= this.bodyEnd) {
      // the parser decoded the whole message: the body is in the text too
      return textBytes(s + t.substring(this.bodyStart, this.bodyEnd));
    }
    const body = this.body;
    const hl = Buffer.byteLength(s, 'utf8');
    const out = slabBytes(hl + body.length);
    out.write(s, 0, hl, 'utf8');
    body.copy(out, hl);
    return out;
  }

  toString(): string {
    return this.serialize().toString('utf8');
  }

  /** true once setBody was called */
  get bodyChanged(): boolean {
    return this.bodyDirty;
  }
}

export class SipRequest extends SipMessage {
  readonly isRequest = true as const;
  readonly method: string;
  private _uri: Uri | undefined;
  private _uriRaw: string | undefined;
  /** the Request-URI text is the received one (uriStart, uriEnd) */
  private _uriFromBuf: boolean;
  private readonly uriStart: number;
  private readonly uriEnd: number;

  constructor(
    method: string,
    uriRaw: string | undefined,
    uriStart: number,
    uriEnd: number,
    buf: Buffer,
    fields: HeaderField[] | number[],
    slStart: number,
    slEnd: number,
    slClean: boolean,
    bodyStart: number,
    bodyEnd: number,
  ) {
    super(buf, fields, slStart, slEnd, bodyStart, bodyEnd);
    this.method = method;
    this._uriRaw = uriRaw;
    this._uriFromBuf = uriRaw === undefined && uriEnd > uriStart;
    this.uriStart = uriStart;
    this.uriEnd = uriEnd;
    this.slClean = slClean;
  }
  /**
   * Request-URI (parsed on first use; throws SipParseError('bad_uri')). Assign to rewrite it:
   * a string is parsed when next read (a proxy that retargets and forwards never reads it
   * back), and is rejected at once only when it holds whitespace or a control character.
   */
  get uri(): Uri {
    if (this._uri !== undefined) return this._uri;
    const raw = this.uriText;
    // the received Request-URI: its codes are the buffer's bytes when the header section is ASCII
    return (this._uri =
      this._uriFromBuf && this._text !== null ? parseUriB(this.buf, this.uriStart, raw) : parseUri(raw));
  }
  set uri(u: Uri | string) {
    if (typeof u === 'string') {
      if (u.length === 0) throw new SipParseError('bad_uri', 'empty Request-URI', 400);
      for (let i = 0; i < u.length; i++) {
        const c = u.charCodeAt(i);
        if (c <= 32 || c === 127)
          throw new SipParseError('bad_uri', 'whitespace or control character in URI', 400);
      }
      this._uri = undefined;
      this._uriRaw = u;
      this._uriFromBuf = false;
    } else {
      this._uri = u;
      this._uriRaw = u.toString();
    }
    this.slClean = false;
  }
  /** Request-URI text as received or set. */
  get uriText(): string {
    return (this._uriRaw ??= this.text(this.uriStart, this.uriEnd));
  }
  startLine(): string {
    return `${this.method} ${this.uriText} SIP/2.0`;
  }
}

export class SipResponse extends SipMessage {
  readonly isRequest = false as const;
  status: number;
  reason: string;
  constructor(
    status: number,
    reason: string,
    buf: Buffer,
    fields: HeaderField[] | number[],
    slStart: number,
    slEnd: number,
    slClean: boolean,
    bodyStart: number,
    bodyEnd: number,
  ) {
    super(buf, fields, slStart, slEnd, bodyStart, bodyEnd);
    this.status = status;
    this.reason = reason;
    this.slClean = slClean;
  }
  startLine(): string {
    return `SIP/2.0 ${this.status} ${this.reason}`;
  }
  /** Marks the status line for rewriting after status/reason were changed. */
  setStatus(status: number, reason: string): this {
    this.status = status;
    this.reason = reason;
    this.slClean = false;
    return this;
  }
}

export function isRequest(m: SipMessage): m is SipRequest {
  return m.isRequest;
}
export function isResponse(m: SipMessage): m is SipResponse {
  return !m.isRequest;
}

export { SipParseError };
