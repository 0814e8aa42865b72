// The whole platform as `npm start` runs it: `switchboard start --target=all`,
// one process on embedded storage (PGlite on disk, the embedded event log).
import { test } from 'node:test';
import { oneProcess } from '../lib/launch';
import { wholePlatformScenario } from './scenario';

test('whole platform, one process on embedded storage', { timeout: 180_000 }, async (t) => {
  const p = await oneProcess({
    env: {
      SWITCHBOARD_SIP_MEDIA_RELAY: 'always',
      SWITCHBOARD_SIP_TRACE: 'true',
      SWITCHBOARD_SIP_T1_MS: '100',
    },
  });
  try {
    await wholePlatformScenario(t, p);
  } finally {
    await p.stop();
  }
});
