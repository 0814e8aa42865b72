/** A minimal UDP user agent for tests: REGISTER with digest auth, on the SIP stack's message layer. */
import dgram from 'node:dgram';
import {
  answerChallenge,
  createRequest,
  newBranch,
  newCallId,
  newTag,
  parseMessage,
  type SipResponse,
} from '@switchboard/sip';

export interface RegisterOptions {
  proxy: { host: string; port: number };
  user: string;
  password: string;
  domain: string;
  /** Contact URI; default sip:user@<local socket>. */
  contact?: string;
  expires?: number;
  /** Port to send from (the registered UA's port, so the proxy's received matches it). */
  localPort?: number;
}

/** Send a request and wait for its final response (bounded), answering one digest challenge. */
export async function register(o: RegisterOptions): Promise<SipResponse> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(o.localPort ?? 0, '127.0.0.1', r));
  const local = sock.address();
  const callId = newCallId();
  const fromTag = newTag();
  const contact = o.contact ?? `sip:${o.user}@127.0.0.1:${local.port}`;
  const send = (cseq: number, authorization?: string) => {
    const req = createRequest({
      method: 'REGISTER',
      uri: `sip:${o.domain}`,
      via: [`SIP/2.0/UDP 127.0.0.1:${local.port};branch=${newBranch()};rport`],
      from: `<sip:${o.user}@${o.domain}>;tag=${fromTag}`,
      to: `<sip:${o.user}@${o.domain}>`,
      callId,
      cseq,
      contact: [`<${contact}>`],
      headers: [
        ['Expires', String(o.expires ?? 600)],
        ...(authorization ? ([['Authorization', authorization]] as [string, string][]) : []),
      ],
    });
    sock.send(req.serialize(), o.proxy.port, o.proxy.host);
  };
  const finalResponse = () =>
    new Promise<SipResponse>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no final response to REGISTER within 5 s')), 5000);
      const onMsg = (buf: Buffer) => {
        const m = parseMessage(buf);
        if (m.isRequest || m.status < 200) return;
        clearTimeout(timer);
        sock.off('message', onMsg);
        resolve(m);
      };
      sock.on('message', onMsg);
    });
  try {
    let wait = finalResponse();
    send(1);
    let res = await wait;
    if (res.status === 401) {
      const authorization = answerChallenge({
        challengeValue: res.getHeaders('WWW-Authenticate'),
        method: 'REGISTER',
        uri: `sip:${o.domain}`,
        username: o.user,
        password: o.password,
      });
      wait = finalResponse();
      send(2, authorization);
      res = await wait;
    }
    return res;
  } finally {
    sock.close();
  }
}
