// Missing standard prompts made at start by scripts/generate-prompts.sh (real espeak-ng and sox),
// placed without touching what is there; a failing generator is reported, not thrown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateMissingPrompts, standardPromptNames } from './generate';
import { tone } from './tone';
import { readWav, writeWav } from './wav';

test('the standard prompts are the ones the script makes', async () => {
  const names = await standardPromptNames();
  for (const n of [
    'insufficient-credit',
    'not-allowed',
    'not-in-service',
    'try-later',
    'vm-greeting',
    'digit-9',
  ])
    assert.ok(names.includes(n), n);
});

test('only the missing prompts are generated, an existing one stays as it was', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-prompts-'));
  try {
    const names = await standardPromptNames();
    const own = writeWav(tone(500, 100));
    // Everything but two present: the operator's recordings.
    for (const n of names.filter((x) => x !== 'not-allowed' && x !== 'digit-7'))
      writeFileSync(join(dir, `${n}.wav`), own);
    const have = new Set(names.filter((x) => x !== 'not-allowed' && x !== 'digit-7'));
    const g = await generateMissingPrompts(dir, have, { generate: true });
    assert.equal(g.error, undefined);
    assert.deepEqual(g.generated.sort(), ['digit-7', 'not-allowed']);
    const speech = readWav(readFileSync(join(dir, 'not-allowed.wav')));
    assert.ok(speech.length > 8000, `not-allowed is ${speech.length} samples`);
    assert.deepEqual(readFileSync(join(dir, 'vm-greeting.wav')), own);
    // no temporary directory left behind
    assert.equal(readdirSync(dir).filter((f) => !f.endsWith('.wav')).length, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('generation off, or a generator that fails: nothing generated, the error said', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-prompts-'));
  try {
    const off = await generateMissingPrompts(dir, new Set(), { generate: false });
    assert.deepEqual(off.generated, []);
    assert.ok(off.standard.length > 10);
    const script = join(dir, 'broken.sh');
    writeFileSync(
      script,
      'if [ "$1" = --list ]; then echo not-allowed; exit 0; fi\necho "espeak-ng: not found" >&2; exit 127\n',
    );
    const failed = await generateMissingPrompts(dir, new Set(), { generate: true, script });
    assert.deepEqual(failed, { standard: ['not-allowed'], generated: [], error: 'espeak-ng: not found' });
    assert.deepEqual(readdirSync(dir), ['broken.sh']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
