import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatMoney, mulDivCeil, mulDivFloor, parseMoney } from './money';
import {
  billableSeconds,
  localTime,
  maxSecondsFor,
  PlanBook,
  PrefixIndex,
  priceOf,
  rateCall,
  type RateTerms,
} from './tariff';
import { exportPlan, importPlan, parseCsv } from './csv';

const terms = (o: Partial<RateTerms> = {}): RateTerms => ({
  connectFeeMicros: 0,
  perMinuteMicros: 60_000,
  minSeconds: 0,
  incrementFirst: 1,
  incrementNext: 1,
  freeSeconds: 0,
  ...o,
});
const T = (iso: string) => Date.parse(iso);

describe('money', () => {
  test('decimal text to micros and back, no floats', () => {
    assert.equal(parseMoney('0.0125'), 12_500);
    assert.equal(parseMoney('1'), 1_000_000);
    assert.equal(parseMoney('0.1'), 100_000);
    assert.equal(parseMoney('0.3'), 300_000);
    assert.equal(parseMoney('-2.5'), -2_500_000);
    assert.equal(parseMoney('123456.000001'), 123_456_000_001);
    assert.throws(() => parseMoney('0.0000001'), /6 decimals/);
    assert.throws(() => parseMoney('1e3'));
    assert.throws(() => parseMoney(''));
    assert.equal(formatMoney(12_500), '0.0125');
    assert.equal(formatMoney(-2_500_000), '-2.50');
    assert.equal(formatMoney(0), '0.00');
  });
  test('mulDiv rounds exactly, also beyond 2^53', () => {
    assert.equal(mulDivCeil(61, 100_000, 60), 101_667);
    assert.equal(mulDivFloor(61, 100_000, 60), 101_666);
    assert.equal(mulDivCeil(60, 100_000, 60), 100_000);
    assert.equal(mulDivCeil(2 ** 40, 2 ** 20, 3), Number((2n ** 60n + 2n) / 3n));
    fc.assert(
      fc.property(fc.nat(1e9), fc.nat(1e9), fc.integer({ min: 1, max: 3600 }), (a, b, c) => {
        const exact = BigInt(a) * BigInt(b);
        fc.pre(exact / BigInt(c) < BigInt(Number.MAX_SAFE_INTEGER));
        assert.equal(BigInt(mulDivFloor(a, b, c)), exact / BigInt(c));
        assert.equal(BigInt(mulDivCeil(a, b, c)), (exact + BigInt(c) - 1n) / BigInt(c));
      }),
    );
  });
});

describe('billable seconds and price', () => {
  test('increments 1/1, 60/60, 30/6 and any a/b', () => {
    const per = (a: number, b: number) => terms({ incrementFirst: a, incrementNext: b });
    assert.deepEqual(
      [1, 59, 60, 61].map((d) => billableSeconds(d, per(1, 1))),
      [1, 59, 60, 61],
    );
    assert.deepEqual(
      [1, 59, 60, 61, 121].map((d) => billableSeconds(d, per(60, 60))),
      [60, 60, 60, 120, 180],
    );
    assert.deepEqual(
      [1, 30, 31, 36, 37].map((d) => billableSeconds(d, per(30, 6))),
      [30, 30, 36, 36, 42],
    );
    assert.deepEqual(
      [1, 45, 46, 55, 56].map((d) => billableSeconds(d, per(45, 10))),
      [45, 45, 55, 55, 65],
    );
    assert.equal(billableSeconds(0, per(60, 60)), 0, 'a call of 0 seconds bills nothing');
  });
  test('minimum duration, then the grid', () => {
    assert.equal(billableSeconds(5, terms({ minSeconds: 20 })), 20);
    assert.equal(billableSeconds(25, terms({ minSeconds: 20 })), 25);
    assert.equal(billableSeconds(5, terms({ minSeconds: 20, incrementFirst: 30, incrementNext: 6 })), 30);
    assert.equal(billableSeconds(5, terms({ minSeconds: 40, incrementFirst: 30, incrementNext: 6 })), 42);
  });
  test('free seconds: short calls cost nothing, longer ones are billed beyond them', () => {
    const t = terms({ freeSeconds: 10, connectFeeMicros: 50_000 });
    assert.equal(billableSeconds(10, t), 0);
    assert.equal(priceOf(billableSeconds(10, t), t), 0, 'no connect fee inside the free seconds');
    assert.equal(billableSeconds(11, t), 1);
    assert.equal(billableSeconds(70, t), 60);
    assert.equal(priceOf(60, t), 50_000 + 60_000);
  });
  test('price: connect fee plus per-minute price pro rata, rounded up to the micro', () => {
    const t = terms({ perMinuteMicros: 100_000, connectFeeMicros: 10_000 });
    assert.equal(priceOf(60, t), 110_000);
    assert.equal(priceOf(1, t), 10_000 + 1_667);
    assert.equal(priceOf(0, t), 0);
  });
});

describe('max seconds for a balance', () => {
  test('examples', () => {
    assert.equal(maxSecondsFor(120_000, terms()), 120, 'two minutes at 0.06/min');
    assert.equal(maxSecondsFor(120_000, terms({ incrementFirst: 60, incrementNext: 60 })), 120);
    assert.equal(maxSecondsFor(119_999, terms({ incrementFirst: 60, incrementNext: 60 })), 60);
    assert.equal(
      maxSecondsFor(59_999, terms({ incrementFirst: 60, incrementNext: 60 })),
      0,
      'not one increment',
    );
    assert.equal(maxSecondsFor(130_000, terms({ connectFeeMicros: 10_000 })), 120);
    assert.equal(
      maxSecondsFor(5_000, terms({ connectFeeMicros: 10_000, freeSeconds: 5 })),
      5,
      'free seconds only',
    );
    assert.equal(maxSecondsFor(0, terms({ perMinuteMicros: 0 })), undefined, 'free rate: no limit');
    assert.equal(maxSecondsFor(10_000, terms({ minSeconds: 300 })), 0, 'minimum not affordable');
  });
  test('property: the granted time is affordable and one second more is not', () => {
    const termsArb = fc.record({
      connectFeeMicros: fc.nat(100_000),
      perMinuteMicros: fc.integer({ min: 1, max: 2_000_000 }),
      minSeconds: fc.nat(120),
      incrementFirst: fc.integer({ min: 1, max: 90 }),
      incrementNext: fc.integer({ min: 1, max: 60 }),
      freeSeconds: fc.nat(30),
    });
    fc.assert(
      fc.property(termsArb, fc.nat(50_000_000), (t, balance) => {
        const max = maxSecondsFor(balance, t)!;
        assert.ok(max >= t.freeSeconds);
        assert.ok(priceOf(billableSeconds(max, t), t) <= balance, `price of ${max}s within ${balance}`);
        assert.ok(
          priceOf(billableSeconds(max + 1, t), t) > balance,
          `price of ${max + 1}s beyond ${balance}`,
        );
      }),
      { numRuns: 2000 },
    );
  });
});

describe('prefix index', () => {
  const dest = (prefix: string) => ({ prefix, name: prefix, country: '', rates: new Map() });
  test('longest prefix wins; no match is undefined', () => {
    const ix = new PrefixIndex();
    for (const p of ['1', '1555', '15551', '44', '447']) ix.add(dest(p));
    assert.equal(ix.match('15551234567')?.prefix, '15551');
    assert.equal(ix.match('15561234567')?.prefix, '1');
    assert.equal(ix.match('15550000000')?.prefix, '1555');
    assert.equal(ix.match('447700900000')?.prefix, '447');
    assert.equal(ix.match('441632960000')?.prefix, '44');
    assert.equal(ix.match('33123456789'), undefined);
    assert.equal(ix.match(''), undefined);
    assert.equal(ix.size, 5);
  });
  test('property: agrees with a linear scan', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.stringMatching(/^[0-9]{1,6}$/), { maxLength: 40 }),
        fc.stringMatching(/^[0-9]{0,10}$/),
        (prefixes, number) => {
          const ix = new PrefixIndex();
          for (const p of prefixes) ix.add(dest(p));
          const want = prefixes.filter((p) => number.startsWith(p)).sort((a, b) => b.length - a.length)[0];
          assert.equal(ix.match(number)?.prefix, want);
        },
      ),
    );
  });
});

const RATES = `prefix,name,country,period,connect_fee,price_per_minute,min_seconds,increment,free_seconds
1,USA,US,,0,0.02,0,60/60,0
1555,USA fictional,US,,0.01,0.10,0,1/1,0
44,United Kingdom,GB,peak,0,0.12,0,30/6,0
44,United Kingdom,GB,night,0,0.03,0,30/6,0
44,United Kingdom,GB,,0,0.06,0,30/6,0
"49",Germany,"DE",weekend,0,0.01,,1/1,
49,Germany,DE,,0,0.05,,1/1,
`;
const PERIODS = `name,days,from,to
peak,mon-fri,08:00,18:00
night,mon-fri,22:00,06:00
weekend,"sat,sun,hol",00:00,24:00
`;

async function book(extra: { rates?: string; effectiveFrom?: number; timezone?: string } = {}) {
  const b = new PlanBook();
  const r = await importPlan(
    {
      planId: 'std',
      effectiveFrom: extra.effectiveFrom ?? T('2026-01-01T00:00:00Z'),
      currency: 'EUR',
      timezone: extra.timezone ?? 'UTC',
      holidays: ['2026-12-25'],
    },
    extra.rates ?? RATES,
    PERIODS,
  );
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  b.add(r.version);
  return b;
}
const call = (
  callee: string,
  at: string,
  durationSeconds: number,
  o: { onNet?: boolean; plan?: string } = {},
) => ({
  planId: o.plan ?? 'std',
  callee,
  onNet: o.onNet ?? false,
  answeredAt: T(at),
  durationSeconds,
});

describe('rating a call', () => {
  test('prefix match picks the rate; connect fee, per-second price', async () => {
    const b = await book();
    const r = rateCall(b, call('15551234567', '2026-11-25T12:00:00Z', 61));
    assert.equal(r.status, 'rated');
    if (r.status !== 'rated') return;
    assert.equal(r.prefix, '1555');
    assert.equal(r.destination, 'USA fictional');
    assert.equal(r.billableSeconds, 61);
    assert.equal(r.priceMicros, 10_000 + 101_667);
    const us = rateCall(b, call('12125550000', '2026-11-25T12:00:00Z', 61));
    assert.equal(
      us.status === 'rated' && [us.prefix, us.billableSeconds, us.priceMicros].join(),
      '1,120,40000',
    );
  });
  test('periods: peak on a weekday, night crossing midnight belongs to the day it starts on, weekend, holiday', async () => {
    const b = await book();
    const at = (iso: string) => {
      const r = rateCall(b, call('447700900000', iso, 60));
      return r.status === 'rated' ? `${r.period}:${r.priceMicros}` : r.status;
    };
    assert.equal(at('2026-11-25T09:00:00Z'), 'peak:120000', 'Wednesday 09:00');
    assert.equal(at('2026-11-25T18:00:00Z'), ':60000', 'Wednesday 18:00: peak ended, default');
    assert.equal(at('2026-11-25T23:30:00Z'), 'night:30000', 'Wednesday 23:30');
    assert.equal(at('2026-11-26T05:59:00Z'), 'night:30000', 'Thursday 05:59, Wednesday night');
    assert.equal(at('2026-11-28T02:00:00Z'), 'night:30000', 'Saturday 02:00 is still Friday night');
    assert.equal(at('2026-11-29T02:00:00Z'), ':60000', 'Sunday 02:00: Saturday has no night period');
    assert.equal(at('2026-11-23T02:00:00Z'), ':60000', 'Monday 02:00: Sunday has no night period');
    const de = (iso: string) => {
      const r = rateCall(b, call('4930123456', iso, 60));
      return r.status === 'rated' ? `${r.period}:${r.priceMicros}` : r.status;
    };
    assert.equal(de('2026-11-28T12:00:00Z'), 'weekend:10000', 'Saturday');
    assert.equal(de('2026-12-25T12:00:00Z'), 'weekend:10000', 'Friday 25 December is a holiday');
    assert.equal(de('2026-12-24T12:00:00Z'), ':50000', 'Thursday 24 December');
  });
  test('periods in the plan time zone', async () => {
    const b = await book({ timezone: 'Europe/London' });
    // 2026-07-01 is Wednesday; 07:30 UTC is 08:30 BST: peak
    const r = rateCall(b, call('447700900000', '2026-07-01T07:30:00Z', 60));
    assert.equal(r.status === 'rated' && r.period, 'peak');
    const w = rateCall(b, call('447700900000', '2026-01-07T07:30:00Z', 60));
    assert.equal(w.status === 'rated' && w.period, '', 'in winter 07:30 UTC is 07:30 local');
    assert.deepEqual(localTime(T('2026-07-01T23:30:00Z'), 'Europe/London'), {
      dow: 4,
      minute: 30,
      date: '2026-07-02',
    });
  });
  test('property: local time from the cached offsets agrees with Intl, across DST changes', () => {
    const zones = ['Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe', 'UTC'];
    fc.assert(
      fc.property(
        fc.constantFrom(...zones),
        fc.integer({ min: T('2020-01-01T00:00:00Z'), max: T('2030-01-01T00:00:00Z') }),
        (tz, at) => {
          const p: Record<string, string> = {};
          const f = new Intl.DateTimeFormat('en-US', {
            timeZone: tz,
            hourCycle: 'h23',
            weekday: 'short',
            year: 'numeric',
            month: '2-digit',
            day: '2-digit',
            hour: '2-digit',
            minute: '2-digit',
          });
          for (const x of f.formatToParts(at)) p[x.type] = x.value;
          const want = {
            dow: ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(p.weekday),
            minute: Number(p.hour) * 60 + Number(p.minute),
            date: `${p.year}-${p.month}-${p.day}`,
          };
          assert.deepEqual(localTime(at, tz), want);
        },
      ),
      { numRuns: 3000 },
    );
    // the hour of the spring change in Berlin: 01:59:59 UTC is 03:59:59 CEST, 00:59:59 UTC is 01:59:59 CET
    assert.equal(localTime(T('2026-03-29T00:59:59Z'), 'Europe/Berlin').minute, 1 * 60 + 59);
    assert.equal(localTime(T('2026-03-29T01:00:00Z'), 'Europe/Berlin').minute, 3 * 60);
  });
  test('effective dates: a new version applies from its date on, the old one before', async () => {
    const b = await book();
    const v2 = await importPlan(
      {
        planId: 'std',
        effectiveFrom: T('2026-12-01T00:00:00Z'),
        currency: 'EUR',
        timezone: 'UTC',
        holidays: [],
      },
      'prefix,price_per_minute\n1,0.50\n',
    );
    assert.ok(v2.ok);
    b.add(v2.version);
    const price = (iso: string) => rateCall(b, call('12125550000', iso, 60)).priceMicros;
    assert.equal(price('2026-11-30T23:59:59Z'), 20_000);
    assert.equal(price('2026-12-01T00:00:00Z'), 500_000);
    assert.equal(
      rateCall(b, call('12125550000', '2025-06-01T00:00:00Z', 60)).status,
      'unrated',
      'before any version',
    );
  });
  test('on-net calls are free unless the plan has an on-net rate; unknown plans and numbers are unrated', async () => {
    const b = await book();
    const free = rateCall(b, call('', '2026-11-25T12:00:00Z', 600, { onNet: true }));
    assert.deepEqual([free.status, free.priceMicros], ['free', 0]);
    const paid = await book({ rates: RATES + 'on-net,On net,,,0,0.006,0,60/60,0\n' });
    const r = rateCall(paid, call('', '2026-11-25T12:00:00Z', 61, { onNet: true }));
    assert.deepEqual([r.status, r.priceMicros], ['rated', 12_000]);
    assert.equal(rateCall(b, call('33123456789', '2026-11-25T12:00:00Z', 60)).status, 'unrated');
    assert.equal(rateCall(b, call('1212', '2026-11-25T12:00:00Z', 60, { plan: 'nope' })).status, 'unrated');
  });
});

describe('CSV import', () => {
  test('quoted fields, comments, blank lines, CRLF', () => {
    const rows = parseCsv('a,b\r\n# note\n\n"x, y","say ""hi"""\n');
    assert.deepEqual(rows, [
      { line: 1, fields: ['a', 'b'] },
      { line: 4, fields: ['x, y', 'say "hi"'] },
    ]);
    // Lines after a quoted field that spans lines keep their numbers; a lone CR ends a line too.
    assert.deepEqual(parseCsv('h\n"a\nb",c\nd,e\r\nf\rg,"h"\n'), [
      { line: 1, fields: ['h'] },
      { line: 2, fields: ['a\nb', 'c'] },
      { line: 4, fields: ['d', 'e'] },
      { line: 5, fields: ['f'] },
      { line: 6, fields: ['g', 'h'] },
    ]);
  });
  test('property: text without quotes splits into its lines (LF, CRLF or CR) and fields', () => {
    const text = fc
      .array(fc.constantFrom('a', '1', ' ', ',', '#', '\n', '\r', '\r\n'), { maxLength: 60 })
      .map((parts) => parts.join(''));
    fc.assert(
      fc.property(text, (t) => {
        const expected = t
          .split(/\r\n|\n|\r/)
          .map((l, i) => ({ line: i + 1, fields: l.split(',') }))
          .filter(
            (r) => !(r.fields.length === 1 && r.fields[0].trim() === '') && !r.fields[0].startsWith('#'),
          );
        assert.deepEqual(parseCsv(t), expected);
      }),
      { numRuns: 2000 },
    );
  });
  test('a large import lets the event loop turn between slices of lines', async () => {
    let csv = 'prefix,price_per_minute\n';
    for (let i = 0; i < 10_000; i++) csv += `${100000 + i},0.01\n`;
    let turns = 0;
    let counting = true;
    const count = () => {
      turns++;
      if (counting) setImmediate(count);
    };
    setImmediate(count);
    const r = await importPlan(
      { planId: 'deck', effectiveFrom: 0, currency: 'EUR', timezone: 'UTC', holidays: [] },
      csv,
    );
    counting = false;
    assert.ok(r.ok);
    assert.equal(r.rates, 10_000);
    assert.ok(turns >= 5, `the loop turned ${turns} times during the import`);
  });
  test('export, then import: the same plan (rates, periods, on-net) rates every call alike', async () => {
    const b = await book({
      rates: RATES + '"on-net",On net,,,0,0.006,0,60/60,0\n"+",Rest of the world,,,0.5,1.25,10,45/15,3\n',
    });
    const v = b.versionAt('std', T('2026-06-01T00:00:00Z'))!;
    const csv = await exportPlan(v);
    const back = await importPlan(
      {
        planId: 'std',
        effectiveFrom: v.effectiveFrom,
        currency: 'EUR',
        timezone: 'UTC',
        holidays: [...v.holidays],
      },
      csv.ratesCsv,
      csv.periodsCsv,
    );
    assert.ok(back.ok, JSON.stringify(!back.ok && back.errors));
    const b2 = new PlanBook();
    b2.add(back.version);
    assert.deepEqual(await exportPlan(back.version), csv, 'a second export is the same text');
    fc.assert(
      fc.property(
        fc.stringMatching(/^[0-9]{1,12}$/),
        fc.integer({ min: T('2026-01-01T00:00:00Z'), max: T('2027-01-01T00:00:00Z') }),
        fc.nat(7200),
        fc.boolean(),
        (callee, at, duration, onNet) => {
          const req = { planId: 'std', callee, onNet, answeredAt: at, durationSeconds: duration };
          assert.deepEqual(rateCall(b2, req), rateCall(b, req));
        },
      ),
    );
  });
  test('errors name the line, and every bad line is reported', async () => {
    const r = await importPlan(
      { planId: 'p', effectiveFrom: 0, currency: 'EUR', timezone: 'UTC', holidays: [] },
      'prefix,name,price_per_minute,increment,period\n1,US,0.02,60/60,\n1x,Bad,0.02,1/1,\n44,UK,abc,1/1,\n49,DE,0.01,0/1,\n1,US again,0.03,1/1,\n33,FR,0.01,1/1,evening\n',
      'name,days,from,to\nx,funday,08:00,18:00\n',
    );
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.deepEqual(
      r.errors.map((e) => e.replace(/:.*/, '')),
      ['periods line 2', 'rates line 3', 'rates line 4', 'rates line 5', 'rates line 6', 'rates line 7'],
    );
    assert.match(r.errors[1], /prefix "1x"/);
    assert.match(r.errors[4], /already/);
  });
  test('header problems and plan attributes', async () => {
    const bad = await importPlan(
      { planId: 'p q', effectiveFrom: 0, currency: 'eur', timezone: 'Mars/Base', holidays: ['25.12.'] },
      'prefix,cost\n1,1\n',
    );
    assert.equal(bad.ok, false);
    if (bad.ok) return;
    assert.equal(bad.errors.length, 5, bad.errors.join('\n'));
    assert.match(bad.errors[4], /rates line 1: unknown column "cost"/);
    for (const rates of ['', '# a comment only\n', 'prefix,price_per_minute\n']) {
      const none = await importPlan(
        { planId: 'p', effectiveFrom: 0, currency: 'EUR', timezone: 'UTC', holidays: [] },
        rates,
      );
      assert.deepEqual(none.ok ? [] : none.errors, [
        'rates: a header line and at least one rate are required',
      ]);
    }
  });
});
