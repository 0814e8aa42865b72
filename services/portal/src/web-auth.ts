/**
 * Web sign-in: administrators (web users) and subscribers (AoR and web password)
 * log in to a session kept in an HttpOnly, Secure, SameSite=Strict cookie; a
 * request made with the cookie that changes anything must carry the session's
 * CSRF token in X-CSRF-Token. Failed logins lock the login name for a while.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { alreadyExists, DomainError, notFound, pgErrorCode, type Db } from '@switchboard/platform';
import type { Page } from './store';
import { hashPassword, hashToken, verifyPassword } from './secrets';

export const SESSION_COOKIE = 'sb_session';

export interface WebAuthOptions {
  sessionTtlMs: number;
  /** Consecutive failures that lock a login name. */
  maxFailures: number;
  lockoutMs: number;
  defaultDomain: string;
  now?: () => number;
}

export interface Session {
  role: 'admin' | 'subscriber';
  /** The web user's or the subscriber's id. */
  subject: string;
  actor: string;
  name: string;
  csrf: string;
}

export interface WebUserView {
  id: string;
  username: string;
  role: 'admin';
  createdAt: string;
}

// A fixed scrypt hash to verify against when the login name is unknown, so both cases take as long.
let dummyHash: Promise<string> | undefined;

export class WebAuth {
  constructor(
    private readonly db: Db,
    private readonly opts: WebAuthOptions,
  ) {}

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  async createUser(actor: string, username: string, password: string): Promise<WebUserView> {
    const id = randomUUID();
    const hash = await hashPassword(password);
    await this.db.transaction(async (tx) => {
      try {
        await tx.query(
          'INSERT INTO portal.web_users (id, username, password_hash, role) VALUES ($1, $2, $3, $4)',
          [id, username, hash, 'admin'],
        );
      } catch (e) {
        if (pgErrorCode(e) === '23505') throw alreadyExists(`web user ${username} exists`);
        throw e;
      }
      await tx.query(
        'INSERT INTO portal.audit_log (actor, action, entity, entity_id, detail) VALUES ($1, $2, $3, $4, $5)',
        [actor, 'create', 'web-user', id, JSON.stringify({ username })],
      );
    });
    return (await this.listUsers({ id })).items[0];
  }

  async listUsers(q: { id?: string; page?: number; pageSize?: number }): Promise<Page<WebUserView>> {
    const page = q.page ?? 1;
    const pageSize = q.pageSize ?? 50;
    const r = await this.db.query<{ id: string; username: string; role: 'admin'; created_at: Date }>(
      `SELECT id, username, role, created_at FROM portal.web_users WHERE ($1::uuid IS NULL OR id = $1)
       ORDER BY username LIMIT $2 OFFSET $3`,
      [q.id ?? null, pageSize, (page - 1) * pageSize],
    );
    const n = await this.db.query<{ n: string }>('SELECT count(*) AS n FROM portal.web_users');
    return {
      items: r.rows.map((u) => ({
        id: u.id,
        username: u.username,
        role: u.role,
        createdAt: u.created_at.toISOString(),
      })),
      page,
      pageSize,
      total: Number(n.rows[0].n),
    };
  }

  async deleteUser(actor: string, id: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      const r = await tx.query<{ username: string }>(
        'DELETE FROM portal.web_users WHERE id = $1 RETURNING username',
        [id],
      );
      if (r.rowCount === 0) throw notFound(`no web user ${id}`);
      await tx.query('DELETE FROM portal.sessions WHERE subject = $1', [id]);
      await tx.query(
        'INSERT INTO portal.audit_log (actor, action, entity, entity_id, detail) VALUES ($1, $2, $3, $4, $5)',
        [actor, 'delete', 'web-user', id, JSON.stringify({ username: r.rows[0].username })],
      );
    });
  }

  /**
   * Checks a login: a web user's name, or a subscriber as `user@domain` / `sip:user@domain`
   * / a bare user of the default domain (a subscriber with a web password). Returns the new
   * session's cookie value and the session; throws unauthenticated, or resource_exhausted while locked.
   */
  async login(
    login: string,
    password: string,
  ): Promise<{ cookie: string; session: Session; maxAgeMs: number }> {
    const key = login.trim().toLowerCase();
    const lock = await this.db.query<{ locked_until: Date | null }>(
      'SELECT locked_until FROM portal.login_failures WHERE login = $1',
      [key],
    );
    const until = lock.rows[0]?.locked_until;
    if (until && until.getTime() > this.now()) {
      throw new DomainError('resource_exhausted', 'too many failed logins: try again later', 'login');
    }
    const found = await this.find(login.trim());
    dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
    const ok = await verifyPassword(password, found?.hash ?? (await dummyHash));
    if (!found || !ok) {
      await this.db.query(
        `INSERT INTO portal.login_failures (login, failures, locked_until) VALUES ($1, 1, NULL)
         ON CONFLICT (login) DO UPDATE SET failures = portal.login_failures.failures + 1,
           locked_until = CASE WHEN portal.login_failures.failures + 1 >= $2
             THEN to_timestamp($3::double precision / 1000) ELSE NULL END`,
        [key, this.opts.maxFailures, this.now() + this.opts.lockoutMs],
      );
      throw new DomainError('unauthenticated', 'wrong login or password', 'login');
    }
    await this.db.query('DELETE FROM portal.login_failures WHERE login = $1', [key]);
    const cookie = randomBytes(32).toString('base64url');
    const session: Session = { ...found.session, csrf: randomBytes(24).toString('base64url') };
    await this.db.query(
      `INSERT INTO portal.sessions (id_hash, role, subject, actor, name, csrf, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::double precision / 1000))`,
      [
        hashToken(cookie),
        session.role,
        session.subject,
        session.actor,
        session.name,
        session.csrf,
        this.now() + this.opts.sessionTtlMs,
      ],
    );
    return { cookie, session, maxAgeMs: this.opts.sessionTtlMs };
  }

  private async find(login: string): Promise<{ hash: string; session: Omit<Session, 'csrf'> } | undefined> {
    const m = /^(?:sips?:)?([^@\s]+)(?:@([^@\s]+))?$/i.exec(login);
    if (!m) return undefined;
    if (!m[2]) {
      const u = await this.db.query<{ id: string; username: string; password_hash: string }>(
        'SELECT id, username, password_hash FROM portal.web_users WHERE username = $1',
        [m[1]],
      );
      if (u.rowCount) {
        const x = u.rows[0];
        return {
          hash: x.password_hash,
          session: { role: 'admin', subject: x.id, actor: `web:${x.username}`, name: x.username },
        };
      }
    }
    const domain = (m[2] ?? this.opts.defaultDomain).toLowerCase();
    const s = await this.db.query<{ id: string; web_password_hash: string | null }>(
      'SELECT id, web_password_hash FROM portal.subscribers WHERE username = $1 AND domain = $2 AND enabled',
      [m[1], domain],
    );
    const x = s.rows[0];
    if (!x?.web_password_hash) return undefined;
    const aor = `sip:${m[1]}@${domain}`;
    return {
      hash: x.web_password_hash,
      session: { role: 'subscriber', subject: x.id, actor: `subscriber:${aor}`, name: aor },
    };
  }

  /** The live session of a cookie value, if any. */
  async session(cookie: string): Promise<Session | undefined> {
    const r = await this.db.query<Session>(
      `SELECT role, subject, actor, name, csrf FROM portal.sessions
       WHERE id_hash = $1 AND expires_at > to_timestamp($2::double precision / 1000)`,
      [hashToken(cookie), this.now()],
    );
    return r.rows[0];
  }

  async logout(cookie: string): Promise<void> {
    await this.db.query('DELETE FROM portal.sessions WHERE id_hash = $1', [hashToken(cookie)]);
  }

  /** Ends every session of a subject (a removed subscriber or web user). */
  async endSessions(subject: string): Promise<void> {
    await this.db.query('DELETE FROM portal.sessions WHERE subject = $1', [subject]);
  }
}

/** The value of one cookie in a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return undefined;
}

export function sessionCookie(value: string, maxAgeMs: number): string {
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=${Math.floor(maxAgeMs / 1000)}`;
}
export const clearedSessionCookie = () =>
  `${SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0`;
