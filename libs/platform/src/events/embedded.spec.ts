import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { requirePostgres, testPostgresUrl, uniqueName } from '../testing';
import { openDb } from '../db/open';
import type { Db } from '../db/types';
import { createTestDatabase, type TestDatabase } from '../db/test-databases';
import { eventBusContract, until } from './bus.contract';
import { TopicTail, heldTail, openEmbeddedBus } from './embedded';
import type { EventMessage } from './types';

let mem: Db;
before(async () => {
  mem = await openDb({ memory: true });
});
after(async () => {
  await mem?.close();
});
eventBusContract('embedded log on PGlite (memory)', {
  open: (hooks) => openEmbeddedBus({ db: mem, pollMs: 200, retryInitialMs: 20, ...hooks }),
});

/** The in-memory PGlite Db, counting the statements that match each pattern (a Db of its own, so its own tails). */
function counting<K extends string>(patterns: Record<K, RegExp>): { db: Db; counts: Record<K, number> } {
  const counts = Object.fromEntries(Object.keys(patterns).map((k) => [k, 0])) as Record<K, number>;
  const db: Db = {
    ...mem,
    kind: 'pglite',
    query: (sql, params) => {
      for (const k in patterns) if (patterns[k].test(sql)) counts[k]++;
      return mem.query(sql, params);
    },
  };
  return { db, counts };
}

let pgdb: TestDatabase;
let pgDb: Db;
before(async () => {
  await requirePostgres();
  pgdb = await createTestDatabase(testPostgresUrl());
  pgDb = await openDb({ databaseUrl: pgdb.url });
});
after(async () => {
  await pgDb?.close();
  await pgdb?.drop();
});
eventBusContract('embedded log on PostgreSQL', {
  open: (hooks) => openEmbeddedBus({ db: pgDb, pollMs: 200, retryInitialMs: 20, ...hooks }),
});

/** Concurrent publishers while a member consumes: offsets follow commit order, so the reader skips nothing. */
async function concurrentPublishersLoseNothing(db: Db): Promise<void> {
  const bus = await openEmbeddedBus({ db, pollMs: 20 });
  try {
    const t = uniqueName('bus');
    const got = new Set<string>();
    let deliveries = 0;
    const sub = await bus.subscribe({
      topic: t,
      group: uniqueName('g'),
      fromBeginning: true,
      handler: async (m) => {
        deliveries++;
        got.add(m.value!.toString());
      },
    });
    const publishers = Array.from({ length: 8 }, (_, p) =>
      (async () => {
        for (let i = 0; i < 10; i++)
          await bus.publish(t, [
            { key: `p${p}`, value: `${p}.${i}` },
            { key: `p${p}`, value: `${p}.${i}b` },
          ]);
      })(),
    );
    await Promise.all(publishers);
    await until(() => got.size >= 160, '160 messages');
    await sub.close();
    assert.equal(got.size, 160);
    assert.equal(deliveries, 160);
  } finally {
    await bus.close();
  }
}

/**
 * One publish of many messages (the whole batch is one statement with array parameters): keys,
 * values and headers that an array literal would have to quote come back as they went, in
 * order, at dense offsets.
 */
async function oddMessagesRoundTrip(db: Db): Promise<void> {
  const bus = await openEmbeddedBus({ db, pollMs: 20 });
  try {
    const t = uniqueName('bus');
    const odd = ['', 'NULL', 'null', 'a,b', '{x}', 'say "hi"', 'back\\slash', ' pad ', 'ü€😀', 'new\nline'];
    const sent = Array.from({ length: 1200 }, (_, i) => {
      const k = odd[i % odd.length];
      return {
        key: `${k}${i % 20 < 10 ? '' : i}`,
        value:
          i % 7 === 0
            ? null
            : i % 7 === 1
              ? Buffer.from([0, 0x5c, 0x22, 0x7b, 0x2c, 255, i & 255])
              : `${k} ${i}`,
        headers: i % 5 === 0 ? { [k || 'empty']: `${k}"${i}` } : undefined,
      };
    });
    await bus.publish(t, sent);
    const got: { offset: string; key: string; value: Buffer | null; headers: Record<string, string> }[] = [];
    const sub = await bus.subscribeBatch({
      topic: t,
      group: uniqueName('g'),
      fromBeginning: true,
      handler: async (ms) => void got.push(...ms),
    });
    try {
      await until(() => got.length >= sent.length, `${sent.length} messages`);
    } finally {
      await sub.close();
    }
    assert.equal(got.length, sent.length);
    const first = BigInt(got[0].offset);
    got.forEach((m, i) => {
      const s = sent[i];
      assert.equal(BigInt(m.offset), first + BigInt(i), 'dense offsets in publish order');
      assert.equal(m.key, s.key);
      assert.deepEqual(m.value, s.value === null ? null : Buffer.from(s.value));
      assert.deepEqual(m.headers, s.headers ?? {});
    });
    // The next publish continues where this one ended.
    await bus.publish(t, [{ key: 'next', value: 'x' }]);
    const latest = await bus.readCompacted(t);
    assert.equal(BigInt(latest.get('next')!.offset), first + BigInt(sent.length));
  } finally {
    await bus.close();
  }
}

/**
 * Retention: messages of a topic that is not compacted go once older than the retention; newer
 * ones, and a compacted topic's however old, stay; a group reading from the beginning gets what
 * is left. A bus opened with a retention applies it at start too.
 */
async function retentionExpiresOldMessages(db: Db): Promise<void> {
  const DAY = 24 * 3600 * 1000;
  const bus = await openEmbeddedBus({ db, pollMs: 50, retentionMs: 0 });
  const plain = uniqueName('bus');
  const compacted = uniqueName('bus');
  const offsets = async (t: string) =>
    (
      await db.query<{ o: string }>(
        'SELECT "offset"::text AS o FROM eventlog.events WHERE topic = $1 ORDER BY "offset"',
        [t],
      )
    ).rows.map((r) => Number(r.o));
  try {
    // Created by a publish first and declared compacted after: compacted, so retention leaves it.
    await bus.publish(compacted, [{ key: 'a', value: '0' }]);
    await bus.ensureTopic(compacted, { compacted: true });
    await bus.publish(
      plain,
      ['0', '1', '2'].map((v) => ({ key: `k${v}`, value: v })),
    );
    // The first two of `plain` and the compacted one published ten days ago.
    await db.query(
      'UPDATE eventlog.events SET ts = ts - $3::bigint WHERE (topic = $1 AND "offset" < 2) OR topic = $2',
      [plain, compacted, String(10 * DAY)],
    );
    await bus.publish(plain, [{ key: 'k3', value: '3' }]);
    assert.equal(await bus.expire(Date.now() - 7 * DAY), 2);
    assert.deepEqual(await offsets(plain), [2, 3]);
    assert.deepEqual(await offsets(compacted), [0]);
    assert.equal(await bus.expire(Date.now() - 7 * DAY), 0);
    const got: string[] = [];
    const sub = await bus.subscribe({
      topic: plain,
      group: uniqueName('g'),
      fromBeginning: true,
      handler: async (m) => void got.push(m.value!.toString()),
    });
    await until(() => got.length === 2, 'the retained messages');
    await sub.close();
    assert.deepEqual(got, ['2', '3']);
    // Everything of `plain` ten days old: a bus opened with a week's retention deletes it at start.
    await db.query('UPDATE eventlog.events SET ts = ts - $2::bigint WHERE topic = $1', [
      plain,
      String(10 * DAY),
    ]);
    const second = await openEmbeddedBus({ db, retentionMs: 7 * DAY });
    try {
      const end = Date.now() + 10_000;
      while ((await offsets(plain)).length > 0 && Date.now() < end)
        await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(await offsets(plain), []);
    } finally {
      await second.close();
    }
    // The next publish continues the offsets.
    await bus.publish(plain, [{ key: 'k4', value: '4' }]);
    assert.deepEqual(await offsets(plain), [4]);
  } finally {
    await bus.close();
  }
}

/**
 * readCompacted reads in pages of 2,000: 4,500 messages (3,000 keys, 1,000 of them updated, 500
 * deleted), and between the first page and the second, publishes that change keys the first page
 * returned (an update, a tombstone), one it had not reached yet and a new key. The map ends at
 * the latest of each.
 */
async function readCompactedInPages(base: Db): Promise<void> {
  const other = await openEmbeddedBus({ db: base });
  const t = uniqueName('bus');
  let pages = 0;
  const db: Db = {
    ...base,
    query: async (sql, params, opts) => {
      const r = await base.query(sql, params, opts);
      if (/NOT EXISTS/.test(sql) && params?.[0] === t && ++pages === 1)
        await other.publish(t, [
          { key: 'k1600', value: 'v3' },
          { key: 'k1700', value: null },
          { key: 'k0500', value: 'v3' },
          { key: 'new', value: 'v1' },
        ]);
      return r as never;
    },
  };
  const bus = await openEmbeddedBus({ db });
  try {
    await bus.ensureTopic(t, { compacted: true });
    const k = (i: number) => `k${String(i).padStart(4, '0')}`;
    const msgs = [
      ...Array.from({ length: 3000 }, (_, i) => ({ key: k(i), value: 'v1' })),
      ...Array.from({ length: 1000 }, (_, i) => ({ key: k(i), value: 'v2' })),
      ...Array.from({ length: 500 }, (_, i) => ({ key: k(1000 + i), value: null })),
    ];
    await bus.publish(t, msgs);
    const expected = new Map<string, string>();
    for (const m of msgs)
      if (m.value === null) expected.delete(m.key);
      else expected.set(m.key, m.value);
    expected.set('k1600', 'v3');
    expected.delete('k1700');
    expected.set('k0500', 'v3');
    expected.set('new', 'v1');
    const got = await bus.readCompacted(t);
    assert.ok(pages >= 2, `read in ${pages} page(s)`);
    assert.equal(got.size, expected.size);
    for (const [key, m] of got) assert.equal(m.value?.toString(), expected.get(key), key);
  } finally {
    await bus.close();
    await other.close();
  }
}

describe('embedded log specifics', () => {
  test('messages older than the retention are deleted from topics that are not compacted (PGlite)', () =>
    retentionExpiresOldMessages(mem));
  test('messages older than the retention are deleted from topics that are not compacted (PostgreSQL)', () =>
    retentionExpiresOldMessages(pgDb));
  test('a publish of 1,200 messages with keys and values to quote arrives whole, in order (PGlite)', () =>
    oddMessagesRoundTrip(mem));
  test('a publish of 1,200 messages with keys and values to quote arrives whole, in order (PostgreSQL)', () =>
    oddMessagesRoundTrip(pgDb));
  test('readCompacted reads a large topic in pages and ends at the latest of each key (PGlite)', () =>
    readCompactedInPages(mem));
  test('readCompacted reads a large topic in pages and ends at the latest of each key (PostgreSQL)', () =>
    readCompactedInPages(pgDb));
  test('concurrent publishers lose nothing for a live reader (PGlite)', () =>
    concurrentPublishersLoseNothing(mem));
  test('concurrent publishers lose nothing for a live reader (PostgreSQL)', () =>
    concurrentPublishersLoseNothing(pgDb));

  test('a busy member renews its lease once per third of it, and reads the lag with its commits', async () => {
    const { db: counted, counts } = counting({
      lease: /SET owner = \$4, lease_until/,
      lagSelect: /^\s*SELECT next_offset FROM eventlog.topics/,
      commit: /SET committed_offset = \$4/,
    });
    const lags: number[] = [];
    const bus = await openEmbeddedBus({
      db: counted,
      pollMs: 60_000,
      leaseMs: 600_000,
      onLag: (l) => void lags.push(l.lag),
    });
    try {
      const t = uniqueName('bus');
      const got: string[] = [];
      const sub = await bus.subscribeBatch({
        topic: t,
        group: uniqueName('g'),
        fromBeginning: true,
        handler: async (ms) => void got.push(...ms.map((m) => m.value!.toString())),
      });
      for (let i = 0; i < 10; i++) {
        await bus.publish(t, [{ key: 'k', value: String(i) }]);
        await until(() => got.length > i, `message ${i}`);
      }
      await sub.close();
      assert.deepEqual(
        got,
        Array.from({ length: 10 }, (_, i) => String(i)),
      );
      assert.ok(counts.commit >= 10, `a commit per batch (${counts.commit})`);
      assert.equal(counts.lease, 1, 'the lease taken once, not renewed every round');
      assert.ok(counts.lagSelect <= 1, `the lag read with the commits (${counts.lagSelect} separate reads)`);
      assert.equal(lags.at(-1), 0, 'caught up');
    } finally {
      await bus.close();
    }
  });

  test('a reader that keeps up gets what this process published from the tail, not by reading the rows back (PGlite)', async () => {
    const { db: counted, counts } = counting({
      reads: /FROM eventlog.events\s+WHERE topic = \$1 AND partition = \$2/,
    });
    const bus = await openEmbeddedBus({ db: counted, pollMs: 60_000 });
    try {
      const t = uniqueName('tail');
      // published before the reader starts: read from the Db
      await bus.publish(t, [{ key: 'k', value: 'before' }]);
      assert.equal(heldTail(counted, t), undefined, 'no tail for a topic nobody here reads');
      const got: string[] = [];
      const sub = await bus.subscribeBatch({
        topic: t,
        group: uniqueName('g'),
        fromBeginning: true,
        handler: async (ms) => void got.push(...ms.map((m) => m.value!.toString())),
      });
      await until(() => got.length === 1, 'the message published before');
      assert.ok(heldTail(counted, t), 'a tail once a subscriber reads the topic');
      const readsBefore = counts.reads;
      const reused = Buffer.from('x0');
      for (let i = 1; i <= 20; i++) {
        reused.write(`x${i % 10}`); // the publisher reuses its buffer: what was published stays
        await bus.publish(t, [{ key: 'k', value: reused, headers: { n: String(i) } }]);
        await until(() => got.length === i + 1, `message ${i}`);
      }
      await sub.close();
      assert.deepEqual(got, ['before', ...Array.from({ length: 20 }, (_, i) => `x${(i + 1) % 10}`)]);
      const reads = counts.reads - readsBefore;
      assert.ok(reads <= 1, `${reads} reads of the events for 20 publishes`);
    } finally {
      await bus.close();
    }
  });

  test('a topic tail serves only the offsets it holds, starts again after a gap, and drops its older half when full', () => {
    const msg = (offset: number): EventMessage => ({
      topic: 't',
      partition: 0,
      offset: String(offset),
      key: 'k',
      value: Buffer.from(String(offset)),
      headers: { h: '1' },
      timestamp: 0,
    });
    const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => msg(a + i));
    const offsets = (ms: EventMessage[] | undefined) => ms?.map((m) => Number(m.offset));
    const tail = new TopicTail();
    assert.equal(tail.read(0n, 10), undefined, 'empty: nothing');
    tail.append(5n, range(5, 8));
    assert.equal(tail.read(4n, 10), undefined, 'before its start: the Db has it');
    assert.deepEqual(offsets(tail.read(5n, 10)), [5, 6, 7]);
    assert.deepEqual(offsets(tail.read(6n, 1)), [6]);
    assert.equal(tail.read(8n, 10), undefined, 'at its end: not known to be the end of the log');
    const copy = tail.read(5n, 1)![0];
    copy.value![0] = 0x41;
    copy.headers.h = 'changed';
    assert.equal(tail.read(5n, 1)![0].value!.toString(), '5', 'readers get copies');
    assert.equal(tail.read(5n, 1)![0].headers.h, '1');
    tail.append(10n, range(10, 12)); // 8 and 9 were not seen here
    assert.equal(tail.read(7n, 10), undefined, 'restarted at the gap');
    assert.deepEqual(offsets(tail.read(10n, 10)), [10, 11]);
    tail.append(12n, range(12, 12 + 20_000));
    const first = offsets(tail.read(20_011n, 1))!;
    assert.deepEqual(first, [20_011], 'the newest kept');
    assert.equal(tail.read(10n, 1), undefined, 'the oldest dropped');
    let start = 12;
    while (tail.read(BigInt(start), 1) === undefined) start++;
    const all = offsets(tail.read(BigInt(start), 100_000))!;
    assert.deepEqual(
      all,
      Array.from({ length: 20_012 - start }, (_, i) => start + i),
      'contiguous to the end',
    );
    assert.ok(all.length <= 4_096, `${all.length} kept`);
    // large values: bound by bytes (4 MB), the newest kept
    const big = (offset: number): EventMessage => ({
      ...msg(offset),
      value: Buffer.alloc(1024 * 1024, offset % 256),
    });
    tail.append(20_012n, [20_012, 20_013, 20_014, 20_015, 20_016].map(big));
    assert.equal(tail.read(20_013n, 1), undefined, 'older megabytes dropped');
    assert.deepEqual(offsets(tail.read(20_015n, 10)), [20_015, 20_016]);
  });

  test('commitOffsets false: no commit statements, and a renewed lease keeps the place in memory', async () => {
    const { db: counted, counts } = counting({
      commits: /SET committed_offset = \$4/,
      leases: /SET owner = \$4, lease_until/,
    });
    const bus = await openEmbeddedBus({ db: counted, pollMs: 50, leaseMs: 90 });
    try {
      const t = uniqueName('nocommit');
      const got: string[] = [];
      const sub = await bus.subscribeBatch({
        topic: t,
        group: uniqueName('g'),
        fromBeginning: true,
        commitOffsets: false,
        handler: async (ms) => void got.push(...ms.map((m) => m.value!.toString())),
      });
      for (let i = 0; i < 6; i++) {
        await bus.publish(t, [{ key: 'k', value: String(i) }]);
        await until(() => got.length === i + 1, `message ${i}`);
        await new Promise((r) => setTimeout(r, 40)); // past a third of the lease: renewed
      }
      await sub.close();
      assert.deepEqual(got, ['0', '1', '2', '3', '4', '5'], 'each once, after the lease was renewed');
      assert.ok(counts.leases >= 3, `lease renewed (${counts.leases} times)`);
      assert.equal(counts.commits, 0);
    } finally {
      await bus.close();
    }
  });

  test('a member whose lease was taken stops consuming at its next commit and stands by', async () => {
    const bus = await openEmbeddedBus({ db: mem, pollMs: 50, leaseMs: 600_000 });
    try {
      const t = uniqueName('bus');
      const group = uniqueName('g');
      const got: string[] = [];
      const sub = await bus.subscribe({
        topic: t,
        group,
        fromBeginning: true,
        handler: async (m) => void got.push(m.value!.toString()),
      });
      await bus.publish(t, [{ key: 'k', value: '1' }]);
      await until(() => got.length >= 1, 'first');
      // Another process takes the group (as after this one's lease ran out).
      await mem.query(
        `UPDATE eventlog.consumer_offsets SET owner = 'other', lease_until = now() + interval '1 hour' WHERE group_id = $1`,
        [group],
      );
      await bus.publish(t, [
        { key: 'k', value: '2' },
        { key: 'k', value: '3' },
      ]);
      await until(() => got.length >= 2, 'the message fetched before the commit failed');
      await new Promise((r) => setTimeout(r, 300)); // a few poll rounds
      await sub.close();
      assert.deepEqual(got, ['1', '2'], 'nothing after the lost commit');
      const r = await mem.query<{ owner: string; committed_offset: string }>(
        `SELECT owner, committed_offset FROM eventlog.consumer_offsets WHERE group_id = $1`,
        [group],
      );
      assert.deepEqual(r.rows[0], { owner: 'other', committed_offset: '1' });
    } finally {
      await bus.close();
    }
  });

  test('two members of one group: only one consumes; the other takes over when it closes', async () => {
    const bus = await openEmbeddedBus({ db: mem, pollMs: 50 });
    try {
      const t = uniqueName('bus');
      const group = uniqueName('g');
      const a: string[] = [];
      const b: string[] = [];
      const sa = await bus.subscribe({
        topic: t,
        group,
        fromBeginning: true,
        handler: async (m) => void a.push(m.value!.toString()),
      });
      const sb = await bus.subscribe({
        topic: t,
        group,
        fromBeginning: true,
        handler: async (m) => void b.push(m.value!.toString()),
      });
      await bus.publish(
        t,
        [1, 2, 3].map((i) => ({ key: 'k', value: String(i) })),
      );
      await until(() => a.length + b.length >= 3, 'first 3');
      const [first, firstSub, secondGot] = a.length > 0 ? [a, sa, b] : [b, sb, a];
      assert.deepEqual(first, ['1', '2', '3']);
      assert.deepEqual(secondGot, []);
      await firstSub.close();
      await bus.publish(t, [{ key: 'k', value: '4' }]);
      await until(() => secondGot.length >= 1, 'takeover');
      assert.deepEqual(secondGot, ['4']);
    } finally {
      await bus.close();
    }
  });

  test('compact deletes superseded messages and keeps what readCompacted returns', async () => {
    const bus = await openEmbeddedBus({ db: mem });
    try {
      const t = uniqueName('bus');
      await bus.ensureTopic(t, { compacted: true });
      await bus.publish(t, [
        { key: 'a', value: '1' },
        { key: 'a', value: '2' },
        { key: 'b', value: '1' },
        { key: 'b', value: null },
      ]);
      const before = await bus.readCompacted(t);
      assert.equal(await bus.compact(t), 2);
      const afterCompaction = await bus.readCompacted(t);
      assert.deepEqual(
        [...afterCompaction.entries()].map(([k, m]) => [k, m.value?.toString()]),
        [['a', '2']],
      );
      assert.deepEqual([...before.keys()], [...afterCompaction.keys()]);
    } finally {
      await bus.close();
    }
  });

  test('compactSince looks only at the keys published from an offset on', async () => {
    const bus = await openEmbeddedBus({ db: mem, compactEvery: 0 });
    try {
      const t = uniqueName('bus');
      await bus.ensureTopic(t, { compacted: true });
      // offsets 0-3: 'old' superseded before the cut; 4-6: 'a' twice and 'b' after it
      await bus.publish(t, [
        { key: 'old', value: '1' },
        { key: 'old', value: '2' },
        { key: 'a', value: '1' },
        { key: 'b', value: '1' },
      ]);
      await bus.publish(t, [
        { key: 'a', value: '2' },
        { key: 'a', value: '3' },
        { key: 'b', value: null },
      ]);
      const before = await bus.readCompacted(t);
      // a:1, a:2 and b:1 go; old:1 stays (its successor came before offset 4)
      assert.equal(await bus.compactSince(t, 4n), 3);
      const rows = await mem.query<{ key: string; value: Buffer | null }>(
        `SELECT key, value FROM eventlog.events WHERE topic = $1 ORDER BY "offset"`,
        [t],
      );
      assert.deepEqual(
        rows.rows.map((r) => `${r.key}=${r.value?.toString() ?? 'null'}`),
        ['old=1', 'old=2', 'a=3', 'b=null'],
      );
      assert.deepEqual(await bus.readCompacted(t), before);
      assert.equal(await bus.compact(t), 1);
    } finally {
      await bus.close();
    }
  });

  test('lazy compaction after the first round looks at what was published since the last', async () => {
    const bus = await openEmbeddedBus({ db: mem, compactEvery: 2 });
    const t = uniqueName('bus');
    const seen: bigint[] = [];
    const since = bus.compactSince.bind(bus);
    bus.compactSince = (topic: string, from: bigint) => (seen.push(from), since(topic, from));
    try {
      await bus.ensureTopic(t, { compacted: true });
      for (let i = 0; i < 4; i++)
        await bus.publish(t, [
          { key: 'a', value: String(i) },
          { key: 'b', value: String(i) },
        ]);
    } finally {
      await bus.close();
    }
    // rounds after offsets 0-1 (the whole topic), 2-3, 4-5, 6-7
    assert.deepEqual(seen, [2n, 4n, 6n]);
    const left = await mem.query<{ n: string }>(
      `SELECT count(*) AS n FROM eventlog.events WHERE topic = $1`,
      [t],
    );
    assert.equal(Number(left.rows[0].n), 2);
  });

  test('a compacted topic is compacted lazily after compactEvery messages', async () => {
    const bus = await openEmbeddedBus({ db: mem, compactEvery: 4 });
    const t = uniqueName('bus');
    const plain = uniqueName('bus');
    try {
      await bus.ensureTopic(t, { compacted: true });
      await bus.publish(t, [
        { key: 'a', value: '1' },
        { key: 'b', value: '1' },
        { key: 'a', value: '2' },
      ]);
      await bus.publish(
        plain,
        [1, 2, 3, 4, 5].map((i) => ({ key: 'a', value: String(i) })),
      );
      await bus.publish(t, [{ key: 'b', value: '2' }]);
    } finally {
      await bus.close(); // waits for the background compaction
    }
    const count = async (topic: string) =>
      Number(
        (
          await mem.query<{ n: string }>(`SELECT count(*) AS n FROM eventlog.events WHERE topic = $1`, [
            topic,
          ])
        ).rows[0].n,
      );
    assert.equal(await count(t), 2);
    assert.equal(await count(plain), 5);
  });

  test('a reader woken by publishes leaves no timer behind per wake-up', async () => {
    const bus = await openEmbeddedBus({ db: mem, pollMs: 60_000 });
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    try {
      const t = uniqueName('wake');
      let got = 0;
      const sub = await bus.subscribe({
        topic: t,
        group: uniqueName('g'),
        fromBeginning: true,
        handler: async () => {
          got++;
        },
      });
      await bus.publish(t, [{ key: 'k', value: '0' }]);
      await until(() => got === 1, 'the first message');
      const before = timers();
      for (let i = 1; i <= 30; i++) {
        await bus.publish(t, [{ key: 'k', value: String(i) }]);
        await until(() => got === i + 1, `message ${i}`);
      }
      // each wake-up used to leave its 60 s poll timer running: 30 more here
      assert.ok(timers() - before < 5, `${timers() - before} more timers after 30 wake-ups`);
      await sub.close();
    } finally {
      await bus.close();
    }
  });

  test('rejects a bad topic name', async () => {
    const bus = await openEmbeddedBus({ db: mem });
    try {
      await assert.rejects(bus.publish('no spaces', [{ key: 'k', value: 'v' }]), /bad topic name/);
    } finally {
      await bus.close();
    }
  });
});
