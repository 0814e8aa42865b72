// The whole platform at scale: one `switchboard start --target=<service>`
// process per service, on PostgreSQL (a fresh database) and Kafka.
import { test } from 'node:test';
import { separateProcesses } from '../lib/launch';
import { wholePlatformScenario } from './scenario';

test(
  'whole platform, separate service processes on PostgreSQL and Kafka',
  { timeout: 180_000 },
  async (t) => {
    const p = await separateProcesses({
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
  },
);
