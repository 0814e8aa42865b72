import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  ConfigError,
  runTargets,
  selectTargets,
  stopOnSignals,
  loadConfig,
  platformSpec,
  processEnv,
} from '@switchboard/platform';
import { SERVICES } from './targets';
import { configTable } from './config-doc';
import { trace } from './trace';
import { PORTAL_CLI_HELP, portalCli } from '../services/portal/src/cli';

const VERSION: string = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;

const HELP = `switchboard ${VERSION}: VoIP provider platform

Usage: switchboard <command> [options]

Commands:
  start --target=all|<service>[,<service>]   start services in this process (default: all)
  targets                                    list the services this build can run
  config [--markdown]                        print the configuration variables and their defaults
  trace [--url=http://127.0.0.1:9464] [--call-id=ID] [--number=N] [--method=M] [--full]
                                             follow SIP messages through a running proxy
${PORTAL_CLI_HELP}
  help                                       this text

Configuration comes from environment variables (SWITCHBOARD_*, DATABASE_URL,
KAFKA_BROKERS); \`switchboard config\` lists them.`;

async function start(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { target: { type: 'string', default: 'all' } } });
  const modules = selectTargets(SERVICES, values.target!);
  const platform = loadConfig(platformSpec);
  const proc = await runTargets(modules, { version: VERSION, processName: 'switchboard' });
  stopOnSignals(proc, platform.shutdownTimeoutMs);
  const names = modules.map((m) => m.name).join(', ') || 'no services (ops server only)';
  console.log(`switchboard ${VERSION} started: ${names}`);
  console.log(
    `storage: ${platform.databaseUrl ? 'PostgreSQL' : `embedded (${platform.dataDir})`}; events: ${platform.kafkaBrokers ? `Kafka ${platform.kafkaBrokers.join(',')}` : 'embedded log'}`,
  );
  for (const e of proc.endpoints) console.log(`  ${`${e.service} ${e.name}`.padEnd(24)} ${e.url}`);
  console.log(`  ${'ops healthz'.padEnd(24)} ${proc.ops.url}/healthz`);
  console.log('Press Ctrl-C to stop.');
}

function targets(): void {
  if (SERVICES.length === 0) console.log('(no services in this build yet)');
  for (const m of SERVICES) {
    const deps = m.dependsOn?.length ? ` (after ${m.dependsOn.join(', ')})` : '';
    console.log(`${m.name.padEnd(14)} ${m.description}${deps}`);
  }
}

function config(argv: string[]): void {
  if (argv.includes('--markdown')) return void console.log(configTable(SERVICES));
  const specs = [
    { name: 'platform', spec: platformSpec },
    ...SERVICES.map((m) => ({ name: m.name, spec: m.configSpec })),
  ];
  for (const { name, spec } of specs) {
    console.log(`[${name}]`);
    for (const s of Object.values(spec)) console.log(`  ${s.env}=${s.default ?? ''}  # ${s.description}`);
  }
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  switch (cmd) {
    case 'start':
      return start(rest);
    case 'targets':
      return targets();
    case 'config':
      return config(rest);
    case 'trace':
      return trace(rest);
    case 'subscriber':
    case 'credit':
      for (const line of await portalCli(cmd, rest, processEnv())) console.log(line);
      return;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(HELP);
      return;
    default:
      console.error(`unknown command "${cmd}"\n\n${HELP}`);
      process.exitCode = 2;
  }
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(`configuration error: ${err.message}`);
  else console.error(`switchboard: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
