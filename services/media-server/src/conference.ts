/**
 * Conference rooms: each participant hears the sum of everyone else (linear
 * PCM: the mix of all minus their own), G.711 in and out in each one's law.
 *
 * Input: each participant's frames are decoded on arrival into a small FIFO
 * (arrival order; a late stream that piles up loses its oldest frames, so
 * delay stays bounded). Output: one pacer-driven mix every 20 ms for the whole
 * room; buffers are allocated once per participant, none per packet.
 */
import { decodeRange, encodeTable } from './g711';
import type { MediaSession, Pacer, Pumped } from './media';
import { FRAME_MS, FRAME_SAMPLES } from './rtp';
import { tone } from './tone';

/** Frames a participant's input may queue before the oldest is dropped. */
export const INPUT_DEPTH = 5;
export const MAX_PARTICIPANTS = 50;
/** Tones everyone hears when someone joins (rising) or leaves (falling): 150 ms each. */
export const JOIN_TONE = tone(1500, 150, 4000);
export const LEAVE_TONE = tone(900, 150, 4000);

class Participant {
  readonly input = new Int16Array(FRAME_SAMPLES * INPUT_DEPTH);
  private read = 0;
  queued = 0;
  /** The frame taken for the current mix (zeros when none arrived). */
  readonly current = new Int16Array(FRAME_SAMPLES);
  hasCurrent = false;
  readonly out = new Uint8Array(FRAME_SAMPLES);
  muted = false;

  constructor(readonly media: MediaSession) {}

  push(buf: Buffer, start: number, end: number): void {
    if (end - start !== FRAME_SAMPLES) return; // 20 ms packets only
    if (this.queued === INPUT_DEPTH) {
      this.read = (this.read + 1) % INPUT_DEPTH;
      this.queued--;
    }
    const slot = (this.read + this.queued) % INPUT_DEPTH;
    decodeRange(buf, start, end, this.media.law, this.input, slot * FRAME_SAMPLES);
    this.queued++;
  }

  take(): void {
    if (this.queued === 0 || this.muted) {
      if (this.queued && this.muted) {
        this.read = (this.read + 1) % INPUT_DEPTH;
        this.queued--;
      }
      this.hasCurrent = false;
      return;
    }
    const input = this.input;
    const current = this.current;
    for (let i = 0, o = this.read * FRAME_SAMPLES; i < FRAME_SAMPLES; i++) current[i] = input[o + i];
    this.read = (this.read + 1) % INPUT_DEPTH;
    this.queued--;
    this.hasCurrent = true;
  }
}

export class Conference implements Pumped {
  private readonly members = new Map<MediaSession, Participant>();
  private readonly mix = new Int32Array(FRAME_SAMPLES);
  private start = 0;
  private frames = 0;
  private notice: Int16Array | undefined;
  private noticePos = 0;

  constructor(
    readonly room: string,
    private readonly pacer: Pacer,
    private readonly onEmpty: () => void = () => {},
  ) {}

  get size(): number {
    return this.members.size;
  }

  /** Adds a participant; false when the room is full. */
  join(media: MediaSession): boolean {
    if (this.members.size >= MAX_PARTICIPANTS) return false;
    const p = new Participant(media);
    this.members.set(media, p);
    media.audioSink = (buf, s, e) => p.push(buf, s, e);
    this.notify(JOIN_TONE);
    if (this.members.size === 1) {
      this.start = this.pacer.clock.now();
      this.frames = 0;
      this.pacer.add(this);
    }
    return true;
  }

  leave(media: MediaSession): void {
    if (!this.members.delete(media)) return;
    media.audioSink = undefined;
    if (this.members.size === 0) {
      this.pacer.remove(this);
      this.onEmpty();
    } else this.notify(LEAVE_TONE);
  }

  /** A tone mixed into what everyone hears (join, leave). */
  private notify(t: Int16Array): void {
    this.notice = t;
    this.noticePos = 0;
  }

  /** Toggles a participant's mute; returns the new state. */
  toggleMute(media: MediaSession): boolean {
    const p = this.members.get(media);
    if (!p) return false;
    p.muted = !p.muted;
    return p.muted;
  }

  pump(now: number): void {
    const due = Math.floor((now - this.start) / FRAME_MS) + 1;
    // After a stall, mix at most a few frames at once (the rest is skipped).
    if (due - this.frames > 5) this.frames = due - 5;
    while (this.frames < due) {
      this.mixFrame();
      this.frames++;
    }
  }

  /** One 20 ms mix: everyone's frame summed, each hears the sum minus their own. */
  mixFrame(): void {
    const mix = this.mix;
    mix.fill(0);
    for (const p of this.members.values()) {
      p.take();
      if (!p.hasCurrent) continue;
      const c = p.current;
      for (let i = 0; i < FRAME_SAMPLES; i++) mix[i] += c[i];
    }
    const notice = this.notice;
    if (notice) {
      const n = Math.min(FRAME_SAMPLES, notice.length - this.noticePos);
      for (let i = 0; i < n; i++) mix[i] += notice[this.noticePos + i];
      this.noticePos += n;
      if (this.noticePos >= notice.length) this.notice = undefined;
    }
    for (const p of this.members.values()) {
      if (p.media.playing) continue; // a prompt for this participant has the stream
      const enc = encodeTable(p.media.law);
      const out = p.out;
      const own = p.hasCurrent ? p.current : undefined;
      for (let i = 0; i < FRAME_SAMPLES; i++) {
        let v = own ? mix[i] - own[i] : mix[i];
        if (v > 32767) v = 32767;
        else if (v < -32768) v = -32768;
        out[i] = enc[v & 0xffff];
      }
      p.media.sendPayload(out);
    }
  }
}

/** The rooms of this server, created on first join and dropped when empty. */
export class Conferences {
  private readonly rooms = new Map<string, Conference>();
  constructor(private readonly pacer: Pacer) {}

  room(name: string): Conference {
    let c = this.rooms.get(name);
    if (!c) {
      c = new Conference(name, this.pacer, () => this.rooms.delete(name));
      this.rooms.set(name, c);
    }
    return c;
  }

  get count(): number {
    return this.rooms.size;
  }
}
