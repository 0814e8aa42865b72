/**
 * The subscriber and credit commands on the embedded database of `npm start`:
 * what they change is published when the portal starts on that data directory.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TOPICS, type SubscriberRecord } from '@switchboard/contracts';
import { DomainError } from '@switchboard/platform';
import { ha1 } from '@switchboard/sip';
import { portalCli } from './cli';
import { startTestPortal } from './test-support';

const dir = mkdtempSync(join(tmpdir(), 'sb-portal-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const env = { SWITCHBOARD_DATA_DIR: dir, SWITCHBOARD_SIP_DOMAIN: 'example.com' };

test('subscriber add / list / passwd / remove and credit add work on the embedded database; the portal publishes them at start', async () => {
  const created = await portalCli('subscriber', ['add', 'alice@example.com', '--password', 'secret'], env);
  assert.match(created[0], /^created sip:alice@example\.com \(id [0-9a-f-]{36}\)$/);
  await portalCli('subscriber', ['add', 'bob', '--password', 'b0b-secret', '--display-name', 'Bob'], env);
  await assert.rejects(portalCli('subscriber', ['add', 'bob', '--password', 'b0b-secret'], env), /exists/);
  await assert.rejects(portalCli('subscriber', ['add', 'carol', '--password', 'x'], env), (e: unknown) => {
    assert.ok(e instanceof DomainError);
    assert.equal(e.field, 'password');
    return true;
  });
  const list = await portalCli('subscriber', ['list'], env);
  assert.equal(list.length, 3);
  assert.match(list[0], /^sip:alice@example\.com\s+active/);
  assert.equal(list[2], '2 subscriber(s), page 1');
  assert.deepEqual(
    await portalCli('subscriber', ['passwd', 'alice@example.com', '--password', 'n3w-secret'], env),
    ['SIP password of sip:alice@example.com changed'],
  );
  assert.deepEqual(await portalCli('credit', ['add', 'alice@example.com', '10.00'], env), [
    "queued 10.00 EUR for sip:alice@example.com (applied by the portal's rating relay)",
  ]);
  assert.deepEqual(await portalCli('subscriber', ['remove', 'bob@example.com'], env), [
    'removed sip:bob@example.com',
  ]);
  await assert.rejects(
    portalCli('subscriber', ['passwd', 'nobody', '--password', 'secret1'], env),
    /no subscriber/,
  );
  await assert.rejects(portalCli('subscriber', ['frobnicate'], env), /unknown command/);

  // `npm start` on the same data directory: the portal publishes what the commands changed.
  const p = await startTestPortal({ SWITCHBOARD_DATA_DIR: dir });
  try {
    const t = await p.topic<SubscriberRecord>(TOPICS.subscribers);
    assert.deepEqual([...t.keys()], ['sip:alice@example.com']);
    assert.equal(t.get('sip:alice@example.com')!.ha1, ha1('alice', 'example.com', 'n3w-secret', 'MD5'));
    const audit = await p.api('GET', '/api/v1/audit?pageSize=50');
    assert.ok(
      audit.body.items.some(
        (e: { actor: string; action: string }) => e.actor === 'cli' && e.action === 'credit',
      ),
    );
  } finally {
    await p.stop();
  }
});
