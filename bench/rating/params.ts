/**
 * bench/rating/params: the CDRs of one slice sent to PostgreSQL as the write statement's jsonb
 * parameter, as text (one joined string, as node-postgres sends a string) and as a JsonbArray
 * (jsonb's binary format): the time to serialise the Bind message, in process, and the round trip
 * of a statement that reads every CDR's field from it, on PostgreSQL.
 *
 * `npx tsx bench/rating/params.ts [--cdrs=1000] [--rounds=200]`
 */
import { serialize } from 'pg-protocol';
import { JsonbArray, openDb } from '@switchboard/platform';
import { requirePostgres, testPostgresUrl } from '@switchboard/platform/testing';
import { cliArgs } from '../args';

const args = cliArgs();
const CDRS = Number(args.cdrs ?? 1000);
const ROUNDS = Number(args.rounds ?? 200);

// the shape of a rated CDR (services/rating/src/cdr.ts), about 750 bytes of JSON
const json = Array.from({ length: CDRS }, (_, i) =>
  JSON.stringify({
    id: `call-${i.toString(16).padStart(40, '0')}`,
    callId: `bench-${i}@198.51.100.7`,
    fromTag: `f${i}`,
    toTag: `t${i}`,
    account: `sip:u${i % 1000}@bench.example`,
    caller: `sip:u${i % 1000}@bench.example`,
    callee: 'sip:+4930123456@bench.example',
    calleeNumber: '4930123456',
    startedAt: new Date(1.8e12 + i * 1000).toISOString(),
    answeredAt: new Date(1.8e12 + i * 1000 + 3000).toISOString(),
    endedAt: new Date(1.8e12 + i * 1000 + 63000).toISOString(),
    durationSeconds: 60,
    billableSeconds: 60,
    disposition: 'answered',
    endReason: 'bye',
    sipCode: 200,
    gateway: '',
    onNet: false,
    rateStatus: 'rated',
    prefix: '4930',
    destination: 'Germany Berlin',
    country: 'DE',
    planId: 'bench',
    planVersion: '2026-01-01T00:00:00.000Z',
    period: 'peak',
    priceMicros: 12345,
    currency: 'EUR',
    flags: [],
    quality: null,
    ratedAt: new Date().toISOString(),
  }),
);
const ways = [
  ['text', () => new JsonbArray(json).text()],
  ['JsonbArray', () => new JsonbArray(json).binary()],
] as const;

console.log(
  `${CDRS} CDRs, ${Math.round(new JsonbArray(json).text().length / 1024)} KiB of JSON, ${ROUNDS} rounds`,
);
for (const [name, param] of [...ways, ...ways]) {
  const t = performance.now();
  for (let i = 0; i < ROUNDS; i++) serialize.bind({ statement: '', values: [param()] });
  console.log(`  Bind serialised, ${name.padEnd(10)}: ${((performance.now() - t) / ROUNDS).toFixed(2)} ms`);
}

await requirePostgres();
const db = await openDb({ databaseUrl: testPostgresUrl() });
const sql = `SELECT count(*) FROM jsonb_array_elements($1::jsonb) AS t(c)
  WHERE (c->>'sipCode')::int > 0 AND (c->>'startedAt')::timestamptz IS NOT NULL AND c->>'account' <> ''`;
try {
  for (const [name, param] of [...ways, ...ways]) {
    const t = performance.now();
    for (let i = 0; i < ROUNDS; i++) await db.query(sql, [name === 'text' ? param() : new JsonbArray(json)]);
    console.log(
      `  round trip on PostgreSQL, ${name.padEnd(10)}: ${((performance.now() - t) / ROUNDS).toFixed(2)} ms`,
    );
  }
} finally {
  await db.close();
}
