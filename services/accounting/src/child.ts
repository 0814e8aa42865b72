/**
 * The accounting service alone in a process (crash test, bench/radius): the platform
 * runner with the environment given as JSON in argv[2]. Prints
 * "READY <url>" once it listens.
 */
import { runTargets, stopOnSignals } from '@switchboard/platform';
import { accountingService } from './main';

const env = JSON.parse(process.argv[2] ?? '{}') as Record<string, string>;
const proc = await runTargets([accountingService], {
  version: 'child',
  env,
  processName: 'accounting',
});
stopOnSignals(proc, 5000);
const url = proc.endpoints.find((e) => e.service === 'accounting')!.url;
const metrics = proc.endpoints.find((e) => e.service === 'ops')?.url ?? '';
process.stdout.write(`READY ${url} ${metrics}\n`);
