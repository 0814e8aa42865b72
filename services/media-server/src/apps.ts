/**
 * The applications behind the media server's SIP UA: which one an INVITE is
 * for (announcement, voicemail deposit, mailbox access), and what each does.
 */
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { SipUri, parseNameAddr, NameAddr, type SipRequest } from '@switchboard/sip';
import { PROMPT_NAME, promptFromPcm, type PromptSet } from './prompts';
import type { VoicemailStore, VoicemailMessage } from './store';
import type { Conferences } from './conference';
import type { Call, Routed } from './ua';
import { readWav, writeWav } from './wav';

export type AppRoute =
  | { app: 'announce'; prompt: string }
  | { app: 'voicemail'; mailbox: string }
  | { app: 'mailbox'; mailbox: string }
  | { app: 'conference'; room: string };

export const ANNOUNCE_PREFIX = 'announce-';
export const VOICEMAIL_PREFIX = 'vm-';
export const CONFERENCE_PREFIX = 'conf-';
/** The DTMF key that mutes and unmutes a conference participant. */
export const MUTE_KEY = '6';

export interface RouterOptions {
  prompts: PromptSet;
  /** Domain of mailboxes named by user only (sip:vm-bob@...); default: the To URI's host. */
  domain?: string;
  /** Request-URI users that mean "my own mailbox" (the caller's), e.g. *98. */
  accessUsers: readonly string[];
}

const userOf = (uri: unknown): string | undefined =>
  uri instanceof SipUri ? (uri.user ?? undefined) : undefined;
const unescape = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};
/** "user@host" of a SIP URI, or undefined. */
export function mailboxOf(uri: unknown): string | undefined {
  if (!(uri instanceof SipUri) || !uri.user) return undefined;
  return `${unescape(uri.user)}@${uri.host.toLowerCase()}`;
}

/**
 * The diverting party of a forwarded call: the first Diversion (RFC 5806, most
 * recent first), or the History-Info entry (RFC 7044) just before the first
 * one carrying a `cause` (the retarget to us); the first entry when none has one.
 */
export function divertedMailbox(req: SipRequest): string | undefined {
  const div = req.getHeaderValues('Diversion')[0];
  if (div) {
    try {
      return mailboxOf(parseNameAddr(div, 'diversion', NameAddr).uri);
    } catch {
      // ignore a bad Diversion, try History-Info
    }
  }
  const hi = req.getHeaderValues('History-Info');
  if (hi.length === 0) return undefined;
  try {
    const entries = hi.map((h) => parseNameAddr(h, 'history-info', NameAddr));
    const causeAt = entries.findIndex((e) => e.sipUri?.params.has('cause'));
    const entry = causeAt > 0 ? entries[causeAt - 1] : entries[0];
    const uri = entry.sipUri;
    if (!uri) return undefined;
    // The URI in History-Info may carry headers and params (cause, Reason): the mailbox is user@host.
    return mailboxOf(uri);
  } catch {
    return undefined;
  }
}

export function createRouter(o: RouterOptions): (req: SipRequest) => Routed<AppRoute> {
  return (req) => {
    const raw = userOf(req.uri);
    const user = raw === undefined ? undefined : unescape(raw);
    const domain =
      o.domain ??
      (req.to.sipUri?.host ?? (req.uri instanceof SipUri ? req.uri.host : 'localhost')).toLowerCase();
    if (user?.startsWith(ANNOUNCE_PREFIX)) {
      const name = user.slice(ANNOUNCE_PREFIX.length);
      if (!PROMPT_NAME.test(name) || !o.prompts.has(name))
        return { status: 404, reason: 'No Such Announcement' };
      // ;early=<status>: play in early media, then fail the call with that status (e.g. 402 for no credit).
      const early = req.uri instanceof SipUri ? Number(req.uri.params.get('early') ?? NaN) : NaN;
      if (Number.isInteger(early) && early >= 400 && early <= 699)
        return { route: { app: 'announce', prompt: name }, early: { status: early } };
      return { route: { app: 'announce', prompt: name } };
    }
    if (user !== undefined && o.accessUsers.includes(user)) {
      const mailbox = mailboxOf(req.from.uri);
      if (!mailbox) return { status: 403, reason: 'Caller Has No Mailbox' };
      return { route: { app: 'mailbox', mailbox } };
    }
    if (user?.startsWith(VOICEMAIL_PREFIX)) {
      const name = user.slice(VOICEMAIL_PREFIX.length);
      if (!name) return { status: 404 };
      return {
        route: { app: 'voicemail', mailbox: name.includes('@') ? name.toLowerCase() : `${name}@${domain}` },
      };
    }
    if (user?.startsWith(CONFERENCE_PREFIX)) {
      const room = user.slice(CONFERENCE_PREFIX.length);
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(room)) return { status: 404, reason: 'No Such Room' };
      return { route: { app: 'conference', room } };
    }
    const diverted = divertedMailbox(req);
    if (diverted) return { route: { app: 'voicemail', mailbox: diverted } };
    return { status: 404 };
  };
}

export interface AppOptions {
  prompts: PromptSet;
  store: VoicemailStore;
  /** Directory of the audio files: <dir>/<mailbox>/<id>.wav and <dir>/<mailbox>/greeting.wav. */
  voicemailDir: string;
  maxMessageMs: number;
  /** Shorter recordings are dropped (hang-ups during the beep). */
  minMessageMs: number;
  /** No RTP for this long ends a recording. */
  noMediaMs: number;
  /** How long the mailbox menu waits for a key. */
  menuTimeoutMs: number;
  /** The mailbox changed (message stored, saved, deleted): send message-waiting. */
  changed(mailbox: string): Promise<void>;
  logger: Logger;
  onStored?(m: VoicemailMessage): void;
  conferences: Conferences;
}

/** A mailbox as a directory name. */
export const mailboxDir = (mailbox: string) => mailbox.replace(/[^A-Za-z0-9@._-]/g, '_');

export function createApps(o: AppOptions): (call: Call<AppRoute>) => Promise<void> {
  // Files are read and written without holding the event loop: SIP, RADIUS and media share it under npm start.
  const greetingOf = async (mailbox: string) => {
    try {
      return promptFromPcm(
        'greeting',
        readWav(await readFile(join(o.voicemailDir, mailboxDir(mailbox), 'greeting.wav'))),
      );
    } catch {
      return o.prompts.get('vm-greeting');
    }
  };

  async function announce(call: Call<AppRoute>, name: string) {
    const p = o.prompts.get(name);
    if (p) await call.play(p);
  }

  async function deposit(call: Call<AppRoute>, mailbox: string) {
    const greeting = await greetingOf(mailbox);
    if (greeting && !(await call.play(greeting)) && call.isEnded) return;
    if (!(await call.play(o.prompts.get('beep')!)) && call.isEnded) return;
    const receivedAt = new Date();
    const rec = await call.record(o.maxMessageMs, { noMediaMs: o.noMediaMs });
    if (!call.isEnded) call.hangup();
    const samples = rec.samples;
    const durationMs = Math.round(samples.length / 8);
    if (durationMs < o.minMessageMs) {
      o.logger.info({ mailbox, durationMs, callId: call.callId }, 'voicemail too short: dropped');
      return;
    }
    const dir = mailboxDir(mailbox);
    await mkdir(join(o.voicemailDir, dir), { recursive: true });
    const file = join(dir, `${receivedAt.getTime()}-${randomBytes(4).toString('hex')}.wav`);
    await writeFile(join(o.voicemailDir, file), writeWav(samples));
    const stored = await o.store.add({
      mailbox,
      caller: call.caller,
      callerName: call.callerName,
      callId: call.callId,
      receivedAt,
      durationMs,
      file,
    });
    o.logger.info({ mailbox, id: stored.id, durationMs, packets: rec.packets }, 'voicemail stored');
    o.onStored?.(stored);
    await o.changed(mailbox);
  }

  /**
   * Mailbox access (DTMF menu): 1 plays the next message, 7 deletes the one
   * last played, 9 saves it, # hangs up. Prompts vm-menu / vm-deleted /
   * vm-saved / vm-no-more are played when present.
   */
  async function mailboxMenu(call: Call<AppRoute>, mailbox: string) {
    call.interruptOnDigit = true;
    const playIf = async (name: string) => {
      const p = o.prompts.get(name);
      if (p) await call.play(p);
    };
    // Message-waiting NOTIFYs go out meanwhile: a phone that does not answer must not hold up the menu.
    const notify = () =>
      void o
        .changed(mailbox)
        .catch((err: unknown) => o.logger.warn({ err, mailbox }, 'message-waiting update failed'));
    const list = await o.store.list(mailbox);
    let next = 0;
    let current: VoicemailMessage | undefined;
    await playIf('vm-menu');
    for (;;) {
      const d = await call.nextDigit(o.menuTimeoutMs);
      if (d === undefined || d === '#') return;
      if (d === '1') {
        current = list[next];
        if (!current) {
          await playIf('vm-no-more');
          continue;
        }
        next++;
        try {
          const pcm = readWav(await readFile(join(o.voicemailDir, current.file)));
          await call.play(promptFromPcm(`msg-${current.id}`, pcm));
        } catch (err) {
          o.logger.warn({ err, id: current.id }, 'voicemail file unreadable');
        }
      } else if (d === '7' && current) {
        const gone = await o.store.remove(current.id);
        if (gone) {
          try {
            await unlink(join(o.voicemailDir, gone.file));
          } catch {
            // already gone
          }
        }
        current = undefined;
        notify();
        await playIf('vm-deleted');
      } else if (d === '9' && current) {
        await o.store.setFolder(current.id, 'saved');
        current = undefined;
        notify();
        await playIf('vm-saved');
      }
    }
  }

  /** A conference room: the mix until hang-up (the room plays the join and leave tones); MUTE_KEY toggles mute. */
  async function conference(call: Call<AppRoute>, room: string) {
    const c = o.conferences.room(room);
    if (!c.join(call.media)) {
      o.logger.info({ room }, 'conference full');
      return;
    }
    try {
      while (!call.isEnded) {
        const d = await call.nextDigit(60_000);
        if (d === MUTE_KEY) c.toggleMute(call.media);
      }
    } finally {
      c.leave(call.media);
    }
  }

  return async (call) => {
    const r = call.route;
    if (r.app === 'conference') return conference(call, r.room);
    if (r.app === 'announce') return announce(call, r.prompt);
    if (r.app === 'voicemail') return deposit(call, r.mailbox);
    return mailboxMenu(call, r.mailbox);
  };
}
