/** Trunk registrations: a REGISTER that cannot be sent is retried later, and never takes the process down. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { FakeClock, type SendTarget, type SipRequest } from '@switchboard/sip';
import { TrunkRegistrations } from './trunks';

test('a REGISTER whose send throws is retried after retrySec, counted as failed, and not thrown', async () => {
  const clock = new FakeClock(1_000_000);
  const outcomes: string[] = [];
  const attempts: SipRequest[] = [];
  const target: SendTarget = { transport: 'udp', address: '192.0.2.30', port: 5060 };
  const trunks = new TrunkRegistrations(
    {
      send: (req) => {
        attempts.push(req);
        throw new Error('no route to host');
      },
      resolve: async () => target,
      contactHost: () => '192.0.2.1:5060',
      clock,
      logger: pino({ level: 'silent' }),
      onOutcome: (o) => outcomes.push(o),
    },
    { expiresSec: 600, retrySec: 30 },
  );
  const rejected: unknown[] = [];
  const onRejection = (e: unknown) => rejected.push(e);
  process.on('unhandledRejection', onRejection);
  try {
    trunks.update('gw1', {
      kind: 'gateway',
      id: 'gw1',
      address: '192.0.2.30',
      username: 'u',
      password: 'p',
      register: true,
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(attempts.length, 1);
    assert.deepEqual(outcomes, ['failed']);
    assert.deepEqual(trunks.states(), [{ gateway: 'gw1', registered: false }]);
    clock.advance(30_000);
    await new Promise((r) => setImmediate(r));
    assert.equal(attempts.length, 2, 'tried again after retrySec');
    assert.equal(attempts[1].method, 'REGISTER');
    assert.deepEqual(rejected, []);
  } finally {
    process.off('unhandledRejection', onRejection);
    trunks.stop();
  }
});
