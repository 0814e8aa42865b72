/**
 * The accounting service alone in a process, for the crash test: the platform
 * runner with the environment given as JSON in argv[2]. Prints
 * "READY <url>" once it listens; the test SIGKILLs it.
 */
import { runTargets, stopOnSignals } from '@switchboard/platform';
import { accountingService } from './main';

const env = JSON.parse(process.argv[2] ?? '{}') as Record<string, string>;
const proc = await runTargets([accountingService], {
  version: 'crash-test',
  env,
  processName: 'accounting-crash-test',
});
stopOnSignals(proc, 5000);
const url = proc.endpoints.find((e) => e.service === 'accounting')!.url;
process.stdout.write(`READY ${url}\n`);
