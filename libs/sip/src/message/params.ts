import { SipParseError } from './errors';
import { MAX_PARAMS } from './limits';

/**
 * An ordered parameter list (`;name=value;flag`). Names and values are kept as
 * written (escaped, quoted); lookups ignore name case. `null` value = no "=value".
 */
export class Params {
  readonly list: Array<[string, string | null]>;
  constructor(list: Array<[string, string | null]> = []) {
    this.list = list;
  }
  private find(name: string): number {
    const l = this.list;
    for (let i = 0; i < l.length; i++) {
      const n = l[i][0];
      if (n === name || (n.length === name.length && n.toLowerCase() === name.toLowerCase())) return i;
    }
    return -1;
  }
  /** undefined: absent; null: present without value; else the raw value. */
  get(name: string): string | null | undefined {
    const i = this.find(name);
    return i < 0 ? undefined : this.list[i][1];
  }
  has(name: string): boolean {
    return this.find(name) >= 0;
  }
  set(name: string, value: string | null): this {
    const i = this.find(name);
    if (i >= 0) this.list[i] = [this.list[i][0], value];
    else {
      if (this.list.length >= MAX_PARAMS) throw new SipParseError('too_large', 'too many parameters', 513);
      this.list.push([name, value]);
    }
    return this;
  }
  delete(name: string): boolean {
    const i = this.find(name);
    if (i < 0) return false;
    this.list.splice(i, 1);
    return true;
  }
  get size(): number {
    return this.list.length;
  }
  clone(): Params {
    return new Params(this.list.map(([n, v]) => [n, v] as [string, string | null]));
  }
  toString(): string {
    let s = '';
    for (const [n, v] of this.list) s += v === null ? `;${n}` : `;${n}=${v}`;
    return s;
  }
}

/** Removes the quotes and backslash escapes of a quoted-string; returns other values as they are. */
export function unquote(v: string): string {
  if (v.length < 2 || v.charCodeAt(0) !== 34 || v.charCodeAt(v.length - 1) !== 34) return v;
  const inner = v.slice(1, -1);
  return inner.indexOf('\\') < 0 ? inner : inner.replace(/\\([\s\S])/g, '$1');
}

/** Quotes a display name or parameter value when it is not a plain token sequence. */
export function quote(v: string): string {
  return '"' + v.replace(/(["\\])/g, '\\$1') + '"';
}
