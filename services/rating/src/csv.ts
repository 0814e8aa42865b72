/**
 * Rate plan import: the CSV format documented in README.md, validated with
 * line-numbered errors (all of them, not just the first). Nothing of a plan
 * with an error is kept.
 */
import { nextTurn } from '@switchboard/platform';
import { formatMoney, parseMoney } from './money';
import {
  HOLIDAY,
  ON_NET,
  PrefixIndex,
  validTimezone,
  type Destination,
  type Period,
  type PlanVersion,
  type RateTerms,
} from './tariff';

export interface CsvRecord {
  /** 1-based line the record starts on. */
  line: number;
  fields: string[];
}

const wanted = (fields: string[]) =>
  !(fields.length === 1 && fields[0].trim() === '') && !fields[0].startsWith('#');

/** The records of CSV text (RFC 4180 quoting), one at a time; blank lines and # comments skipped. */
export function* csvRecords(text: string): Generator<CsvRecord> {
  let line = 1;
  let i = 0;
  const n = text.length;
  // Where the next quote and carriage return are (2^32 - 1: none), found again only once passed.
  let quote = -1;
  let cr = -1;
  while (i < n) {
    if (quote < i) quote = text.indexOf('"', i) >>> 0;
    if (cr < i) cr = text.indexOf('\r', i) >>> 0;
    let end = text.indexOf('\n', i);
    if (end < 0) end = n;
    // A line without quotes, ended by LF or CRLF (most of a rate deck): split as it is.
    if (quote > end && (cr >= end || cr === end - 1)) {
      const fields = text.slice(i, cr === end - 1 ? cr : end).split(',');
      if (wanted(fields)) yield { line, fields };
      line++;
      i = end + 1;
      continue;
    }
    const start = line;
    const fields: string[] = [];
    let field = '';
    let quoted = false;
    for (;;) {
      if (i >= n) {
        fields.push(field);
        break;
      }
      const c = text[i];
      if (quoted) {
        if (c === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
          } else {
            quoted = false;
            i++;
          }
        } else {
          if (c === '\n') line++;
          field += c;
          i++;
        }
      } else if (c === '"' && field === '') {
        quoted = true;
        i++;
      } else if (c === ',') {
        fields.push(field);
        field = '';
        i++;
      } else if (c === '\n' || c === '\r') {
        fields.push(field);
        i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
        line++;
        break;
      } else {
        field += c;
        i++;
      }
    }
    if (wanted(fields)) yield { line: start, fields };
  }
}

/** Every record of CSV text (see csvRecords). */
export const parseCsv = (text: string): CsvRecord[] => [...csvRecords(text)];

export const RATE_COLUMNS = [
  'prefix',
  'name',
  'country',
  'period',
  'connect_fee',
  'price_per_minute',
  'min_seconds',
  'increment',
  'free_seconds',
] as const;
const REQUIRED_RATE = ['prefix', 'price_per_minute'];
export const PERIOD_COLUMNS = ['name', 'days', 'from', 'to'] as const;

export interface PlanMeta {
  planId: string;
  effectiveFrom: number;
  currency: string;
  timezone: string;
  holidays: string[];
}

export type PlanImport = { ok: true; version: PlanVersion; rates: number } | { ok: false; errors: string[] };

const DAY_NAMES: Record<string, number> = {
  sun: 0,
  mon: 1,
  tue: 2,
  wed: 3,
  thu: 4,
  fri: 5,
  sat: 6,
  hol: HOLIDAY,
};

function parseDays(s: string): Set<number> {
  const out = new Set<number>();
  for (const part of s
    .toLowerCase()
    .split(/[\s;|]+|,/)
    .filter(Boolean)) {
    if (part === 'all' || part === '*') {
      for (let d = 0; d <= 6; d++) out.add(d);
      continue;
    }
    const m = /^([a-z]{3})(?:-([a-z]{3}))?$/.exec(part);
    const a = m ? DAY_NAMES[m[1]] : undefined;
    const b = m?.[2] ? DAY_NAMES[m[2]] : a;
    if (a === undefined || b === undefined || (m?.[2] && (a === HOLIDAY || b === HOLIDAY)))
      throw new Error(`bad days "${s}" (e.g. mon-fri, sat,sun, hol, all)`);
    for (let d = a; ; d = (d + 1) % 7) {
      out.add(d);
      if (d === b) break;
    }
  }
  if (out.size === 0) throw new Error('days is empty');
  return out;
}

function parseClock(s: string): number {
  const m = /^(\d{1,2}):(\d{2})$/.exec(s.trim());
  if (!m || Number(m[2]) > 59 || Number(m[1]) * 60 + Number(m[2]) > 1440)
    throw new Error(`bad time "${s}" (HH:MM, 00:00 to 24:00)`);
  return Number(m[1]) * 60 + Number(m[2]);
}

function parseCount(s: string, what: string, def: number): number {
  if (s.trim() === '') return def;
  if (!/^\d{1,7}$/.test(s.trim())) throw new Error(`${what}: expected whole seconds, got "${s}"`);
  return Number(s);
}

function parseIncrement(s: string): [number, number] {
  if (s.trim() === '') return [1, 1];
  const m = /^(\d{1,5})(?:\/(\d{1,5}))?$/.exec(s.trim());
  const a = m ? Number(m[1]) : 0;
  const b = m?.[2] !== undefined ? Number(m[2]) : a;
  if (!m || a < 1 || b < 1)
    throw new Error(`increment: expected a/b with a, b >= 1 (e.g. 60/60, 30/6), got "${s}"`);
  return [a, b];
}

function columns(header: string[], known: readonly string[], required: string[]): Map<string, number> {
  const idx = new Map<string, number>();
  header.forEach((h, i) => {
    const k = h.trim().toLowerCase();
    if (!known.includes(k)) throw new Error(`unknown column "${h}" (known: ${known.join(', ')})`);
    if (idx.has(k)) throw new Error(`column "${h}" twice`);
    idx.set(k, i);
  });
  for (const r of required) if (!idx.has(r)) throw new Error(`missing column "${r}"`);
  return idx;
}

/** Rate lines validated (or destinations exported) between two turns of the event loop. */
const IMPORT_SLICE = 2_000;

/** A line's value in a column, trimmed ('' when the file has no such column). */
function cell(fields: string[], idx: Map<string, number>, column: string): string {
  const i = idx.get(column);
  return i === undefined ? '' : (fields[i] ?? '').trim();
}

/** A money column's value in micros: 0 when empty, never negative. */
function amount(fields: string[], idx: Map<string, number>, column: string): number {
  const v = cell(fields, idx, column);
  if (v === '') return 0;
  const m = parseMoney(v);
  if (m < 0) throw new Error(`${column}: negative amount "${v}"`);
  return m;
}

/**
 * Builds one plan version from its rates CSV and (optional) periods CSV.
 * Errors name the input and line: "rates line 7: ...".
 */
export async function importPlan(meta: PlanMeta, ratesCsv: string, periodsCsv = ''): Promise<PlanImport> {
  const errors: string[] = [];
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(meta.planId))
    errors.push(`plan id "${meta.planId}": letters, digits, _ . - only`);
  if (!/^[A-Z]{3}$/.test(meta.currency))
    errors.push(`currency "${meta.currency}": expected ISO 4217, e.g. EUR`);
  if (!validTimezone(meta.timezone)) errors.push(`timezone "${meta.timezone}" is not known`);
  if (!Number.isFinite(meta.effectiveFrom)) errors.push('effective_from is not a time');
  const holidays = new Set<string>();
  for (const h of meta.holidays) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(h)) errors.push(`holiday "${h}": expected YYYY-MM-DD`);
    holidays.add(h);
  }

  const periods: Period[] = [];
  const periodRows = parseCsv(periodsCsv);
  if (periodRows.length) {
    try {
      const idx = columns(periodRows[0].fields, PERIOD_COLUMNS, [...PERIOD_COLUMNS]);
      for (const row of periodRows.slice(1)) {
        const f = (k: string) => cell(row.fields, idx, k);
        try {
          const name = f('name');
          if (!/^[A-Za-z0-9_-]{1,32}$/.test(name)) throw new Error(`bad period name "${name}"`);
          const fromMinute = parseClock(f('from'));
          const toMinute = parseClock(f('to'));
          if (fromMinute === toMinute)
            throw new Error('from and to are equal (use 00:00 to 24:00 for all day)');
          periods.push({ name, days: parseDays(f('days')), fromMinute, toMinute });
        } catch (e) {
          errors.push(`periods line ${row.line}: ${(e as Error).message}`);
        }
      }
    } catch (e) {
      errors.push(`periods line ${periodRows[0].line}: ${(e as Error).message}`);
    }
  }
  const periodNames = new Set(periods.map((p) => p.name));

  const index = new PrefixIndex();
  const byPrefix = new Map<string, Destination>();
  let rates = 0;
  const rateRows = csvRecords(ratesCsv);
  const header = rateRows.next();
  let idx: Map<string, number> | undefined;
  try {
    if (!header.done) idx = columns(header.value.fields, RATE_COLUMNS, REQUIRED_RATE);
  } catch (e) {
    errors.push(`rates line ${header.value!.line}: ${(e as Error).message}`);
  }
  let lines = 0;
  if (idx) {
    for (const row of rateRows) {
      // A carrier's deck has tens of thousands of lines: other work runs between slices of them.
      if (++lines % IMPORT_SLICE === 0) await nextTurn();
      const fields = row.fields;
      try {
        if (fields.length !== idx.size) throw new Error(`expected ${idx.size} fields, got ${fields.length}`);
        let prefix = cell(fields, idx, 'prefix');
        if (prefix !== ON_NET) {
          if (prefix.startsWith('+')) prefix = prefix.slice(1);
          if (!/^\d{0,15}$/.test(prefix))
            throw new Error(`prefix "${cell(fields, idx, 'prefix')}": expected E.164 digits or ${ON_NET}`);
        }
        const period = cell(fields, idx, 'period');
        if (period && !periodNames.has(period))
          throw new Error(`period "${period}" is not defined in the periods`);
        const [incrementFirst, incrementNext] = parseIncrement(cell(fields, idx, 'increment'));
        const terms: RateTerms = {
          connectFeeMicros: amount(fields, idx, 'connect_fee'),
          perMinuteMicros: amount(fields, idx, 'price_per_minute'),
          minSeconds: parseCount(cell(fields, idx, 'min_seconds'), 'min_seconds', 0),
          incrementFirst,
          incrementNext,
          freeSeconds: parseCount(cell(fields, idx, 'free_seconds'), 'free_seconds', 0),
        };
        let dest = byPrefix.get(prefix);
        if (!dest) {
          dest = {
            prefix,
            name: cell(fields, idx, 'name'),
            country: cell(fields, idx, 'country'),
            rates: new Map(),
          };
          byPrefix.set(prefix, dest);
        }
        if (dest.rates.has(period))
          throw new Error(
            `prefix ${prefix} has a rate for ${period ? `period "${period}"` : 'the default period'} already`,
          );
        dest.rates.set(period, terms);
        rates++;
      } catch (e) {
        errors.push(`rates line ${row.line}: ${(e as Error).message}`);
      }
    }
  }
  if (header.done || (idx && lines === 0))
    errors.push('rates: a header line and at least one rate are required');
  if (errors.length) return { ok: false, errors };
  let onNet: Destination | undefined;
  let added = 0;
  for (const d of byPrefix.values()) {
    if (++added % IMPORT_SLICE === 0) await nextTurn();
    if (d.prefix === ON_NET) onNet = d;
    else index.add(d);
  }
  return {
    ok: true,
    rates,
    version: {
      planId: meta.planId,
      effectiveFrom: meta.effectiveFrom,
      currency: meta.currency,
      timezone: meta.timezone,
      periods,
      holidays,
      index,
      onNet,
    },
  };
}

const DAY_TOKENS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'hol'];
const clock = (m: number) =>
  `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
const field = (v: string) => (/[",\r\n]/.test(v) || v.startsWith('#') ? `"${v.replace(/"/g, '""')}"` : v);

/** The CSV of a plan version, in the import format (importPlan(exportPlan(v)) rates as v does). */
export async function exportPlan(v: PlanVersion): Promise<{ ratesCsv: string; periodsCsv: string }> {
  const rates = [RATE_COLUMNS.join(',')];
  // In prefix order: the trie yields its prefixes so, and on-net sorts after digits.
  const dests = [...v.index.entries(), ...(v.onNet ? [v.onNet] : [])];
  for (let i = 0; i < dests.length; i++) {
    if (i > 0 && i % IMPORT_SLICE === 0) await nextTurn();
    const d = dests[i];
    // The prefix (digits or on-net) and the numbers never need quotes.
    const place = `${d.prefix},${field(d.name)},${field(d.country)}`;
    // A destination's periods by name, whether it was imported or read back.
    const byName = d.rates.size > 1 ? [...d.rates].sort((a, b) => (a[0] < b[0] ? -1 : 1)) : d.rates;
    for (const [period, t] of byName) {
      rates.push(
        `${place},${field(period)},${formatMoney(t.connectFeeMicros)},${formatMoney(t.perMinuteMicros)},` +
          `${t.minSeconds},${t.incrementFirst}/${t.incrementNext},${t.freeSeconds}`,
      );
    }
  }
  const periods = v.periods.length
    ? [
        PERIOD_COLUMNS.join(','),
        ...v.periods.map((p) =>
          [
            p.name,
            [...p.days]
              .sort()
              .map((d) => DAY_TOKENS[d])
              .join(','),
            clock(p.fromMinute),
            clock(p.toMinute),
          ]
            .map(field)
            .join(','),
        ),
      ]
    : [];
  return { ratesCsv: rates.join('\n') + '\n', periodsCsv: periods.length ? periods.join('\n') + '\n' : '' };
}
