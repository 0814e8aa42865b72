/** Voicemail metadata in the `media` schema (audio files live under the voicemail directory). */
import type { Db } from '@switchboard/platform';

export type Folder = 'new' | 'saved';

export interface VoicemailMessage {
  id: string;
  mailbox: string;
  caller: string;
  callerName: string | undefined;
  callId: string;
  receivedAt: Date;
  durationMs: number;
  file: string;
  folder: Folder;
}

export type NewMessage = Omit<VoicemailMessage, 'id' | 'folder'>;

export interface VoicemailStore {
  add(m: NewMessage): Promise<VoicemailMessage>;
  /** Messages of a mailbox, new first then saved, oldest first within each. */
  list(mailbox: string): Promise<VoicemailMessage[]>;
  counts(mailbox: string): Promise<{ new: number; saved: number }>;
  get(id: string): Promise<VoicemailMessage | undefined>;
  setFolder(id: string, folder: Folder): Promise<void>;
  /** Removes the row; returns it (for its file) if it existed. */
  remove(id: string): Promise<VoicemailMessage | undefined>;
}

interface Row {
  id: string;
  mailbox: string;
  caller: string;
  caller_name: string | null;
  call_id: string;
  received_at: Date;
  duration_ms: number;
  file: string;
  folder: Folder;
}

const fromRow = (r: Row): VoicemailMessage => ({
  id: String(r.id),
  mailbox: r.mailbox,
  caller: r.caller,
  callerName: r.caller_name ?? undefined,
  callId: r.call_id,
  receivedAt: new Date(r.received_at),
  durationMs: Number(r.duration_ms),
  file: r.file,
  folder: r.folder,
});

const T = 'media.voicemail_messages';

export function createVoicemailStore(db: Db): VoicemailStore {
  return {
    async add(m) {
      const r = await db.query<Row>(
        `INSERT INTO ${T} (mailbox, caller, caller_name, call_id, received_at, duration_ms, file)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
        [m.mailbox, m.caller, m.callerName ?? null, m.callId, m.receivedAt, m.durationMs, m.file],
      );
      return fromRow(r.rows[0]);
    },
    async list(mailbox) {
      const r = await db.query<Row>(
        `SELECT * FROM ${T} WHERE mailbox = $1 ORDER BY folder = 'saved', received_at, id`,
        [mailbox],
      );
      return r.rows.map(fromRow);
    },
    async counts(mailbox) {
      const r = await db.query<{ folder: Folder; n: string }>(
        `SELECT folder, count(*)::int8 AS n FROM ${T} WHERE mailbox = $1 GROUP BY folder`,
        [mailbox],
      );
      const out = { new: 0, saved: 0 };
      for (const row of r.rows) out[row.folder] = Number(row.n);
      return out;
    },
    async get(id) {
      if (!/^\d{1,18}$/.test(id)) return undefined;
      const r = await db.query<Row>(`SELECT * FROM ${T} WHERE id = $1`, [id]);
      return r.rows[0] ? fromRow(r.rows[0]) : undefined;
    },
    async setFolder(id, folder) {
      await db.query(`UPDATE ${T} SET folder = $2 WHERE id = $1`, [id, folder]);
    },
    async remove(id) {
      const r = await db.query<Row>(`DELETE FROM ${T} WHERE id = $1 RETURNING *`, [id]);
      return r.rows[0] ? fromRow(r.rows[0]) : undefined;
    },
  };
}
