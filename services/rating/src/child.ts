/**
 * The rating service alone in a process, for the benchmark and the crash test: env from the
 * parent, prints `ready <JSON>` with its gRPC and ops URLs once started,
 * stops on SIGTERM.
 */
import { runTargets, stopOnSignals } from '@switchboard/platform';
import { ratingService } from '@switchboard/rating';

// configuration from this process's environment (the runner reads it)
const proc = await runTargets([ratingService], { version: 'child' });
const grpc = proc.endpoints.find((e) => e.service === 'rating')!.url.replace('grpc://', '');
process.stdout.write(`ready ${JSON.stringify({ grpc, ops: proc.ops.url })}\n`);
stopOnSignals(proc, 10_000);
