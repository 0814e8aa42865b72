import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSip, type SipRequest } from '@switchboard/sip';
import { createRouter, divertedMailbox } from './apps';
import { PromptSet, promptFromPcm } from './prompts';

const invite = (
  ruri: string,
  extra: string[] = [],
  from = '<sip:alice@example.com>;tag=1',
  to = '<sip:bob@example.com>',
) =>
  parseSip(
    Buffer.from(
      [
        `INVITE ${ruri} SIP/2.0`,
        'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1',
        `From: ${from}`,
        `To: ${to}`,
        'Call-ID: c1',
        'CSeq: 1 INVITE',
        ...extra,
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    ),
    false,
  ) as SipRequest;

const prompts = new PromptSet();
prompts.set(promptFromPcm('not-in-service', new Int16Array(160)));
const route = createRouter({ prompts, accessUsers: ['*98', 'voicemail'] });

test('announcements by name; an unknown one is 404', () => {
  assert.deepEqual(route(invite('sip:announce-not-in-service@10.0.0.1')), {
    route: { app: 'announce', prompt: 'not-in-service' },
  });
  assert.equal((route(invite('sip:announce-nope@10.0.0.1')) as { status: number }).status, 404);
  assert.deepEqual(route(invite('sip:announce-not-in-service@10.0.0.1;early=402')), {
    route: { app: 'announce', prompt: 'not-in-service' },
    early: { status: 402 },
  });
  assert.deepEqual(route(invite('sip:announce-not-in-service@10.0.0.1;early=200')), {
    route: { app: 'announce', prompt: 'not-in-service' },
  });
  assert.equal((route(invite('sip:announce-..%2Fetc@10.0.0.1')) as { status: number }).status, 404);
});

test('voicemail: vm-<user> takes the To host as domain (or a configured one); vm-user@domain as given', () => {
  assert.deepEqual(route(invite('sip:vm-bob@10.0.0.1')), {
    route: { app: 'voicemail', mailbox: 'bob@example.com' },
  });
  const fixed = createRouter({ prompts, accessUsers: [], domain: 'voip.example.net' });
  assert.deepEqual(fixed(invite('sip:vm-bob@10.0.0.1')), {
    route: { app: 'voicemail', mailbox: 'bob@voip.example.net' },
  });
  assert.deepEqual(route(invite('sip:vm-carol%40other.example@10.0.0.1')), {
    route: { app: 'voicemail', mailbox: 'carol@other.example' },
  });
});

test("mailbox access: the caller's own mailbox for *98 and voicemail", () => {
  assert.deepEqual(route(invite('sip:*98@10.0.0.1', [], '<sip:Bob@Example.com>;tag=9')), {
    route: { app: 'mailbox', mailbox: 'Bob@example.com' },
  });
  assert.deepEqual(route(invite('sip:voicemail@10.0.0.1')), {
    route: { app: 'mailbox', mailbox: 'alice@example.com' },
  });
});

test('forwarded calls: Diversion (most recent first), else History-Info before the cause entry', () => {
  const div = invite('sip:x@10.0.0.1', [
    'Diversion: <sip:bob@example.com>;reason=user-busy',
    'Diversion: <sip:carol@example.com>;reason=no-answer',
  ]);
  assert.equal(divertedMailbox(div), 'bob@example.com');
  assert.deepEqual(route(div), { route: { app: 'voicemail', mailbox: 'bob@example.com' } });
  const hi = invite('sip:x@10.0.0.1', [
    'History-Info: <sip:dave@example.com>;index=1',
    'History-Info: <sip:dave@10.0.0.9;cause=486>;index=1.1',
  ]);
  assert.equal(divertedMailbox(hi), 'dave@example.com');
  const plain = invite('sip:x@10.0.0.1');
  assert.equal(divertedMailbox(plain), undefined);
  assert.equal((route(plain) as { status: number }).status, 404);
});
