/**
 * `switchboard subscriber ...` and `switchboard credit ...`: the portal's
 * service layer from the command line, on the database `npm start` uses (the
 * embedded one under SWITCHBOARD_DATA_DIR, or DATABASE_URL). Changes go to
 * the outbox like the API's: a running portal on the same PostgreSQL publishes
 * them within its relay poll interval; on the embedded database (which one
 * process opens at a time) the next `npm start` publishes them.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  DomainError,
  invalidArgument,
  loadConfig,
  migrate,
  openDb,
  platformSpec,
  MEMORY_DATA_DIR,
} from '@switchboard/platform';
import { formatMicros, toMicros } from './money';
import { portalConfig } from './main';
import { CreateSubscriber, parse } from './schemas';
import { PortalStore } from './store';

export const PORTAL_CLI_HELP = `  subscriber add <user>[@<domain>] --password <secret> [--display-name <name>] [--email <e-mail>] [--web-password <pw>]
  subscriber list [--search <text>] [--page <n>]
  subscriber passwd <user>[@<domain>] --password <secret>
  subscriber remove <user>[@<domain>]
  credit add <user>[@<domain>] <amount> [--reason <text>]`;

type Env = Record<string, string | undefined>;

/** Runs one command; returns the lines to print. Throws DomainError / ConfigError on bad input. */
export async function portalCli(cmd: string, argv: string[], env: Env): Promise<string[]> {
  const platform = loadConfig(platformSpec, env);
  const config = loadConfig(portalConfig, env);
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      password: { type: 'string' },
      'display-name': { type: 'string' },
      email: { type: 'string' },
      'web-password': { type: 'string' },
      search: { type: 'string' },
      page: { type: 'string' },
      reason: { type: 'string' },
    },
  });
  const [sub, who, amount] = positionals;
  const db = await openDb({
    databaseUrl: platform.databaseUrl,
    dataDir: join(platform.dataDir, 'pglite'),
    memory: platform.dataDir === MEMORY_DATA_DIR,
  });
  try {
    await migrate(db, { schema: 'portal', dir: join(import.meta.dirname, '..', 'migrations') });
    const defaultDomain = config.sipDomain.toLowerCase();
    const store = new PortalStore(db, {
      defaultDomain,
      secretKey: config.secretKey,
      rating: { prepaid: config.prepaid, currency: config.currency },
    });
    await store.ensureDomain(defaultDomain);
    const actor = 'cli';
    const aor = () => {
      if (!who) throw invalidArgument('subscriber', 'name the subscriber: <user>[@<domain>]');
      const [username, domain = defaultDomain] = who.replace(/^sips?:/, '').split('@');
      return { username, domain: domain.toLowerCase() };
    };
    const id = async () => {
      const a = aor();
      const found = await store.subscriberIdByAor(a.username, a.domain);
      if (!found) throw new DomainError('not_found', `no subscriber sip:${a.username}@${a.domain}`);
      return found;
    };
    const key = `${cmd} ${sub ?? ''}`.trim();
    switch (key) {
      case 'subscriber add': {
        const a = aor();
        const input = parse(CreateSubscriber, {
          username: a.username,
          domain: a.domain,
          password: values.password,
          displayName: values['display-name'],
          email: values.email,
          webPassword: values['web-password'],
        });
        const s = await store.createSubscriber(actor, input);
        return [`created ${s.aor} (id ${s.id})`];
      }
      case 'subscriber list': {
        const page = await store.listSubscribers({
          search: values.search,
          page: values.page ? Number(values.page) : undefined,
          pageSize: 100,
        });
        return [
          ...page.items.map(
            (s) => `${s.aor.padEnd(40)} ${s.enabled ? 'active   ' : 'suspended'} ${s.privileges.join(',')}`,
          ),
          `${page.total} subscriber(s), page ${page.page}`,
        ];
      }
      case 'subscriber passwd': {
        const input = parse(CreateSubscriber.pick({ password: true }), { password: values.password });
        const s = await store.updateSubscriber(actor, await id(), { password: input.password });
        return [`SIP password of ${s.aor} changed`];
      }
      case 'subscriber remove': {
        const removed = await store.deleteSubscriber(actor, await id());
        return [`removed ${removed}`];
      }
      case 'credit add': {
        if (!amount) throw invalidArgument('amount', 'credit add <user>[@<domain>] <amount>');
        const micros = toMicros(amount);
        if (micros <= 0) throw invalidArgument('amount', 'amount: a positive amount');
        const r = await store.addCredit(actor, await id(), {
          amountMicros: micros,
          kind: 'topup',
          reason: values.reason ?? 'credit added from the command line',
        });
        return [
          `queued ${formatMicros(micros)} ${config.currency} for ${r.account} (applied by the portal's rating relay)`,
        ];
      }
      default:
        throw invalidArgument('command', `unknown command "${key}"; known:\n${PORTAL_CLI_HELP}`);
    }
  } finally {
    await db.close();
  }
}
