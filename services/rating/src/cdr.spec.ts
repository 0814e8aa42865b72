import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cdrId, sessionKey } from './cdr';

test('a session key is the same whichever side reports the call (tags in code-unit order)', () => {
  assert.equal(sessionKey('c1@h', 'b7', 'a3'), 'c1@h\na3\nb7');
  assert.equal(sessionKey('c1@h', 'a3', 'b7'), 'c1@h\na3\nb7');
  // code units, as Array#sort orders strings: 'Z' (0x5a) before 'a' (0x61)
  assert.equal(sessionKey('c', 'a', 'Z'), 'c\nZ\na');
  assert.equal(sessionKey('c', null, 'x'), 'c\n\nx');
  assert.equal(sessionKey('c', 'x', null), 'c\n\nx');
  assert.equal(cdrId('call', sessionKey('c', 'x', 'y')), cdrId('call', sessionKey('c', 'y', 'x')));
});
