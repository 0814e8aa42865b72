/**
 * The portal's service layer over its schema: subscribers, domains, aliases,
 * privileges, API tokens and the audit log. Every change writes, in the same
 * transaction, the audit row and the outbox rows that carry it to the
 * `subscribers` / `routing` topics (so a crash after commit loses nothing).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  alreadyExists,
  DomainError,
  invalidArgument,
  notFound,
  pgErrorCode,
  type Db,
  type DbTx,
  type Queryable,
  type QueryResult,
} from '@switchboard/platform';
import { ha1 } from '@switchboard/sip';
import { TOPICS, encodeRecord, type RoutingRecord, type SubscriberRecord } from '@switchboard/contracts';
import type { CreateAlias, CreateSubscriber, UpdateSubscriber } from './schemas';
import { encrypt, hashPassword, hashToken, newToken } from './secrets';
import {
  FEATURE_KINDS,
  featureFields,
  type FeatureFields,
  type FeatureKind,
  type RoutingKind,
} from './features';
import { parse } from './schemas';
import { formatMicros } from './money';
import type { Vendor } from './provisioning';

export interface PortalStoreOptions {
  /** The configured default SIP domain (SWITCHBOARD_SIP_DOMAIN). */
  defaultDomain: string;
  /** AES key for keeping the SIP password (phone provisioning); without it only HA1 values are kept. */
  secretKey?: Buffer;
  /** Called after a transaction that wrote outbox rows committed (wakes the relay). */
  onOutbox?: () => void;
  /** When the rating service is used: accounts are kept there (created, plan, blocked) through the outbox. */
  rating?: { prepaid: boolean; currency: string };
}

/** The outbox channel of rows for the rating service (delivered over gRPC, not the bus). */
export const RATING_CHANNEL = '@rating';

interface AccountSyncRow {
  id: string;
  username: string;
  domain: string;
  rate_plan: string | null;
  enabled: boolean;
}

/** What the rating relay delivers: an account's settings, or a ledger entry (idempotent by key). */
export type RatingOp =
  | { op: 'account'; account: string; prepaid: boolean; currency: string; planId: string; blocked: boolean }
  | {
      op: 'adjust';
      account: string;
      kind: 'topup' | 'voucher' | 'adjustment' | 'refund';
      amountMicros: number;
      actor: string;
      reason: string;
      idempotencyKey: string;
    };

export interface VoucherView {
  id: string;
  code: string;
  batch: string;
  amount: string;
  currency: string;
  createdAt: string;
  redeemedBy: string | null;
  redeemedAt: string | null;
}

export interface Page<T> {
  items: T[];
  page: number;
  pageSize: number;
  total: number;
}

export interface SubscriberView {
  id: string;
  aor: string;
  username: string;
  domain: string;
  displayName: string | null;
  email: string | null;
  ratePlan: string | null;
  /** The DID presented as caller ID on PSTN calls (null: the first DID). */
  callerId: string | null;
  privileges: string[];
  enabled: boolean;
  aliases: string[];
  hasWebPassword: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface DomainView {
  id: string;
  domain: string;
  subscribers: number;
  /** Visitors may sign up themselves in this domain. */
  openSignup: boolean;
  /** How its phones dial numbers; null: the platform's. */
  dialPlan: DialPlanView | null;
  createdAt: string;
}

export interface DialPlanView {
  countryCode: string;
  nationalPrefix: string;
  internationalPrefix: string;
}

interface DomainRow {
  id: string;
  domain: string;
  n: string;
  open_signup: boolean;
  dial_plan: DialPlanView | null;
  created_at: Date;
}
const domainView = (d: DomainRow): DomainView => ({
  id: d.id,
  domain: d.domain,
  subscribers: Number(d.n),
  openSignup: d.open_signup,
  dialPlan: d.dial_plan,
  createdAt: d.created_at.toISOString(),
});

export interface AliasView {
  id: string;
  subscriberId: string;
  kind: 'alias' | 'did';
  username: string;
  domain: string;
  aor: string;
  createdAt: string;
}

export interface TokenView {
  id: string;
  name: string;
  role: 'admin';
  createdBy: string;
  createdAt: string;
}

export interface AuditEntry {
  seq: string;
  at: string;
  actor: string;
  action: string;
  entity: string;
  entityId: string | null;
  detail: unknown;
}

/** Privileges the proxy and rating know about (others may be granted for local use). */
export const KNOWN_PRIVILEGES: Record<string, string> = {
  national: 'may call national numbers (through gateways)',
  international: 'may call international numbers',
  premium: 'may call premium-rate numbers (SWITCHBOARD_SIP_PREMIUM_PREFIXES)',
  'set-caller-id': 'may send any caller ID (P-Asserted-Identity / From)',
};

interface SubscriberRow {
  id: string;
  username: string;
  domain: string;
  ha1: string;
  ha1_sha256: string;
  web_password_hash: string | null;
  display_name: string | null;
  email: string | null;
  rate_plan: string | null;
  caller_id: string | null;
  privileges: string[];
  enabled: boolean;
  created_at: Date;
  updated_at: Date;
  aliases?: string[] | null;
  features?: { kind: string; data: Record<string, unknown> }[] | null;
}

const ALIASES_AND_FEATURES = `
  (SELECT coalesce(jsonb_agg(a.aor ORDER BY a.aor), '[]'::jsonb) FROM portal.aliases a WHERE a.subscriber_id = s.id) AS aliases,
  (SELECT coalesce(jsonb_agg(jsonb_build_object('kind', f.kind, 'data', f.data) ORDER BY f.kind, f.unique_key), '[]'::jsonb)
     FROM portal.call_features f WHERE f.subscriber_id = s.id) AS features`;
const SUBSCRIBER_COLUMNS = `s.id, s.username, s.domain, s.ha1, s.ha1_sha256, s.web_password_hash, s.display_name, s.email,
  s.rate_plan, s.caller_id, s.privileges, s.enabled, s.created_at, s.updated_at, ${ALIASES_AND_FEATURES}`;
/** What a record on the subscribers topic is made of (start-up republishing reads only these). */
type RecordRow = Pick<
  SubscriberRow,
  | 'id'
  | 'username'
  | 'domain'
  | 'ha1'
  | 'ha1_sha256'
  | 'display_name'
  | 'rate_plan'
  | 'caller_id'
  | 'privileges'
  | 'enabled'
  | 'aliases'
  | 'features'
>;
const RECORD_COLUMNS = `s.id, s.username, s.domain, s.ha1, s.ha1_sha256, s.display_name, s.rate_plan, s.caller_id,
  s.privileges, s.enabled, ${ALIASES_AND_FEATURES}`;

export const aorOf = (username: string, domain: string) => `sip:${username}@${domain}`;

function view(r: SubscriberRow): SubscriberView {
  return {
    id: r.id,
    aor: aorOf(r.username, r.domain),
    username: r.username,
    domain: r.domain,
    displayName: r.display_name,
    email: r.email,
    ratePlan: r.rate_plan,
    callerId: r.caller_id,
    privileges: r.privileges,
    enabled: r.enabled,
    aliases: r.aliases ?? [],
    hasWebPassword: r.web_password_hash !== null,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
  };
}

/**
 * The `subscribers` record as the portal publishes it: the contract's fields, plus the
 * call features (forwarding, block/allow list, speed dials) the proxy will read.
 */
export type PublishedSubscriber = SubscriberRecord & FeatureFields;

/** The `subscribers` topic record of a row (the proxy's view): HA1 values, never the password. */
export function subscriberRecord(r: RecordRow): PublishedSubscriber {
  const rec: PublishedSubscriber = {
    aor: aorOf(r.username, r.domain),
    username: r.username,
    domain: r.domain,
    ha1: r.ha1,
    ha1Sha256: r.ha1_sha256,
    enabled: r.enabled,
    privileges: r.privileges,
    aliases: r.aliases ?? [],
    ...featureFields(r.features ?? []),
  };
  if (r.display_name !== null) rec.displayName = r.display_name;
  if (r.rate_plan !== null) rec.ratePlan = r.rate_plan;
  if (r.caller_id !== null) rec.callerId = r.caller_id;
  return rec;
}

const domainRecord = (id: string, domain: string, dialPlan?: DialPlanView | null): RoutingRecord => ({
  kind: 'domain',
  id,
  domain,
  ...(dialPlan ? { dialPlan } : {}),
});

/** `%` and `_` taken literally in an ILIKE pattern. */
const likePattern = (s: string) => `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

function pageOf(q: { page?: number; pageSize?: number }) {
  const page = q.page ?? 1;
  const pageSize = q.pageSize ?? 50;
  return { page, pageSize, offset: (page - 1) * pageSize };
}

/** Unique violations become 409 with the given message. */
async function uniqueOr<T>(p: Promise<T>, message: string): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (pgErrorCode(e) === '23505') throw alreadyExists(message);
    throw e;
  }
}

export class PortalStore {
  constructor(
    private readonly db: Db,
    private readonly opts: PortalStoreOptions,
  ) {}

  get defaultDomain(): string {
    return this.opts.defaultDomain;
  }

  /** Runs a write; wakes the relay after commit. */
  private async write<T>(fn: (tx: DbTx) => Promise<T>): Promise<T> {
    const out = await this.db.transaction(fn);
    this.opts.onOutbox?.();
    return out;
  }

  private async enqueue(tx: Queryable, topic: string, key: string, value: unknown | null): Promise<void> {
    await tx.query('INSERT INTO portal.outbox (topic, key, value) VALUES ($1, $2, $3)', [
      topic,
      key,
      value === null ? null : encodeRecord(value),
    ]);
  }

  /**
   * Queues a record for every subscriber on `topic`, keyed by its AoR: `batch` subscribers a
   * page, in id order on the primary key (ordering by id::text sorted every subscriber for each
   * page: 27 s for 100,000), one outbox statement a page. Returns how many.
   */
  private async queueEverySubscriber<R extends { id: string; username: string; domain: string }>(
    tx: Queryable,
    topic: string,
    columns: string,
    batch: number,
    record: (row: R) => unknown,
  ): Promise<number> {
    let n = 0;
    for (let after: string | null = null; ;) {
      const r: QueryResult<R> = await tx.query<R>(
        `SELECT ${columns} FROM portal.subscribers s
         WHERE $1::uuid IS NULL OR s.id > $1::uuid ORDER BY s.id LIMIT $2`,
        [after, batch],
      );
      if (r.rowCount === 0) return n;
      await tx.query(
        `INSERT INTO portal.outbox (topic, key, value) SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS x(k, v)`,
        [topic, r.rows.map((x) => aorOf(x.username, x.domain)), r.rows.map((x) => encodeRecord(record(x)))],
      );
      n += r.rowCount;
      after = r.rows[r.rows.length - 1].id;
    }
  }

  private async audit(
    tx: Queryable,
    actor: string,
    action: string,
    entity: string,
    id: string | null,
    detail?: unknown,
  ) {
    await tx.query(
      'INSERT INTO portal.audit_log (actor, action, entity, entity_id, detail) VALUES ($1, $2, $3, $4, $5)',
      [actor, action, entity, id, detail === undefined ? null : JSON.stringify(detail)],
    );
  }

  private async subscriberRow(q: Queryable, id: string, lock = false): Promise<SubscriberRow> {
    const r = await q.query<SubscriberRow>(
      `SELECT ${SUBSCRIBER_COLUMNS} FROM portal.subscribers s WHERE s.id = $1${lock ? ' FOR UPDATE OF s' : ''}`,
      [id],
    );
    if (r.rowCount === 0) throw notFound(`no subscriber ${id}`);
    return r.rows[0];
  }

  /** Queues the subscriber's current record (after the change, in the same transaction). */
  private async publishSubscriber(tx: Queryable, id: string): Promise<SubscriberRow> {
    const row = await this.subscriberRow(tx, id);
    const aor = aorOf(row.username, row.domain);
    await this.enqueue(tx, TOPICS.subscribers, aor, subscriberRecord(row));
    await this.syncAccount(tx, aor, row.rate_plan ?? '', !row.enabled);
    return row;
  }

  /** Queues the account's settings for the rating service (when one is used). */
  private async syncAccount(tx: Queryable, account: string, planId: string, blocked: boolean): Promise<void> {
    if (!this.opts.rating) return;
    await this.enqueue(tx, RATING_CHANNEL, account, this.accountOp(account, planId, blocked));
  }

  private accountOp(account: string, planId: string, blocked: boolean): RatingOp {
    const { prepaid, currency } = this.opts.rating!;
    return { op: 'account', account, prepaid, currency, planId, blocked };
  }

  // --- domains -------------------------------------------------------------

  /** Makes sure a domain exists (the default domain at start-up); publishes it when new. */
  async ensureDomain(domain: string): Promise<void> {
    await this.write(async (tx) => {
      const id = randomUUID();
      const r = await tx.query(
        'INSERT INTO portal.domains (id, domain) VALUES ($1, $2) ON CONFLICT (domain) DO NOTHING',
        [id, domain],
      );
      if (r.rowCount === 1) {
        await this.enqueue(tx, TOPICS.routing, `domain:${id}`, domainRecord(id, domain));
        await this.audit(tx, 'system', 'create', 'domain', id, { domain });
      }
    });
  }

  async createDomain(actor: string, domain: string): Promise<DomainView> {
    const id = randomUUID();
    await this.write(async (tx) => {
      await uniqueOr(
        tx.query('INSERT INTO portal.domains (id, domain) VALUES ($1, $2)', [id, domain]),
        `domain ${domain} exists`,
      );
      await this.enqueue(tx, TOPICS.routing, `domain:${id}`, domainRecord(id, domain));
      await this.audit(tx, actor, 'create', 'domain', id, { domain });
    });
    return this.getDomain(id);
  }

  async getDomain(id: string): Promise<DomainView> {
    const r = await this.db.query<DomainRow>(
      `SELECT d.id, d.domain, d.open_signup, d.dial_plan, d.created_at,
         (SELECT count(*) FROM portal.subscribers s WHERE s.domain_id = d.id) AS n
       FROM portal.domains d WHERE d.id = $1`,
      [id],
    );
    if (r.rowCount === 0) throw notFound(`no domain ${id}`);
    return domainView(r.rows[0]);
  }

  async updateDomain(
    actor: string,
    id: string,
    patch: {
      openSignup?: boolean;
      dialPlan?: { countryCode: string; nationalPrefix?: string; internationalPrefix?: string } | null;
    },
  ): Promise<DomainView> {
    const plan =
      patch.dialPlan &&
      ({
        countryCode: patch.dialPlan.countryCode,
        nationalPrefix: patch.dialPlan.nationalPrefix ?? '0',
        internationalPrefix: patch.dialPlan.internationalPrefix ?? '00',
      } satisfies DialPlanView);
    await this.write(async (tx) => {
      const r = await tx.query<{ domain: string; dial_plan: DialPlanView | null }>(
        `UPDATE portal.domains SET open_signup = coalesce($2, open_signup),
           dial_plan = CASE WHEN $3::boolean THEN $4::jsonb ELSE dial_plan END
         WHERE id = $1 RETURNING domain, dial_plan`,
        [id, patch.openSignup ?? null, patch.dialPlan !== undefined, plan ? JSON.stringify(plan) : null],
      );
      if (r.rowCount === 0) throw notFound(`no domain ${id}`);
      if (patch.dialPlan !== undefined) {
        const row = r.rows[0];
        await this.enqueue(tx, TOPICS.routing, `domain:${id}`, domainRecord(id, row.domain, row.dial_plan));
      }
      await this.audit(tx, actor, 'update', 'domain', id, patch);
    });
    return this.getDomain(id);
  }

  /** Whether visitors may sign up in a domain (false for an unknown one). */
  async signupOpen(domain: string): Promise<boolean> {
    const r = await this.db.query<{ open_signup: boolean }>(
      'SELECT open_signup FROM portal.domains WHERE domain = $1',
      [domain],
    );
    return r.rows[0]?.open_signup === true;
  }

  async listDomains(q: { search?: string; page?: number; pageSize?: number }): Promise<Page<DomainView>> {
    const { page, pageSize, offset } = pageOf(q);
    const pattern = q.search ? likePattern(q.search) : null;
    const r = await this.db.query<DomainRow & { total: string }>(
      `SELECT d.id, d.domain, d.open_signup, d.dial_plan, d.created_at, count(*) OVER () AS total,
         (SELECT count(*) FROM portal.subscribers s WHERE s.domain_id = d.id) AS n
       FROM portal.domains d WHERE ($1::text IS NULL OR d.domain ILIKE $1)
       ORDER BY d.domain LIMIT $2 OFFSET $3`,
      [pattern, pageSize, offset],
    );
    const total = r.rowCount ? Number(r.rows[0].total) : await this.count('domains', 'domain', pattern);
    return {
      items: r.rows.map(domainView),
      page,
      pageSize,
      total,
    };
  }

  private async count(table: string, column: string, pattern: string | null): Promise<number> {
    const r = await this.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM portal.${table} WHERE ($1::text IS NULL OR ${column} ILIKE $1)`,
      [pattern],
    );
    return Number(r.rows[0].n);
  }

  async deleteDomain(actor: string, id: string): Promise<void> {
    await this.write(async (tx) => {
      const d = await tx.query<{ domain: string }>(
        'SELECT domain FROM portal.domains WHERE id = $1 FOR UPDATE',
        [id],
      );
      if (d.rowCount === 0) throw notFound(`no domain ${id}`);
      if (d.rows[0].domain === this.opts.defaultDomain) {
        throw new DomainError(
          'failed_precondition',
          `${d.rows[0].domain} is the default domain (SWITCHBOARD_SIP_DOMAIN)`,
          'id',
        );
      }
      const used = await tx.query('SELECT 1 FROM portal.subscribers WHERE domain_id = $1 LIMIT 1', [id]);
      if (used.rowCount)
        throw new DomainError('failed_precondition', `domain ${d.rows[0].domain} has subscribers`, 'id');
      await tx.query('DELETE FROM portal.domains WHERE id = $1', [id]);
      await this.enqueue(tx, TOPICS.routing, `domain:${id}`, null);
      await this.audit(tx, actor, 'delete', 'domain', id, { domain: d.rows[0].domain });
    });
  }

  private async domainId(tx: Queryable, domain: string, field: string): Promise<string> {
    const r = await tx.query<{ id: string }>('SELECT id FROM portal.domains WHERE domain = $1 FOR SHARE', [
      domain,
    ]);
    if (r.rowCount === 0)
      throw invalidArgument(field, `${field}: unknown domain ${domain} (create it under /api/v1/domains)`);
    return r.rows[0].id;
  }

  // --- subscribers ---------------------------------------------------------

  async createSubscriber(actor: string, input: CreateSubscriber): Promise<SubscriberView> {
    const id = randomUUID();
    const domain = input.domain ?? this.opts.defaultDomain;
    const webHash = input.webPassword === undefined ? null : await hashPassword(input.webPassword);
    const sealed = this.opts.secretKey ? encrypt(this.opts.secretKey, input.password, id) : null;
    const row = await this.write(async (tx) => {
      const domainId = await this.domainId(tx, domain, 'domain');
      await this.checkAorFree(tx, aorOf(input.username, domain));
      await uniqueOr(
        tx.query(
          `INSERT INTO portal.subscribers (id, username, domain_id, domain, ha1, ha1_sha256, sip_password_enc, web_password_hash,
             display_name, email, rate_plan, privileges, enabled)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
          [
            id,
            input.username,
            domainId,
            domain,
            ha1(input.username, domain, input.password, 'MD5'),
            ha1(input.username, domain, input.password, 'SHA-256'),
            sealed,
            webHash,
            input.displayName ?? null,
            input.email ?? null,
            input.ratePlan ?? null,
            JSON.stringify(input.privileges ?? []),
            input.enabled ?? true,
          ],
        ),
        `subscriber ${aorOf(input.username, domain)} exists`,
      );
      await this.audit(tx, actor, 'create', 'subscriber', id, { aor: aorOf(input.username, domain) });
      return this.publishSubscriber(tx, id);
    });
    return view(row);
  }

  /** 409 when an AoR is taken by a subscriber or an alias. */
  private async checkAorFree(tx: Queryable, aor: string): Promise<void> {
    const m = /^sip:([^@]+)@(.+)$/.exec(aor)!;
    const s = await tx.query('SELECT 1 FROM portal.subscribers WHERE username = $1 AND domain = $2', [
      m[1],
      m[2],
    ]);
    if (s.rowCount) throw alreadyExists(`subscriber ${aor} exists`);
    const a = await tx.query('SELECT 1 FROM portal.aliases WHERE aor = $1', [aor]);
    if (a.rowCount) throw alreadyExists(`${aor} is an alias of another subscriber`);
  }

  async subscriberIdByAor(username: string, domain: string): Promise<string | undefined> {
    const r = await this.db.query<{ id: string }>(
      'SELECT id FROM portal.subscribers WHERE username = $1 AND domain = $2',
      [username, domain],
    );
    return r.rows[0]?.id;
  }

  async webPasswordHash(id: string): Promise<string | null> {
    return (await this.subscriberRow(this.db, id)).web_password_hash;
  }

  async getSubscriber(id: string): Promise<SubscriberView> {
    return view(await this.subscriberRow(this.db, id));
  }

  async listSubscribers(q: {
    search?: string;
    page?: number;
    pageSize?: number;
  }): Promise<Page<SubscriberView>> {
    const { page, pageSize, offset } = pageOf(q);
    const pattern = q.search ? likePattern(q.search) : null;
    const where = `($1::text IS NULL OR s.username ILIKE $1 OR s.domain ILIKE $1 OR s.display_name ILIKE $1 OR s.email ILIKE $1
      OR ('sip:' || s.username || '@' || s.domain) ILIKE $1
      OR EXISTS (SELECT 1 FROM portal.aliases a WHERE a.subscriber_id = s.id AND a.aor ILIKE $1))`;
    const r = await this.db.query<SubscriberRow>(
      `SELECT ${SUBSCRIBER_COLUMNS} FROM portal.subscribers s WHERE ${where} ORDER BY s.domain, s.username LIMIT $2 OFFSET $3`,
      [pattern, pageSize, offset],
    );
    const n = await this.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM portal.subscribers s WHERE ${where}`,
      [pattern],
    );
    return { items: r.rows.map(view), page, pageSize, total: Number(n.rows[0].n) };
  }

  async updateSubscriber(actor: string, id: string, patch: UpdateSubscriber): Promise<SubscriberView> {
    const webHash =
      patch.webPassword === undefined
        ? undefined
        : patch.webPassword === null
          ? null
          : await hashPassword(patch.webPassword);
    const row = await this.write(async (tx) => {
      const cur = await this.subscriberRow(tx, id, true);
      const sets: string[] = [];
      const params: unknown[] = [];
      const set = (col: string, v: unknown) => {
        params.push(v);
        sets.push(`${col} = $${params.length}`);
      };
      if (patch.password !== undefined) {
        set('ha1', ha1(cur.username, cur.domain, patch.password, 'MD5'));
        set('ha1_sha256', ha1(cur.username, cur.domain, patch.password, 'SHA-256'));
        set(
          'sip_password_enc',
          this.opts.secretKey ? encrypt(this.opts.secretKey, patch.password, id) : null,
        );
      }
      if (webHash !== undefined) set('web_password_hash', webHash);
      if (patch.displayName !== undefined) set('display_name', patch.displayName);
      if (patch.email !== undefined) set('email', patch.email);
      if (patch.ratePlan !== undefined) set('rate_plan', patch.ratePlan);
      if (patch.callerId) {
        const did = await tx.query(
          "SELECT 1 FROM portal.aliases WHERE subscriber_id = $1 AND kind = 'did' AND username = $2",
          [id, patch.callerId],
        );
        if (did.rowCount === 0)
          throw invalidArgument('callerId', `callerId: ${patch.callerId} is not a DID of this subscriber`);
      }
      if (patch.callerId !== undefined) set('caller_id', patch.callerId);
      if (patch.privileges !== undefined) set('privileges', JSON.stringify(patch.privileges));
      if (patch.enabled !== undefined) set('enabled', patch.enabled);
      if (sets.length === 0) return cur;
      params.push(id);
      await tx.query(
        `UPDATE portal.subscribers SET ${sets.join(', ')}, updated_at = now() WHERE id = $${params.length}`,
        params,
      );
      // What changed, never the secrets themselves.
      const changed = Object.keys(patch).filter((k) => patch[k as keyof UpdateSubscriber] !== undefined);
      await this.audit(tx, actor, 'update', 'subscriber', id, {
        aor: aorOf(cur.username, cur.domain),
        changed,
      });
      return this.publishSubscriber(tx, id);
    });
    return view(row);
  }

  /** Removes a subscriber (and its aliases); the `subscribers` record becomes a tombstone. Returns its AoR. */
  async deleteSubscriber(actor: string, id: string): Promise<string> {
    return this.write(async (tx) => {
      const cur = await this.subscriberRow(tx, id, true);
      const aor = aorOf(cur.username, cur.domain);
      await tx.query('DELETE FROM portal.subscribers WHERE id = $1', [id]);
      await this.enqueue(tx, TOPICS.subscribers, aor, null);
      await this.syncAccount(tx, aor, cur.rate_plan ?? '', true);
      await this.audit(tx, actor, 'delete', 'subscriber', id, { aor });
      return aor;
    });
  }

  // --- privileges ----------------------------------------------------------

  async setPrivilege(actor: string, id: string, privilege: string, granted: boolean): Promise<string[]> {
    const row = await this.write(async (tx) => {
      const cur = await this.subscriberRow(tx, id, true);
      const has = cur.privileges.includes(privilege);
      if (has === granted) return cur;
      const next = granted ? [...cur.privileges, privilege] : cur.privileges.filter((p) => p !== privilege);
      await tx.query('UPDATE portal.subscribers SET privileges = $1, updated_at = now() WHERE id = $2', [
        JSON.stringify(next),
        id,
      ]);
      await this.audit(tx, actor, granted ? 'grant' : 'revoke', 'privilege', id, {
        aor: aorOf(cur.username, cur.domain),
        privilege,
      });
      return this.publishSubscriber(tx, id);
    });
    return row.privileges;
  }

  // --- aliases and DIDs ----------------------------------------------------

  async createAlias(actor: string, input: CreateAlias): Promise<AliasView> {
    const id = randomUUID();
    const domain = input.domain ?? this.opts.defaultDomain;
    const aor = aorOf(input.username, domain);
    await this.write(async (tx) => {
      await this.domainId(tx, domain, 'domain');
      const owner = await tx.query('SELECT 1 FROM portal.subscribers WHERE id = $1 FOR UPDATE', [
        input.subscriberId,
      ]);
      if (owner.rowCount === 0)
        throw invalidArgument('subscriberId', `subscriberId: no subscriber ${input.subscriberId}`);
      await this.checkAorFree(tx, aor);
      await uniqueOr(
        tx.query(
          'INSERT INTO portal.aliases (id, subscriber_id, kind, username, domain, aor) VALUES ($1, $2, $3, $4, $5, $6)',
          [id, input.subscriberId, input.kind ?? 'alias', input.username, domain, aor],
        ),
        `${aor} is taken`,
      );
      await this.audit(tx, actor, 'create', 'alias', id, { aor, subscriberId: input.subscriberId });
      await this.publishSubscriber(tx, input.subscriberId);
    });
    return this.getAlias(id);
  }

  async getAlias(id: string): Promise<AliasView> {
    const r = await this.db.query<AliasRow>(`SELECT ${ALIAS_COLUMNS} FROM portal.aliases WHERE id = $1`, [
      id,
    ]);
    if (r.rowCount === 0) throw notFound(`no alias ${id}`);
    return aliasView(r.rows[0]);
  }

  async listAliases(q: {
    search?: string;
    subscriberId?: string;
    page?: number;
    pageSize?: number;
  }): Promise<Page<AliasView>> {
    const { page, pageSize, offset } = pageOf(q);
    const pattern = q.search ? likePattern(q.search) : null;
    const where = '($1::text IS NULL OR aor ILIKE $1) AND ($2::uuid IS NULL OR subscriber_id = $2)';
    const r = await this.db.query<AliasRow>(
      `SELECT ${ALIAS_COLUMNS} FROM portal.aliases WHERE ${where} ORDER BY aor LIMIT $3 OFFSET $4`,
      [pattern, q.subscriberId ?? null, pageSize, offset],
    );
    const n = await this.db.query<{ n: string }>(`SELECT count(*) AS n FROM portal.aliases WHERE ${where}`, [
      pattern,
      q.subscriberId ?? null,
    ]);
    return { items: r.rows.map(aliasView), page, pageSize, total: Number(n.rows[0].n) };
  }

  /** Moves an alias (e.g. a DID) to another subscriber; both records are republished. */
  async moveAlias(actor: string, id: string, subscriberId: string): Promise<AliasView> {
    await this.write(async (tx) => {
      const a = await tx.query<{ subscriber_id: string; aor: string }>(
        'SELECT subscriber_id, aor FROM portal.aliases WHERE id = $1 FOR UPDATE',
        [id],
      );
      if (a.rowCount === 0) throw notFound(`no alias ${id}`);
      const from = a.rows[0].subscriber_id;
      if (from === subscriberId) return;
      const owner = await tx.query('SELECT 1 FROM portal.subscribers WHERE id = $1', [subscriberId]);
      if (owner.rowCount === 0)
        throw invalidArgument('subscriberId', `subscriberId: no subscriber ${subscriberId}`);
      await tx.query('UPDATE portal.aliases SET subscriber_id = $1 WHERE id = $2', [subscriberId, id]);
      await this.audit(tx, actor, 'update', 'alias', id, { aor: a.rows[0].aor, from, to: subscriberId });
      await this.publishSubscriber(tx, from);
      await this.publishSubscriber(tx, subscriberId);
    });
    return this.getAlias(id);
  }

  async deleteAlias(actor: string, id: string): Promise<void> {
    await this.write(async (tx) => {
      const a = await tx.query<{ subscriber_id: string; aor: string }>(
        'DELETE FROM portal.aliases WHERE id = $1 RETURNING subscriber_id, aor',
        [id],
      );
      if (a.rowCount === 0) throw notFound(`no alias ${id}`);
      await this.audit(tx, actor, 'delete', 'alias', id, { aor: a.rows[0].aor });
      await this.publishSubscriber(tx, a.rows[0].subscriber_id);
    });
  }

  // --- call features (forwarding, block/allow lists, speed dials) -------------

  async createFeature(
    actor: string,
    subscriberId: string,
    fk: FeatureKind,
    data: Record<string, unknown>,
  ): Promise<FeatureView> {
    const id = randomUUID();
    await this.write(async (tx) => {
      const s = await this.subscriberRow(tx, subscriberId, true);
      await uniqueOr(
        tx.query(
          'INSERT INTO portal.call_features (id, subscriber_id, kind, unique_key, data) VALUES ($1, $2, $3, $4, $5)',
          [id, subscriberId, fk.kind, fk.key(data), JSON.stringify(data)],
        ),
        `${aorOf(s.username, s.domain)} has this ${fk.noun} (${fk.key(data)}) already`,
      );
      await this.audit(tx, actor, 'create', fk.kind, id, { aor: aorOf(s.username, s.domain), ...data });
      await this.publishSubscriber(tx, subscriberId);
    });
    return this.getFeature(subscriberId, fk, id);
  }

  async getFeature(subscriberId: string, fk: FeatureKind, id: string): Promise<FeatureView> {
    const r = await this.db.query<FeatureRow>(
      `SELECT ${FEATURE_COLUMNS} FROM portal.call_features WHERE id = $1 AND subscriber_id = $2 AND kind = $3`,
      [id, subscriberId, fk.kind],
    );
    if (r.rowCount === 0) throw notFound(`no ${fk.noun} ${id}`);
    return featureView(r.rows[0]);
  }

  async listFeatures(subscriberId: string, fk: FeatureKind): Promise<{ items: FeatureView[] }> {
    await this.subscriberRow(this.db, subscriberId);
    const r = await this.db.query<FeatureRow>(
      `SELECT ${FEATURE_COLUMNS} FROM portal.call_features WHERE subscriber_id = $1 AND kind = $2 ORDER BY unique_key`,
      [subscriberId, fk.kind],
    );
    return { items: r.rows.map(featureView) };
  }

  async updateFeature(
    actor: string,
    subscriberId: string,
    fk: FeatureKind,
    id: string,
    patch: Record<string, unknown>,
  ): Promise<FeatureView> {
    await this.write(async (tx) => {
      const s = await this.subscriberRow(tx, subscriberId, true);
      const cur = await tx.query<{ data: Record<string, unknown> }>(
        'SELECT data FROM portal.call_features WHERE id = $1 AND subscriber_id = $2 AND kind = $3 FOR UPDATE',
        [id, subscriberId, fk.kind],
      );
      if (cur.rowCount === 0) throw notFound(`no ${fk.noun} ${id}`);
      const data = parse(fk.schema, dropNulls({ ...cur.rows[0].data, ...patch })) as Record<string, unknown>;
      await uniqueOr(
        tx.query(
          'UPDATE portal.call_features SET data = $1, unique_key = $2, updated_at = now() WHERE id = $3',
          [JSON.stringify(data), fk.key(data), id],
        ),
        `${aorOf(s.username, s.domain)} has this ${fk.noun} (${fk.key(data)}) already`,
      );
      await this.audit(tx, actor, 'update', fk.kind, id, { aor: aorOf(s.username, s.domain), ...patch });
      await this.publishSubscriber(tx, subscriberId);
    });
    return this.getFeature(subscriberId, fk, id);
  }

  async deleteFeature(actor: string, subscriberId: string, fk: FeatureKind, id: string): Promise<void> {
    await this.write(async (tx) => {
      const s = await this.subscriberRow(tx, subscriberId, true);
      const r = await tx.query(
        'DELETE FROM portal.call_features WHERE id = $1 AND subscriber_id = $2 AND kind = $3',
        [id, subscriberId, fk.kind],
      );
      if (r.rowCount === 0) throw notFound(`no ${fk.noun} ${id}`);
      await this.audit(tx, actor, 'delete', fk.kind, id, { aor: aorOf(s.username, s.domain) });
      await this.publishSubscriber(tx, subscriberId);
    });
  }

  /**
   * A forwarding rule set or cleared by a feature code the subscriber dialled
   * (the proxy's `feature-requests` topic): the same change as through the API.
   */
  async applyFeatureCode(aor: string, condition: string, target: string | null): Promise<boolean> {
    const m = /^sips?:([^@]+)@(.+)$/i.exec(aor);
    const id = m && (await this.subscriberIdByAor(decodeURIComponent(m[1]), m[2].toLowerCase()));
    if (!id) return false;
    const fk = FEATURE_KINDS.find((k) => k.kind === 'forwarding')!;
    const current = (await this.listFeatures(id, fk)).items.find((f) => f.condition === condition);
    const actor = `phone:${aor}`;
    if (target === null) {
      if (current) await this.deleteFeature(actor, id, fk, current.id);
    } else if (current) {
      await this.updateFeature(actor, id, fk, current.id, { target, enabled: true });
    } else {
      const data = parse(fk.schema, { condition, target }) as Record<string, unknown>;
      await this.createFeature(actor, id, fk, data);
    }
    return true;
  }

  // --- routing entities (gateways, routes, trusted addresses, RADIUS clients) --

  private async checkRefs(tx: Queryable, rk: RoutingKind, data: Record<string, unknown>): Promise<void> {
    if (rk.kind !== 'route') return;
    const ids = data.gatewayIds as string[];
    const r = await tx.query<{ id: string }>(
      "SELECT id FROM portal.routing_entities WHERE kind = 'gateway' AND id = ANY($1::uuid[]) FOR SHARE",
      [ids],
    );
    const found = new Set(r.rows.map((x) => x.id));
    const i = ids.findIndex((x) => !found.has(x));
    if (i >= 0) throw invalidArgument(`gatewayIds.${i}`, `gatewayIds.${i}: no gateway ${ids[i]}`);
  }

  async createEntity(actor: string, rk: RoutingKind, data: Record<string, unknown>): Promise<EntityView> {
    const id = randomUUID();
    await this.write(async (tx) => {
      await this.checkRefs(tx, rk, data);
      await uniqueOr(
        tx.query('INSERT INTO portal.routing_entities (id, kind, unique_key, data) VALUES ($1, $2, $3, $4)', [
          id,
          rk.kind,
          rk.key(data),
          JSON.stringify(data),
        ]),
        `${rk.noun} ${rk.key(data)} exists`,
      );
      await this.enqueue(tx, TOPICS.routing, `${rk.kind}:${id}`, { kind: rk.kind, id, ...data });
      await this.audit(tx, actor, 'create', rk.kind, id, hide(rk, data));
    });
    return this.getEntity(rk, id);
  }

  async getEntity(rk: RoutingKind, id: string): Promise<EntityView> {
    const r = await this.db.query<EntityRow>(
      `SELECT ${ENTITY_COLUMNS} FROM portal.routing_entities WHERE id = $1 AND kind = $2`,
      [id, rk.kind],
    );
    if (r.rowCount === 0) throw notFound(`no ${rk.noun} ${id}`);
    return entityView(rk, r.rows[0]);
  }

  async listEntities(
    rk: RoutingKind,
    q: { search?: string; page?: number; pageSize?: number },
  ): Promise<Page<EntityView>> {
    const { page, pageSize, offset } = pageOf(q);
    const pattern = q.search ? likePattern(q.search) : null;
    const where = 'kind = $1 AND ($2::text IS NULL OR unique_key ILIKE $2)';
    const r = await this.db.query<EntityRow>(
      `SELECT ${ENTITY_COLUMNS} FROM portal.routing_entities WHERE ${where} ORDER BY unique_key LIMIT $3 OFFSET $4`,
      [rk.kind, pattern, pageSize, offset],
    );
    const n = await this.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM portal.routing_entities WHERE ${where}`,
      [rk.kind, pattern],
    );
    return { items: r.rows.map((x) => entityView(rk, x)), page, pageSize, total: Number(n.rows[0].n) };
  }

  async updateEntity(
    actor: string,
    rk: RoutingKind,
    id: string,
    patch: Record<string, unknown>,
  ): Promise<EntityView> {
    await this.write(async (tx) => {
      const cur = await tx.query<{ data: Record<string, unknown> }>(
        'SELECT data FROM portal.routing_entities WHERE id = $1 AND kind = $2 FOR UPDATE',
        [id, rk.kind],
      );
      if (cur.rowCount === 0) throw notFound(`no ${rk.noun} ${id}`);
      const data = parse(rk.schema, dropNulls({ ...cur.rows[0].data, ...patch })) as Record<string, unknown>;
      await this.checkRefs(tx, rk, data);
      await uniqueOr(
        tx.query(
          'UPDATE portal.routing_entities SET data = $1, unique_key = $2, updated_at = now() WHERE id = $3',
          [JSON.stringify(data), rk.key(data), id],
        ),
        `${rk.noun} ${rk.key(data)} exists`,
      );
      await this.enqueue(tx, TOPICS.routing, `${rk.kind}:${id}`, { kind: rk.kind, id, ...data });
      await this.audit(tx, actor, 'update', rk.kind, id, hide(rk, patch));
    });
    return this.getEntity(rk, id);
  }

  async deleteEntity(actor: string, rk: RoutingKind, id: string): Promise<void> {
    await this.write(async (tx) => {
      if (rk.kind === 'gateway') {
        const used = await tx.query<{ name: string }>(
          "SELECT data->>'name' AS name FROM portal.routing_entities WHERE kind = 'route' AND data->'gatewayIds' ? $1 LIMIT 1",
          [id],
        );
        if (used.rowCount) {
          throw new DomainError('failed_precondition', `route ${used.rows[0].name} uses this gateway`, 'id');
        }
      }
      const r = await tx.query<{ data: Record<string, unknown> }>(
        'DELETE FROM portal.routing_entities WHERE id = $1 AND kind = $2 RETURNING data',
        [id, rk.kind],
      );
      if (r.rowCount === 0) throw notFound(`no ${rk.noun} ${id}`);
      await this.enqueue(tx, TOPICS.routing, `${rk.kind}:${id}`, null);
      await this.audit(tx, actor, 'delete', rk.kind, id, hide(rk, r.rows[0].data));
    });
  }

  // --- credit and vouchers (through the rating service) ----------------------

  private requireRating(): { prepaid: boolean; currency: string } {
    if (!this.opts.rating) throw new DomainError('unavailable', 'no rating service is configured');
    return this.opts.rating;
  }

  /** The AoR of a subscriber (404 when unknown). */
  async accountOf(id: string): Promise<string> {
    const r = await this.subscriberRow(this.db, id);
    return aorOf(r.username, r.domain);
  }

  /** Queues a ledger entry (applied once by the rating service, whatever the retries). */
  async addCredit(
    actor: string,
    id: string,
    e: {
      amountMicros: number;
      reason: string;
      kind: 'topup' | 'adjustment' | 'refund';
      idempotencyKey?: string;
    },
  ): Promise<{ account: string; idempotencyKey: string }> {
    this.requireRating();
    const idempotencyKey = e.idempotencyKey ?? `portal:${randomUUID()}`;
    const account = await this.write(async (tx) => {
      const s = await this.subscriberRow(tx, id, true);
      const aor = aorOf(s.username, s.domain);
      const op: RatingOp = {
        op: 'adjust',
        account: aor,
        kind: e.kind,
        amountMicros: e.amountMicros,
        actor,
        reason: e.reason,
        idempotencyKey,
      };
      await this.enqueue(tx, RATING_CHANNEL, aor, op);
      await this.audit(tx, actor, 'credit', 'subscriber', id, {
        aor,
        kind: e.kind,
        amountMicros: e.amountMicros,
        reason: e.reason,
      });
      return aor;
    });
    return { account, idempotencyKey };
  }

  async createVouchers(
    actor: string,
    q: { count: number; amountMicros: number; batch?: string },
  ): Promise<{ batch: string; items: VoucherView[] }> {
    const { currency } = this.requireRating();
    const batch =
      q.batch ?? `b${new Date().toISOString().slice(0, 10).replace(/-/g, '')}-${randomUUID().slice(0, 8)}`;
    await this.write(async (tx) => {
      for (let i = 0; i < q.count; i++) {
        await tx.query(
          'INSERT INTO portal.vouchers (id, code, batch, amount_micros, currency) VALUES ($1, $2, $3, $4, $5)',
          [randomUUID(), voucherCode(), batch, q.amountMicros, currency],
        );
      }
      await this.audit(tx, actor, 'create', 'voucher-batch', null, {
        batch,
        count: q.count,
        amountMicros: q.amountMicros,
      });
    });
    return { batch, items: (await this.listVouchers({ batch, pageSize: q.count })).items };
  }

  async listVouchers(q: { batch?: string; page?: number; pageSize?: number }): Promise<Page<VoucherView>> {
    const { page, pageSize, offset } = pageOf(q);
    const r = await this.db.query<VoucherRow>(
      `SELECT id, code, batch, amount_micros, currency, created_at, redeemed_aor, redeemed_at FROM portal.vouchers
       WHERE ($1::text IS NULL OR batch = $1) ORDER BY created_at, code LIMIT $2 OFFSET $3`,
      [q.batch ?? null, pageSize, offset],
    );
    const n = await this.db.query<{ n: string }>(
      'SELECT count(*) AS n FROM portal.vouchers WHERE ($1::text IS NULL OR batch = $1)',
      [q.batch ?? null],
    );
    return { items: r.rows.map(voucherView), page, pageSize, total: Number(n.rows[0].n) };
  }

  /** Marks a voucher used by the subscriber and queues its credit; 404 for an unknown or used code. */
  async redeemVoucher(
    actor: string,
    id: string,
    code: string,
  ): Promise<{ account: string; amountMicros: number }> {
    this.requireRating();
    return this.write(async (tx) => {
      const s = await this.subscriberRow(tx, id, true);
      const aor = aorOf(s.username, s.domain);
      const v = await tx.query<{ id: string; amount_micros: string }>(
        `UPDATE portal.vouchers SET redeemed_by = $2, redeemed_aor = $3, redeemed_at = now()
         WHERE code = $1 AND redeemed_at IS NULL RETURNING id, amount_micros`,
        [code.replace(/[\s-]/g, ''), id, aor],
      );
      if (v.rowCount === 0) throw notFound('no such unused voucher');
      const amountMicros = Number(v.rows[0].amount_micros);
      const op: RatingOp = {
        op: 'adjust',
        account: aor,
        kind: 'voucher',
        amountMicros,
        actor,
        reason: `voucher ${v.rows[0].id}`,
        idempotencyKey: `voucher:${v.rows[0].id}`,
      };
      await this.enqueue(tx, RATING_CHANNEL, aor, op);
      await this.audit(tx, actor, 'redeem', 'voucher', v.rows[0].id, { aor, amountMicros });
      return { account: aor, amountMicros };
    });
  }

  /**
   * Queues every subscriber's account again (start-up), so rating knows them all, `batch`
   * subscribers a statement.
   */
  async resyncAccounts(batch = 500): Promise<number> {
    if (!this.opts.rating) return 0;
    const n = await this.write((tx) =>
      this.queueEverySubscriber<AccountSyncRow>(
        tx,
        RATING_CHANNEL,
        's.id, s.username, s.domain, s.rate_plan, s.enabled',
        batch,
        (x) => this.accountOp(aorOf(x.username, x.domain), x.rate_plan ?? '', !x.enabled),
      ),
    );
    await this.analyzeOutbox();
    return n;
  }

  // --- devices (phone auto-provisioning) -------------------------------------

  /** Assigns a phone; its provisioning password is answered once and only its hash kept. */
  async createDevice(
    actor: string,
    subscriberId: string,
    d: { vendor: Vendor; model: string; mac: string },
  ): Promise<DeviceView & { provisioningPassword: string }> {
    const id = randomUUID();
    const secret = randomBytes(18).toString('base64url');
    await this.write(async (tx) => {
      const s = await this.subscriberRow(tx, subscriberId, true);
      await uniqueOr(
        tx.query(
          'INSERT INTO portal.devices (id, subscriber_id, vendor, model, mac, secret_hash) VALUES ($1, $2, $3, $4, $5, $6)',
          [id, subscriberId, d.vendor, d.model, d.mac, hashToken(secret)],
        ),
        `a device with MAC ${d.mac} is assigned already`,
      );
      await this.audit(tx, actor, 'create', 'device', id, { aor: aorOf(s.username, s.domain), ...d });
    });
    const v = (await this.listDevices(subscriberId)).items.find((x) => x.id === id)!;
    return { ...v, provisioningPassword: secret };
  }

  async listDevices(subscriberId: string): Promise<{ items: DeviceView[] }> {
    await this.subscriberRow(this.db, subscriberId);
    const r = await this.db.query<DeviceRow>(
      `SELECT id, subscriber_id, vendor, model, mac, last_fetch_at, created_at FROM portal.devices
       WHERE subscriber_id = $1 ORDER BY mac`,
      [subscriberId],
    );
    return { items: r.rows.map(deviceView) };
  }

  async deleteDevice(actor: string, subscriberId: string, id: string): Promise<void> {
    await this.write(async (tx) => {
      const r = await tx.query<{ mac: string }>(
        'DELETE FROM portal.devices WHERE id = $1 AND subscriber_id = $2 RETURNING mac',
        [id, subscriberId],
      );
      if (r.rowCount === 0) throw notFound(`no device ${id}`);
      await this.audit(tx, actor, 'delete', 'device', id, { mac: r.rows[0].mac });
    });
  }

  /** What a phone's configuration is made of, when its MAC is known; records the fetch. */
  async deviceForFetch(mac: string): Promise<
    | {
        vendor: Vendor;
        model: string;
        secretHash: string;
        subscriber: {
          id: string;
          username: string;
          domain: string;
          displayName: string | null;
          ha1: string;
          sealedPassword: string | null;
        };
      }
    | undefined
  > {
    const r = await this.db.query<{
      vendor: Vendor;
      model: string;
      secret_hash: string;
      sid: string;
      username: string;
      domain: string;
      display_name: string | null;
      ha1: string;
      sip_password_enc: string | null;
    }>(
      `SELECT d.vendor, d.model, d.secret_hash, s.id AS sid, s.username, s.domain, s.display_name, s.ha1, s.sip_password_enc
       FROM portal.devices d JOIN portal.subscribers s ON s.id = d.subscriber_id WHERE d.mac = $1`,
      [mac],
    );
    const x = r.rows[0];
    if (!x) return undefined;
    return {
      vendor: x.vendor,
      model: x.model,
      secretHash: x.secret_hash,
      subscriber: {
        id: x.sid,
        username: x.username,
        domain: x.domain,
        displayName: x.display_name,
        ha1: x.ha1,
        sealedPassword: x.sip_password_enc,
      },
    };
  }

  async deviceFetched(mac: string): Promise<void> {
    await this.db.query('UPDATE portal.devices SET last_fetch_at = now() WHERE mac = $1', [mac]);
  }

  // --- API tokens ------------------------------------------------------------

  /** A new admin token; the token itself is returned once and only its hash is kept. */
  async createToken(actor: string, name: string): Promise<TokenView & { token: string }> {
    const id = randomUUID();
    const token = newToken();
    await this.write(async (tx) => {
      await tx.query(
        'INSERT INTO portal.api_tokens (id, name, role, token_hash, created_by) VALUES ($1, $2, $3, $4, $5)',
        [id, name, 'admin', hashToken(token), actor],
      );
      await this.audit(tx, actor, 'create', 'token', id, { name });
    });
    return { ...(await this.getToken(id)), token };
  }

  async getToken(id: string): Promise<TokenView> {
    const r = await this.db.query<TokenRow>(
      `SELECT id, name, role, created_by, created_at FROM portal.api_tokens WHERE id = $1`,
      [id],
    );
    if (r.rowCount === 0) throw notFound(`no token ${id}`);
    return tokenView(r.rows[0]);
  }

  async listTokens(q: { page?: number; pageSize?: number }): Promise<Page<TokenView>> {
    const { page, pageSize, offset } = pageOf(q);
    const r = await this.db.query<TokenRow>(
      'SELECT id, name, role, created_by, created_at FROM portal.api_tokens ORDER BY created_at, id LIMIT $1 OFFSET $2',
      [pageSize, offset],
    );
    const n = await this.db.query<{ n: string }>('SELECT count(*) AS n FROM portal.api_tokens');
    return { items: r.rows.map(tokenView), page, pageSize, total: Number(n.rows[0].n) };
  }

  async deleteToken(actor: string, id: string): Promise<void> {
    await this.write(async (tx) => {
      const r = await tx.query<{ name: string }>(
        'DELETE FROM portal.api_tokens WHERE id = $1 RETURNING name',
        [id],
      );
      if (r.rowCount === 0) throw notFound(`no token ${id}`);
      await this.audit(tx, actor, 'delete', 'token', id, { name: r.rows[0].name });
    });
  }

  /** The token's id and role when its hash is known. */
  async findToken(token: string): Promise<{ id: string; role: 'admin' } | undefined> {
    const r = await this.db.query<{ id: string; role: 'admin' }>(
      'SELECT id, role FROM portal.api_tokens WHERE token_hash = $1',
      [hashToken(token)],
    );
    return r.rows[0];
  }

  // --- audit log -------------------------------------------------------------

  async listAudit(q: { page?: number; pageSize?: number }): Promise<Page<AuditEntry>> {
    const { page, pageSize, offset } = pageOf(q);
    const r = await this.db.query<{
      seq: string;
      at: Date;
      actor: string;
      action: string;
      entity: string;
      entity_id: string | null;
      detail: unknown;
    }>(
      'SELECT seq, at, actor, action, entity, entity_id, detail FROM portal.audit_log ORDER BY seq DESC LIMIT $1 OFFSET $2',
      [pageSize, offset],
    );
    const n = await this.db.query<{ n: string }>('SELECT count(*) AS n FROM portal.audit_log');
    return {
      items: r.rows.map((x) => ({
        seq: x.seq,
        at: x.at.toISOString(),
        actor: x.actor,
        action: x.action,
        entity: x.entity,
        entityId: x.entity_id,
        detail: x.detail,
      })),
      page,
      pageSize,
      total: Number(n.rows[0].n),
    };
  }

  // --- start-up --------------------------------------------------------------

  /**
   * Queues every subscriber and domain record again (one transaction, behind
   * whatever the outbox already holds), so the topics agree with this database
   * even if they were lost or restored from an older state.
   */
  async republishAll(batch = 500): Promise<{ subscribers: number; domains: number; routing: number }> {
    const out = await this.write(async (tx) => {
      const d = await tx.query<{ id: string; domain: string; dial_plan: DialPlanView | null }>(
        'SELECT id, domain, dial_plan FROM portal.domains ORDER BY domain',
      );
      for (const x of d.rows)
        await this.enqueue(tx, TOPICS.routing, `domain:${x.id}`, domainRecord(x.id, x.domain, x.dial_plan));
      const e = await tx.query<{ id: string; kind: string; data: Record<string, unknown> }>(
        'SELECT id, kind, data FROM portal.routing_entities ORDER BY kind, unique_key',
      );
      for (const x of e.rows) {
        await this.enqueue(tx, TOPICS.routing, `${x.kind}:${x.id}`, { kind: x.kind, id: x.id, ...x.data });
      }
      const n = await this.queueEverySubscriber<RecordRow>(
        tx,
        TOPICS.subscribers,
        RECORD_COLUMNS,
        batch,
        subscriberRecord,
      );
      return { subscribers: n, domains: d.rowCount, routing: e.rowCount };
    });
    await this.analyzeOutbox();
    return out;
  }

  /**
   * After a row for every subscriber was queued: statistics that know how big the outbox is
   * now, so that the relays read it in order from their indexes (not by sorting all of it).
   */
  private async analyzeOutbox(): Promise<void> {
    await this.db.query('ANALYZE portal.outbox');
  }
}

interface AliasRow {
  id: string;
  subscriber_id: string;
  kind: 'alias' | 'did';
  username: string;
  domain: string;
  aor: string;
  created_at: Date;
}
const ALIAS_COLUMNS = 'id, subscriber_id, kind, username, domain, aor, created_at';
const aliasView = (r: AliasRow): AliasView => ({
  id: r.id,
  subscriberId: r.subscriber_id,
  kind: r.kind,
  username: r.username,
  domain: r.domain,
  aor: r.aor,
  createdAt: r.created_at.toISOString(),
});

interface TokenRow {
  id: string;
  name: string;
  role: 'admin';
  created_by: string;
  created_at: Date;
}
const tokenView = (r: TokenRow): TokenView => ({
  id: r.id,
  name: r.name,
  role: r.role,
  createdBy: r.created_by,
  createdAt: r.created_at.toISOString(),
});

export type FeatureView = { id: string; subscriberId: string; createdAt: string; updatedAt: string } & Record<
  string,
  unknown
>;
interface FeatureRow {
  id: string;
  subscriber_id: string;
  data: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
}
const FEATURE_COLUMNS = 'id, subscriber_id, data, created_at, updated_at';
const featureView = (r: FeatureRow): FeatureView => ({
  id: r.id,
  subscriberId: r.subscriber_id,
  ...r.data,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

export type EntityView = { id: string; createdAt: string; updatedAt: string } & Record<string, unknown>;
interface EntityRow {
  id: string;
  data: Record<string, unknown>;
  created_at: Date;
  updated_at: Date;
}
const ENTITY_COLUMNS = 'id, data, created_at, updated_at';
/** Secret fields are never shown back: `<field>Set: true` says one is kept. */
function hide(rk: RoutingKind, data: Record<string, unknown>): Record<string, unknown> {
  const out = { ...data };
  for (const f of rk.secret ?? []) {
    if (f in out) {
      delete out[f];
      out[`${f}Set`] = true;
    }
  }
  return out;
}
const entityView = (rk: RoutingKind, r: EntityRow): EntityView => ({
  id: r.id,
  ...hide(rk, r.data),
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});
/** A PATCH sets a field to null to remove it. */
const dropNulls = (o: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null));

interface VoucherRow {
  id: string;
  code: string;
  batch: string;
  amount_micros: string;
  currency: string;
  created_at: Date;
  redeemed_aor: string | null;
  redeemed_at: Date | null;
}
const voucherView = (r: VoucherRow): VoucherView => ({
  id: r.id,
  code: r.code,
  batch: r.batch,
  amount: formatMicros(Number(r.amount_micros)),
  currency: r.currency,
  createdAt: r.created_at.toISOString(),
  redeemedBy: r.redeemed_aor,
  redeemedAt: r.redeemed_at?.toISOString() ?? null,
});

/** 16 random digits (about 53 bits): printed on a card, typed in with or without dashes. */
function voucherCode(): string {
  const b = randomBytes(8);
  return (b.readBigUInt64BE() % 10_000_000_000_000_000n).toString().padStart(16, '0');
}

export interface DeviceView {
  id: string;
  subscriberId: string;
  vendor: Vendor;
  model: string;
  mac: string;
  lastFetchAt: string | null;
  createdAt: string;
}
interface DeviceRow {
  id: string;
  subscriber_id: string;
  vendor: Vendor;
  model: string;
  mac: string;
  last_fetch_at: Date | null;
  created_at: Date;
}
const deviceView = (r: DeviceRow): DeviceView => ({
  id: r.id,
  subscriberId: r.subscriber_id,
  vendor: r.vendor,
  model: r.model,
  mac: r.mac,
  lastFetchAt: r.last_fetch_at?.toISOString() ?? null,
  createdAt: r.created_at.toISOString(),
});
