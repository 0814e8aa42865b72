import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DomainError } from '@switchboard/platform';
import { applyRegister, type Binding, type RegisterInput, type RegistrarPolicy } from './bindings';

const policy: RegistrarPolicy = {
  minExpires: 60,
  maxExpires: 3600,
  defaultExpires: 3600,
  maxContacts: 3,
  overflow: 'drop-oldest',
};
const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
const T0 = 1_700_000_000_000;
const req = (over: Partial<RegisterInput>): RegisterInput => ({
  aor: 'sip:alice@example.com',
  contacts: [],
  removeAll: false,
  callId: 'c1',
  cseq: 1,
  path: [],
  userAgent: 'ua',
  ...over,
});
const ok = (r: ReturnType<typeof applyRegister>) => {
  assert.equal(r.kind, 'ok');
  return r as Extract<typeof r, { kind: 'ok' }>;
};

test('a new registration adds a binding with an absolute expiry (RFC 3665 2.1)', () => {
  const r = ok(
    applyRegister([], req({ contacts: [{ uri: 'sip:alice@10.0.0.1', expires: 600 }] }), policy, T0, same),
  );
  assert.equal(r.bindings.length, 1);
  assert.equal(r.bindings[0].expires, T0 / 1000 + 600);
  assert.deepEqual(
    r.changes.map((c) => c.type),
    ['upsert'],
  );
});

test('expiry defaults and is capped at max-expires; below min-expires is 423 with Min-Expires', () => {
  const d = ok(applyRegister([], req({ contacts: [{ uri: 'sip:a@h' }] }), policy, T0, same));
  assert.equal(d.bindings[0].expires - T0 / 1000, 3600);
  const capped = ok(
    applyRegister([], req({ contacts: [{ uri: 'sip:a@h', expires: 99999 }] }), policy, T0, same),
  );
  assert.equal(capped.bindings[0].expires - T0 / 1000, 3600);
  assert.deepEqual(
    applyRegister([], req({ contacts: [{ uri: 'sip:a@h', expires: 30 }] }), policy, T0, same),
    {
      kind: 'too-brief',
      minExpires: 60,
    },
  );
});

test('refresh with a higher CSeq updates; the same or lower CSeq with the same Call-ID is refused', () => {
  const first = ok(
    applyRegister([], req({ contacts: [{ uri: 'sip:a@h', expires: 600 }] }), policy, T0, same),
  ).bindings;
  const refreshed = ok(
    applyRegister(
      first,
      req({ cseq: 2, contacts: [{ uri: 'SIP:a@h', expires: 900 }] }),
      policy,
      T0 + 5000,
      same,
    ),
  );
  assert.equal(refreshed.bindings.length, 1);
  assert.equal(refreshed.bindings[0].expires, (T0 + 5000) / 1000 + 900);
  assert.throws(
    () =>
      applyRegister(
        refreshed.bindings,
        req({ cseq: 2, contacts: [{ uri: 'sip:a@h', expires: 900 }] }),
        policy,
        T0,
        same,
      ),
    (e: unknown) => e instanceof DomainError && e.kind === 'failed_precondition',
  );
  // A different Call-ID (a rebooted phone) may update regardless of CSeq.
  const other = ok(
    applyRegister(
      refreshed.bindings,
      req({ callId: 'c2', cseq: 1, contacts: [{ uri: 'sip:a@h', expires: 60 }] }),
      policy,
      T0,
      same,
    ),
  );
  assert.equal(other.bindings[0].callId, 'c2');
});

test('expires 0 removes one binding; * removes all; no Contact is a query (RFC 3665 2.2-2.4)', () => {
  let bs: Binding[] = ok(
    applyRegister(
      [],
      req({
        contacts: [
          { uri: 'sip:a@h1', expires: 600 },
          { uri: 'sip:a@h2', expires: 600, q: 500 },
        ],
      }),
      policy,
      T0,
      same,
    ),
  ).bindings;
  assert.deepEqual(
    bs.map((b) => b.contact),
    ['sip:a@h1', 'sip:a@h2'],
  );
  const query = ok(applyRegister(bs, req({ cseq: 2 }), policy, T0, same));
  assert.equal(query.bindings.length, 2);
  assert.deepEqual(query.changes, []);
  bs = ok(
    applyRegister(bs, req({ cseq: 3, contacts: [{ uri: 'sip:a@h1', expires: 0 }] }), policy, T0, same),
  ).bindings;
  assert.deepEqual(
    bs.map((b) => b.contact),
    ['sip:a@h2'],
  );
  const all = ok(applyRegister(bs, req({ cseq: 4, removeAll: true }), policy, T0, same));
  assert.deepEqual(all.bindings, []);
  assert.deepEqual(
    all.changes.map((c) => c.type),
    ['removed'],
  );
});

test('q orders the answer: highest first, no q counts as 1.0', () => {
  const r = ok(
    applyRegister(
      [],
      req({ contacts: [{ uri: 'sip:a@low', q: 100 }, { uri: 'sip:a@none' }, { uri: 'sip:a@mid', q: 700 }] }),
      policy,
      T0,
      same,
    ),
  );
  assert.deepEqual(
    r.bindings.map((b) => b.contact),
    ['sip:a@none', 'sip:a@mid', 'sip:a@low'],
  );
});

test('the same +sip.instance and reg-id replaces the binding even from a new address (RFC 5626)', () => {
  const inst = '<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>';
  const a = ok(
    applyRegister(
      [],
      req({ contacts: [{ uri: 'sip:a@10.0.0.1:5060', instanceId: inst, regId: 1 }] }),
      policy,
      T0,
      same,
    ),
  );
  const b = ok(
    applyRegister(
      a.bindings,
      req({ callId: 'c9', contacts: [{ uri: 'sip:a@10.0.0.7:5062', instanceId: inst, regId: 1 }] }),
      policy,
      T0 + 1,
      same,
    ),
  );
  assert.deepEqual(
    b.bindings.map((x) => x.contact),
    ['sip:a@10.0.0.7:5062'],
  );
  const c = ok(
    applyRegister(
      b.bindings,
      req({ callId: 'c9', cseq: 2, contacts: [{ uri: 'sip:a@10.0.0.8', instanceId: inst, regId: 2 }] }),
      policy,
      T0 + 2,
      same,
    ),
  );
  assert.equal(c.bindings.length, 2, 'another reg-id is another flow');
});

test('max contacts: drop the oldest, or refuse when configured', () => {
  let bs: Binding[] = [];
  for (let i = 0; i < 4; i++) {
    bs = ok(
      applyRegister(bs, req({ callId: `c${i}`, contacts: [{ uri: `sip:a@h${i}` }] }), policy, T0 + i, same),
    ).bindings;
  }
  assert.deepEqual(bs.map((b) => b.contact).sort(), ['sip:a@h1', 'sip:a@h2', 'sip:a@h3']);
  assert.throws(
    () =>
      applyRegister(
        bs,
        req({ callId: 'cx', contacts: [{ uri: 'sip:a@h9' }] }),
        { ...policy, overflow: 'reject' },
        T0 + 9,
        same,
      ),
    (e: unknown) => e instanceof DomainError && e.kind === 'permission_denied',
  );
});

test('expired bindings are reported and not counted', () => {
  const bs = ok(
    applyRegister([], req({ contacts: [{ uri: 'sip:a@h', expires: 60 }] }), policy, T0, same),
  ).bindings;
  const later = ok(applyRegister(bs, req({ cseq: 2 }), policy, T0 + 61_000, same));
  assert.deepEqual(later.bindings, []);
  assert.deepEqual(
    later.changes.map((c) => c.type),
    ['expired'],
  );
});
