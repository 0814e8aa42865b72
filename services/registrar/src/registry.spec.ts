import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Binding, RegisterInput, RegistrarPolicy } from './bindings';
import { Registry } from './registry';
import type { BindingStore } from './store';

const policy: RegistrarPolicy = {
  minExpires: 60,
  maxExpires: 3600,
  defaultExpires: 3600,
  maxContacts: 10,
  overflow: 'drop-oldest',
};
const T0 = 1_700_000_000_000;

/** A Registry over a store in memory, with a clock the test moves (ms). */
function registry(stored = new Map<string, Binding[]>()) {
  const clock = { ms: T0, now: () => clock.ms };
  const saved = new Map(stored);
  let failNext = false;
  const store: BindingStore = {
    loadAll: async () => new Map(stored),
    async save(aor, bindings) {
      if (failNext) {
        failNext = false;
        throw new Error('database down');
      }
      if (bindings.length) saved.set(aor, bindings);
      else saved.delete(aor);
    },
    flush: async () => undefined,
  };
  const r = new Registry(store, policy, clock, (a, b) => a === b);
  const register = (aor: string, contact: string, expires: number, cseq = 1) =>
    r.register({
      aor,
      contacts: [{ uri: contact, expires }],
      removeAll: false,
      callId: `${aor}-call`,
      cseq,
      path: [],
      userAgent: 'test',
    } satisfies RegisterInput);
  const expired: string[] = [];
  r.changes.on('change', (c: { type: string; binding: Binding }) => {
    if (c.type === 'expired') expired.push(c.binding.contact);
  });
  return { r, clock, saved, register, expired, failNext: () => (failNext = true) };
}

test('sweep removes each binding once it expires, also when the earliest one was refreshed meanwhile', async () => {
  const { r, clock, saved, register, expired } = registry();
  await register('sip:a@example.com', 'sip:a@10.0.0.1', 100);
  await register('sip:b@example.com', 'sip:b@10.0.0.2', 200);
  await register('sip:c@example.com', 'sip:c@10.0.0.3', 300);
  clock.ms += 50_000;
  assert.equal(await r.sweep(), 0);
  // a, the earliest, is refreshed: b is now the first to go, and must not be missed
  await register('sip:a@example.com', 'sip:a@10.0.0.1', 400, 2);
  clock.ms = T0 + 150_000;
  assert.equal(await r.sweep(), 0);
  clock.ms = T0 + 200_000;
  assert.equal(await r.sweep(), 1);
  assert.deepEqual(expired, ['sip:b@10.0.0.2']);
  assert.equal(saved.has('sip:b@example.com'), false);
  clock.ms = T0 + 300_000;
  assert.equal(await r.sweep(), 1);
  clock.ms = T0 + 449_000;
  assert.equal(await r.sweep(), 0);
  clock.ms = T0 + 450_000;
  assert.equal(await r.sweep(), 1);
  assert.deepEqual(expired, ['sip:b@10.0.0.2', 'sip:c@10.0.0.3', 'sip:a@10.0.0.1']);
  assert.equal(saved.size, 0);
});

test('sweep expires what was loaded from storage, and a registration sooner than every other one', async () => {
  const loaded: Binding = {
    aor: 'sip:old@example.com',
    contact: 'sip:old@10.0.0.9',
    expires: T0 / 1000 + 30,
    callId: 'x',
    cseq: 1,
    path: [],
    instanceId: '',
    regId: 0,
    userAgent: 'ua',
    updatedAt: T0,
  };
  const { r, clock, register, expired } = registry(new Map([[loaded.aor, [loaded]]]));
  await r.load();
  await register('sip:a@example.com', 'sip:a@10.0.0.1', 3600);
  assert.equal(await r.sweep(), 0);
  clock.ms += 30_000;
  assert.equal(await r.sweep(), 1);
  // the next expiry is an hour away now; a registration for one minute comes before it
  await register('sip:b@example.com', 'sip:b@10.0.0.2', 60);
  clock.ms += 60_000;
  assert.equal(await r.sweep(), 1);
  assert.deepEqual(expired, ['sip:old@10.0.0.9', 'sip:b@10.0.0.2']);
});

test('sweep retries an expiry whose commit failed', async () => {
  const { r, clock, register, expired, failNext } = registry();
  await register('sip:a@example.com', 'sip:a@10.0.0.1', 100);
  await register('sip:b@example.com', 'sip:b@10.0.0.2', 3600);
  clock.ms += 100_000;
  failNext();
  await assert.rejects(r.sweep(), /could not store/);
  assert.equal(await r.sweep(), 1);
  assert.deepEqual(expired, ['sip:a@10.0.0.1']);
});

test('list pages through the AoRs in order, with the domain and prefix filters, as a sort of them all would', async () => {
  const { r, register } = registry();
  const aors: string[] = [];
  // inserted in a scrambled order, over two domains
  for (let i = 0; i < 500; i++) {
    const n = (i * 263) % 500;
    const aor = `sip:u${n}@${n % 3 ? 'example.com' : 'other.org'}`;
    aors.push(aor);
    await register(aor, `sip:u${n}@10.0.${n >> 8}.${n & 255}`, 600);
  }
  for (const filter of [
    {},
    { domain: 'other.org' },
    { aorPrefix: 'sip:u1' },
    { domain: 'example.com', aorPrefix: 'sip:u4' },
  ]) {
    const want = aors
      .filter(
        (a) =>
          (!filter.domain || a.endsWith(`@${filter.domain}`)) &&
          (!filter.aorPrefix || a.startsWith(filter.aorPrefix)),
      )
      .sort();
    for (const pageSize of [1, 7, 100, 1000]) {
      const got: string[] = [];
      let after: string | undefined;
      for (let pages = 0; ; pages++) {
        assert.ok(pages <= want.length, 'paging ends');
        const p = r.list({ ...filter, pageSize, after });
        got.push(...p.bindings.map((b) => b.aor));
        assert.ok(p.bindings.length <= pageSize);
        if (!p.next) break;
        assert.equal(p.next, got[got.length - 1]);
        after = p.next;
      }
      assert.deepEqual(got, want, `${JSON.stringify(filter)}, pages of ${pageSize}`);
    }
  }
});
