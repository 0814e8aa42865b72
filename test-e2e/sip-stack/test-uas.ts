/**
 * A small UAS on the @switchboard/sip transport + transaction layers, for the
 * end-to-end tests: answers INVITE with 180 and 200 (with SDP), takes ACK and
 * BYE, answers REGISTER, OPTIONS and CANCEL.
 */
import {
  SipUri,
  TransactionLayer,
  createSipTransport,
  newTag,
  type ListenSpec,
  type ServerTransaction,
  type SipRequest,
  type Source,
  type TransportLayer,
  type SipResponse,
} from '@switchboard/sip';

export interface TestUas {
  transport: TransportLayer<SipRequest | SipResponse>;
  txl: TransactionLayer;
  stats: {
    invites: number;
    acks: number;
    byes: number;
    registers: number;
    parseErrors: number;
    merged: number;
  };
  port(transport: ListenSpec['transport']): number;
  stop(): Promise<void>;
}

const sdp = (ip: string) =>
  `v=0\r\no=uas 1 1 IN IP4 ${ip}\r\ns=-\r\nc=IN IP4 ${ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`;

export async function startTestUas(listen: ListenSpec[]): Promise<TestUas> {
  const transport = createSipTransport({ listen, udpRecvBufferSize: 4 << 20 });
  const txl = new TransactionLayer({ transport });
  const stats = { invites: 0, acks: 0, byes: 0, registers: 0, parseErrors: 0, merged: 0 };

  const contact = (src: Source) => {
    const host = src.localAddress.includes(':') ? `[${src.localAddress}]` : src.localAddress;
    return `<sip:uas@${host}:${src.localPort};transport=${src.transport}>`;
  };

  // RFC 3261 §13.3.1.4: the UAS core retransmits its 2xx (T1 doubling up to T2) until the ACK
  // arrives or 64*T1 passes; the INVITE server transaction (Accepted) only carries them.
  const T1 = 500;
  const pending2xx = new Map<string, { timer: NodeJS.Timeout; deadline: number }>();
  const retransmit2xx = (key: string, tx: ServerTransaction, res: SipResponse, interval: number) => {
    const p = pending2xx.get(key);
    if (!p) return;
    if (Date.now() >= p.deadline) {
      pending2xx.delete(key);
      return;
    }
    tx.respond(res);
    p.timer = setTimeout(() => retransmit2xx(key, tx, res, Math.min(interval * 2, 4000)), interval);
  };

  const onRequest = (req: SipRequest, tx: ServerTransaction | undefined, src: Source): void => {
    if (req.method === 'ACK') {
      stats.acks++;
      const key = `${req.callId} ${req.cseq.seq}`;
      const p = pending2xx.get(key);
      if (p) {
        clearTimeout(p.timer);
        pending2xx.delete(key);
      }
      return;
    }
    if (!tx) return;
    switch (req.method) {
      case 'INVITE': {
        stats.invites++;
        if (txl.isMergedRequest(req, tx)) {
          stats.merged++;
          tx.reply(482, 'Loop Detected', { toTag: newTag() });
          return;
        }
        const toTag = newTag();
        tx.reply(180, undefined, { toTag });
        const ok = tx.reply(200, undefined, {
          toTag,
          headers: [['Contact', contact(src)]],
          body: sdp(src.localAddress.includes(':') ? '127.0.0.1' : src.localAddress),
          contentType: 'application/sdp',
        });
        if (src.transport === 'udp') {
          const key = `${req.callId} ${req.cseq.seq}`;
          const timer = setTimeout(() => retransmit2xx(key, tx, ok, 2 * T1), T1);
          pending2xx.set(key, { timer, deadline: Date.now() + 64 * T1 });
        }
        return;
      }
      case 'BYE':
        stats.byes++;
        tx.reply(200);
        return;
      case 'REGISTER': {
        stats.registers++;
        const c = req.getHeader('Contact');
        tx.reply(200, undefined, {
          toTag: newTag(),
          headers: c ? [['Contact', `${c};expires=3600`]] : [],
        });
        // RFC 5626: later requests to this UA go over the flow it registered on.
        if (src.connId !== undefined) {
          const uri = req.contacts[0]?.uri;
          if (uri instanceof SipUri)
            transport.addAlias(src.connId, src.transport, uri.host, uri.port ?? 5060);
        }
        return;
      }
      case 'CANCEL': {
        const invite = txl.findInviteForCancel(req);
        tx.reply(invite ? 200 : 481);
        if (invite && invite.state === 'proceeding') invite.reply(487);
        return;
      }
      case 'OPTIONS':
        tx.reply(200, undefined, { headers: [['Allow', 'INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER']] });
        return;
      default:
        tx.reply(405, undefined, { headers: [['Allow', 'INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER']] });
    }
  };

  txl.attach({
    onRequest,
    onParseError: (raw, err, src) => {
      stats.parseErrors++;
      txl.answerUnparsable(raw, err, src);
    },
  });
  await transport.start();
  return {
    transport,
    txl,
    stats,
    port: (t) => transport.addresses().find((a) => a.transport === t)!.port,
    stop: () => {
      for (const p of pending2xx.values()) clearTimeout(p.timer);
      pending2xx.clear();
      return transport.stop();
    },
  };
}
