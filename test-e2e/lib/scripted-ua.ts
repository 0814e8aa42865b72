/**
 * A scripted SIP user agent for tests: one UDP socket that sends what the test
 * builds with @switchboard/sip's builders to the proxy, and queues what comes
 * back so the test can wait (bounded) for the message it expects next.
 */
import dgram from 'node:dgram';
import {
  answerChallenge,
  createRequest,
  newBranch,
  parseMessage,
  type RequestInit,
  type SipRequest,
  type SipResponse,
} from '@switchboard/sip';

type SipMessage = SipRequest | SipResponse;

export class ScriptedUa {
  /** Everything received, in order (for failure messages). */
  readonly log: SipMessage[] = [];
  private readonly queue: SipMessage[] = [];
  private readonly waiters: { match: (m: SipMessage) => boolean; take: (m: SipMessage) => void }[] = [];

  private constructor(
    private readonly sock: dgram.Socket,
    /** Where every message goes: the proxy (responses too, as it is the only hop either side talks to). */
    readonly proxy: { host: string; port: number },
  ) {
    sock.on('message', (buf) => {
      let m: SipMessage;
      try {
        m = parseMessage(buf);
      } catch {
        return;
      }
      this.log.push(m);
      const i = this.waiters.findIndex((w) => w.match(m));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.take(m);
      else this.queue.push(m);
    });
  }

  static async open(proxy: { host: string; port: number }, address = '127.0.0.1', port = 0) {
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, address, () => resolve());
    });
    return new ScriptedUa(sock, proxy);
  }

  get address(): string {
    return this.sock.address().address;
  }
  get port(): number {
    return this.sock.address().port;
  }
  /** A Via for a request sent from this socket. */
  via(branch = newBranch()): string {
    return `SIP/2.0/UDP ${this.address}:${this.port};branch=${branch};rport`;
  }

  send(m: SipMessage): void {
    this.sock.send(m.serialize(), this.proxy.port, this.proxy.host);
  }

  /** The next received message that `match` accepts (earlier non-matching ones stay queued). */
  next<T extends SipMessage>(what: string, match: (m: SipMessage) => m is T, timeoutMs?: number): Promise<T>;
  next(what: string, match: (m: SipMessage) => boolean, timeoutMs?: number): Promise<SipMessage>;
  next(what: string, match: (m: SipMessage) => boolean, timeoutMs = 5000): Promise<SipMessage> {
    const i = this.queue.findIndex(match);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const w = {
        match,
        take: (m: SipMessage) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(
          new Error(`${this.address}:${this.port}: no ${what} within ${timeoutMs} ms; got ${this.ladder()}`),
        );
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** A request of `method` (with CSeq `seq` when given). */
  request(method: string, seq?: number): Promise<SipRequest> {
    return this.next(
      `${method}${seq === undefined ? '' : ` (CSeq ${seq})`}`,
      (m): m is SipRequest => m.isRequest && m.method === method && (seq === undefined || m.cseq.seq === seq),
    );
  }

  /** The final response to the request with CSeq `seq` and `method`. */
  finalResponse(method: string, seq: number): Promise<SipResponse> {
    return this.next(
      `final response to ${method} (CSeq ${seq})`,
      (m): m is SipResponse =>
        !m.isRequest && m.status >= 200 && m.cseq.method === method && m.cseq.seq === seq,
    );
  }

  /**
   * Send an out-of-dialog request and return its final response, answering one 401/407 with digest
   * credentials (the challenge's ACK for an INVITE included). `seq` is the first CSeq; the retry takes seq+1.
   */
  async authenticated(
    init: Omit<RequestInit, 'cseq' | 'via'>,
    seq: number,
    creds: { username: string; password: string },
  ): Promise<SipResponse> {
    const first = createRequest({ ...init, cseq: seq, via: [this.via()] });
    this.send(first);
    const res = await this.finalResponse(init.method, seq);
    if (res.status !== 401 && res.status !== 407) return res;
    if (init.method === 'INVITE') {
      // §17.1.1.3: the ACK for a non-2xx goes in the INVITE's transaction (same branch, the response's To).
      this.send(
        createRequest({
          method: 'ACK',
          uri: init.uri,
          via: [first.getHeader('Via')!],
          from: init.from,
          to: res.getHeader('To')!,
          callId: init.callId,
          cseq: seq,
          route: init.route,
        }),
      );
    }
    const [challenge, header] =
      res.status === 401
        ? ['WWW-Authenticate', 'Authorization']
        : ['Proxy-Authenticate', 'Proxy-Authorization'];
    const authorization = answerChallenge({
      challengeValue: res.getHeaders(challenge),
      method: init.method,
      uri: init.uri.toString(),
      username: creds.username,
      password: creds.password,
    });
    this.send(
      createRequest({
        ...init,
        cseq: seq + 1,
        via: [this.via()],
        headers: [...(init.headers ?? []), [header, authorization]],
      }),
    );
    return this.finalResponse(init.method, seq + 1);
  }

  /** What was received, one token each (`INVITE`, `200 INVITE`, ...). */
  ladder(): string {
    return (
      this.log.map((m) => (m.isRequest ? m.method : `${m.status} ${m.cseq.method}`)).join(', ') || 'nothing'
    );
  }

  close(): void {
    this.sock.close();
  }
}
