/**
 * The transaction layer (RFC 3261 §17): sits on the transport layer, matches
 * incoming messages to transactions, absorbs retransmissions, and hands the
 * transaction user (UA core, proxy core) what it must see.
 *
 * Matching (§17.1.3, §17.2.3) is a Map lookup on the branch string, checked
 * against sent-by and method; ACK matches its INVITE. Vias without the
 * z9hG4bK cookie fall back to RFC 2543 matching on a composite key.
 */
import { SipParseError, newTag, type SipRequest, type SipResponse } from '../message';
import type { TransportUser } from '../transport/layer';
import { responseTarget } from '../transport/response-target';
import {
  DEFAULT_PORTS,
  systemClock,
  type Clock,
  type SendCallback,
  type SendTarget,
  type Source,
} from '../transport/types';
import {
  ClientInviteTransaction,
  ClientNonInviteTransaction,
  type ClientTransaction,
  type ClientTxUser,
} from './client';
import { ServerInviteTransaction, ServerNonInviteTransaction, ServerTransaction } from './server';
import { errorResponseForRaw } from './stateless';
import { timerConfig, type TimerConfig } from './timers';
import { type TimerName, type Transaction, type TxHost } from './transaction';
import { detach } from '../message/detach';
import { TimerQueue } from './timer-queue';

type SipMessage = SipRequest | SipResponse;

/** What the transaction layer needs from the transport below it. */
export interface TxTransport {
  send(data: Buffer, target: SendTarget, cb?: SendCallback): void;
  attach(user: TransportUser<SipMessage>): void;
  /** RFC 5923: name a connection after the sent-by of a Via carrying `alias`. */
  addAlias?(connId: number, transport: Source['transport'], address: string, port: number): void;
}

/** What the transaction user hears. */
export interface TransactionUser {
  /**
   * A new request (never a retransmission). For everything but ACK a server
   * transaction was created: answer through `tx.respond()`. An ACK arrives
   * with `tx` undefined when it matched no transaction (ACK for a 2xx,
   * RFC 3261 §17.1.1.3), or with the INVITE's transaction in Accepted (RFC 6026).
   */
  onRequest(req: SipRequest, tx: ServerTransaction | undefined, src: Source): void;
  /** A response that matched no client transaction (a proxy forwards it statelessly, §16.7; a UAC sees late 2xx). */
  onStrayResponse?(res: SipResponse, src: Source): void;
  /**
   * Bytes that did not parse, or a message whose routing headers were bad.
   * Without this handler the layer answers requests it can read with 400 (or the
   * parser's status) statelessly and drops the rest.
   */
  onParseError?(raw: Buffer, err: Error, src: Source): void;
  /** A connection (flow) closed. */
  onConnectionClosed?(connId: number): void;
  /**
   * The TU threw while handling a message (a bug, not bad input): the layer goes on serving. A new
   * request whose handler threw before any final response was answered 500 through its
   * transaction. The same for a transaction's timer (no source then; no message either once the
   * transaction let its request go): the transaction ends. Without this handler the error is
   * thrown on.
   */
  onError?(err: unknown, msg: SipMessage | undefined, src: Source | undefined): void;
  /**
   * Called for a request that matched no transaction, before one is created:
   * false drops it unanswered and leaves no state (rate limits, bans).
   */
  admit?(req: SipRequest, src: Source): boolean;
  /**
   * Called for a request (not ACK) that matched no transaction, after `admit`, before a server
   * transaction is created: a response returned is sent statelessly (RFC 3261 §18.2.2) and no
   * transaction is created, as Kamailio's `sl_send_reply` does (a digest challenge to a REGISTER
   * without credentials). A retransmission of the request is asked again, and answered afresh.
   */
  answerStateless?(req: SipRequest, src: Source): SipResponse | undefined;
}

export interface TransactionLayerOptions {
  transport: TxTransport;
  clock?: Clock;
  timers?: Partial<TimerConfig>;
}

function bareHost(h: string): string {
  return h.length > 1 && h.charCodeAt(0) === 91 ? h.slice(1, -1) : h;
}

export class TransactionLayer implements TxHost, TransportUser<SipMessage> {
  readonly clock: Clock;
  readonly timers: TimerConfig;
  readonly timerQueue: TimerQueue<TimerName>;
  private user: TransactionUser | undefined;
  private readonly transport: TxTransport;

  // RFC 3261 §17.2.3: server transactions, by branch (INVITE and ACK share; CANCEL is its own).
  private readonly serverInvite = new Map<string, ServerTransaction>();
  private readonly serverNonInvite = new Map<string, ServerTransaction>();
  // RFC 3261 §17.1.3: client transactions, by branch (+ CSeq method check).
  private readonly clientInvite = new Map<string, ClientTransaction>();
  private readonly clientNonInvite = new Map<string, ClientTransaction>();
  // RFC 3261 §17.2.3: RFC 2543 peers (no magic cookie), by composite key.
  private readonly legacy = new Map<string, ServerTransaction>();
  // RFC 3261 §8.2.2.2: initial requests by From tag + Call-ID + CSeq.
  private readonly mergeIndex = new Map<string, ServerTransaction>();

  constructor(opts: TransactionLayerOptions) {
    this.clock = opts.clock ?? systemClock;
    this.timers = timerConfig(opts.timers);
    this.timerQueue = new TimerQueue(this.clock, (err, owner) => this.timerFailed(err, owner as Transaction));
    this.transport = opts.transport;
    this.transport.attach(this);
  }

  /** Attach the transaction user. */
  attach(user: TransactionUser): void {
    this.user = user;
  }

  /** Live transaction counts (for metrics and tests). */
  get counts(): {
    serverInvite: number;
    serverNonInvite: number;
    clientInvite: number;
    clientNonInvite: number;
  } {
    return {
      serverInvite: this.serverInvite.size,
      serverNonInvite: this.serverNonInvite.size,
      clientInvite: this.clientInvite.size,
      clientNonInvite: this.clientNonInvite.size,
    };
  }

  // ------------------------------------------------------------------ TU → down

  /**
   * Start a client transaction. The request must carry its top Via (with a
   * z9hG4bK branch; see newBranch) and is sent to `target` (resolve with
   * SipResolver first; pass connId to use a flow).
   */
  request(req: SipRequest, target: SendTarget, user: ClientTxUser): ClientTransaction {
    const via = req.via;
    const branch = via.branch;
    if (!branch || !via.isRfc3261Branch)
      throw new Error('client transaction needs a z9hG4bK branch on the top Via');
    const invite = req.method === 'INVITE';
    const map = invite ? this.clientInvite : this.clientNonInvite;
    if (map.has(branch)) throw new Error(`client transaction ${branch} already exists`);
    const tx = invite
      ? new ClientInviteTransaction(this, req, branch, target, user)
      : new ClientNonInviteTransaction(this, req, branch, target, user);
    map.set(branch, tx);
    tx.start();
    return tx;
  }

  /** Send outside any transaction: ACK for 2xx, stateless proxy forwarding, stateless responses. */
  sendStateless(msg: SipMessage, target: SendTarget, cb?: SendCallback): void {
    this.transport.send(msg.serialize(), target, cb);
  }

  /** Answer a request statelessly (no transaction), routed per RFC 3261 §18.2.2 / RFC 3581. */
  respondStateless(req: SipRequest, res: SipResponse, src: Source, cb?: SendCallback): void {
    this.transport.send(res.serialize(), this.responseTargetFor(req, src), cb);
  }

  /** RFC 3261 §9.2: the INVITE server transaction a CANCEL is for, if any. */
  findInviteForCancel(cancel: SipRequest): ServerInviteTransaction | undefined {
    const via = cancel.via;
    let tx: ServerTransaction | undefined;
    if (via.isRfc3261Branch) {
      tx = this.serverInvite.get(via.branch!);
      if (tx && tx.sentBy !== via.sentBy) tx = undefined;
    } else {
      tx = this.legacy.get(this.legacyKey(cancel, true));
    }
    return tx instanceof ServerInviteTransaction ? tx : undefined;
  }

  /**
   * RFC 3261 §8.2.2.2 merged request: no To tag, and the From tag, Call-ID and
   * CSeq equal those of another live server transaction. The UAS answers 482.
   */
  isMergedRequest(req: SipRequest, tx: ServerTransaction | undefined): boolean {
    if (req.toTag !== undefined) return false;
    const other = this.mergeIndex.get(this.mergeKey(req));
    return other !== undefined && other !== tx && !other.terminated;
  }

  // ------------------------------------------------------------------ transport → up

  onMessage(msg: SipMessage, src: Source): void {
    try {
      if (msg.isRequest) this.receiveRequest(msg, src);
      else this.receiveResponse(msg, src);
    } catch (err) {
      // Lazily parsed routing headers (Via, CSeq, From, To) can still be malformed.
      if (err instanceof SipParseError)
        this.onParseError(msg.buf.length ? msg.buf : msg.serialize(), err, src);
      else if (this.user?.onError) this.user.onError(err, msg, src);
      else throw err;
    }
  }

  /**
   * A transaction's timer threw (most likely its TU, handed a 408 or 503 from Timer B or F): the
   * transaction ends, the TU's onError hears it (with the request when still held), and the other
   * timers fire on. Without onError it is thrown on.
   */
  private timerFailed(err: unknown, tx: Transaction): void {
    let req: SipRequest | undefined;
    try {
      req = tx.failed();
    } catch {
      // its onTerminated threw too: it is out of the tables all the same
    }
    if (!this.user?.onError) throw err;
    this.user.onError(err, req, undefined);
  }

  onParseError(raw: Buffer, err: Error, src: Source): void {
    const user = this.user;
    if (user?.onParseError) {
      user.onParseError(raw, err, src);
      return;
    }
    this.answerUnparsable(raw, err, src);
  }

  onConnectionClosed(connId: number): void {
    this.user?.onConnectionClosed?.(connId);
  }

  /**
   * Best-effort stateless error response to bytes that did not parse (RFC 3261
   * §8.2.2 / §21.4.1): if the raw header section holds the Via, From, To,
   * Call-ID and CSeq a response copies, answer with the parser's status (400,
   * 505, 513 ...). Responses, ACKs and unreadable bytes are dropped.
   * Returns true if answered.
   */
  answerUnparsable(raw: Buffer, err: Error, src: Source): boolean {
    const status = err instanceof SipParseError ? err.status : 400;
    const reason = status === 400 ? `Bad Request (${err.message.slice(0, 80)})` : undefined;
    const out = errorResponseForRaw(raw, status, src, newTag(), reason);
    if (!out) return false;
    this.transport.send(out.wire, out.target);
    return true;
  }

  // ------------------------------------------------------------------ matching

  private receiveRequest(req: SipRequest, src: Source): void {
    const via = req.via;
    // RFC 3261 §18.2.1 / RFC 3581 §4: received (and rport) on the top Via.
    const rport = via.rport !== undefined;
    if (rport || bareHost(via.host) !== src.address) {
      req.setViaReceived(src.address, rport ? src.port : undefined);
    }
    // RFC 5923 §5: `alias` on a connection-oriented Via: reuse this connection for its sent-by.
    if (src.connId !== undefined && via.params.has('alias') && this.transport.addAlias) {
      this.transport.addAlias(
        src.connId,
        src.transport,
        bareHost(via.host),
        via.port ?? DEFAULT_PORTS[src.transport],
      );
    }
    const method = req.method;
    const isAck = method === 'ACK';
    let tx: ServerTransaction | undefined;
    let legacyKey: string | undefined;
    const branch = via.branch;
    if (branch !== undefined && via.isRfc3261Branch) {
      // RFC 3261 §17.2.3: branch + sent-by + method (ACK matches INVITE).
      tx = (isAck || method === 'INVITE' ? this.serverInvite : this.serverNonInvite).get(branch);
      if (tx && (tx.sentBy !== via.sentBy || (tx.method !== method && !isAck))) tx = undefined;
    } else {
      // RFC 3261 §17.2.3 RFC 2543 fallback.
      legacyKey = this.legacyKey(req, isAck || method === 'INVITE');
      tx = this.legacy.get(legacyKey);
      if (tx && isAck && tx.lastToTag !== req.toTag) tx = undefined;
      if (tx && !isAck && tx.method !== method) tx = undefined;
    }
    const user = this.user;
    if (tx) {
      if (tx.receive(req)) user?.onRequest(req, tx, src);
      return;
    }
    if (user?.admit && !user.admit(req, src)) return;
    if (isAck) {
      user?.onRequest(req, undefined, src);
      return;
    }
    const answer = user?.answerStateless?.(req, src);
    if (answer !== undefined) {
      this.respondStateless(req, answer, src);
      return;
    }
    // Everything the tables need is read before any state exists (a malformed
    // header throws SipParseError here and the request is answered statelessly).
    const mk = req.toTag === undefined ? detach(this.mergeKey(req)) : undefined;
    const target = this.responseTargetFor(req, src);
    const key = detach(branch ?? '');
    const created =
      method === 'INVITE'
        ? new ServerInviteTransaction(this, req, key, target, src)
        : new ServerNonInviteTransaction(this, req, key, target, src);
    if (legacyKey !== undefined) {
      legacyKey = detach(legacyKey);
      this.legacy.set(legacyKey, created);
      created.legacyKey = legacyKey;
    } else {
      const map = method === 'INVITE' ? this.serverInvite : this.serverNonInvite;
      // A branch collision with another sent-by: the new transaction runs unindexed.
      if (!map.has(key)) map.set(key, created);
    }
    if (mk !== undefined && !this.mergeIndex.has(mk)) {
      this.mergeIndex.set(mk, created);
      created.mergeKey = mk;
    }
    try {
      user?.onRequest(req, created, src);
    } catch (err) {
      // The TU read a malformed header lazily (its status), or failed (500): answer through the transaction.
      const parse = err instanceof SipParseError;
      if (created.lastStatus < 200)
        created.reply(parse ? err.status : 500, parse ? undefined : 'Server Internal Error', {
          toTag: newTag(),
        });
      if (!parse) throw err;
    }
    // RFC 3261 §17.2.1: the automatic 100 Trying timer, only if the TU did not answer yet.
    if (created instanceof ServerInviteTransaction) created.start();
  }

  private receiveResponse(res: SipResponse, src: Source): void {
    // RFC 3261 §17.1.3: top Via branch + CSeq method.
    const branch = res.via.branch;
    const method = res.cseq.method;
    const tx =
      branch === undefined
        ? undefined
        : (method === 'INVITE' ? this.clientInvite : this.clientNonInvite).get(branch);
    if (tx && tx.method === method) {
      tx.receive(res);
      return;
    }
    this.user?.onStrayResponse?.(res, src);
  }

  private responseTargetFor(req: SipRequest, src: Source): SendTarget {
    const v = req.via;
    return responseTarget(
      {
        host: bareHost(v.host),
        port: v.port ?? undefined,
        received: v.received,
        rport: v.rport !== undefined,
        maddr: v.maddr,
      },
      src,
    );
  }

  /** RFC 3261 §17.2.3 (RFC 2543): Request-URI, To tag (non-INVITE), From tag, Call-ID, CSeq, top Via. */
  private legacyKey(req: SipRequest, inviteClass: boolean): string {
    const base = `${req.uriText}\n${req.callId}\n${req.fromTag ?? ''}\n${req.cseq.seq}\n${req.via.toString()}`;
    return inviteClass ? `${base}\nINVITE` : `${base}\n${req.method}\n${req.toTag ?? ''}`;
  }

  private mergeKey(req: SipRequest): string {
    const cseq = req.cseq;
    return `${req.callId}\n${req.fromTag ?? ''}\n${cseq.seq}\n${cseq.method}`;
  }

  // ------------------------------------------------------------------ TxHost

  send(data: Buffer, target: SendTarget, cb?: SendCallback): void {
    this.transport.send(data, target, cb);
  }

  removed(tx: Transaction): void {
    if (tx instanceof ServerTransaction) {
      const map = tx.isInvite ? this.serverInvite : this.serverNonInvite;
      if (map.get(tx.branch) === tx) map.delete(tx.branch);
      if (tx.legacyKey !== undefined && this.legacy.get(tx.legacyKey) === tx)
        this.legacy.delete(tx.legacyKey);
      if (tx.mergeKey !== undefined && this.mergeIndex.get(tx.mergeKey) === tx)
        this.mergeIndex.delete(tx.mergeKey);
    } else {
      const t = tx as ClientTransaction;
      const map = t.isInvite ? this.clientInvite : this.clientNonInvite;
      if (map.get(t.branch) === t) map.delete(t.branch);
    }
  }
}
