/**
 * Media anchoring at the proxy (what the book does with rtpproxy_offer /
 * rtpproxy_answer, as Kamailio's rtpengine module does today): when either
 * party is behind NAT (or on another address family, or the operator forces
 * it), the SDP of the offer and of the answer is handed to the media proxy
 * and replaced by its rewrite, so media flows through the relay.
 */
import type { Logger } from 'pino';
import type { SipMessage } from '@switchboard/sip';
import type {
  AnswerRequest,
  AnswerResponse,
  DeleteRequest,
  DeleteResponse,
  OfferRequest,
  OfferResponse,
} from '@switchboard/proto/media';

export interface MediaApi {
  offer(req: OfferRequest): Promise<OfferResponse>;
  answer(req: AnswerRequest): Promise<AnswerResponse>;
  delete(req: DeleteRequest): Promise<DeleteResponse>;
}

export type RelayPolicy = 'auto' | 'always' | 'never';

const SDP = /^application\/sdp\b/i;

export const hasSdp = (m: SipMessage): boolean => m.body.length > 0 && SDP.test(m.contentType ?? '');

const NG_BASE: Pick<OfferRequest, 'replace' | 'direction' | 'transportProtocol' | 'ice' | 'rtcpMux'> = {
  replace: ['origin', 'session-connection'],
  direction: [],
  transportProtocol: '',
  ice: 'remove',
  rtcpMux: [],
};

export class MediaAnchor {
  /** Calls whose media is anchored, by Call-ID (so in-dialog offers and the BYE reach the relay too). */
  private readonly anchored = new Set<string>();

  constructor(
    private readonly api: MediaApi | undefined,
    private readonly policy: RelayPolicy,
    private readonly logger: Logger,
  ) {}

  /** Whether a new call should be anchored: NAT on either side, a change of address family, or policy. */
  shouldAnchor(callerNated: boolean, calleeNated: boolean, familyChange = false): boolean {
    if (!this.api || this.policy === 'never') return false;
    return this.policy === 'always' || callerNated || calleeNated || familyChange;
  }

  isAnchored(callId: string): boolean {
    return this.anchored.has(callId);
  }

  get size(): number {
    return this.anchored.size;
  }

  /** Rewrite the offer's SDP in place (INVITE, re-INVITE or UPDATE). Returns false when the relay refused. */
  async offer(
    msg: SipMessage,
    ids: { callId: string; fromTag: string; toTag?: string; viaBranch?: string; receivedFrom: string },
  ): Promise<boolean> {
    if (!this.api || !hasSdp(msg)) return true;
    try {
      const r = await this.api.offer({
        ...NG_BASE,
        callId: ids.callId,
        fromTag: ids.fromTag,
        toTag: ids.toTag ?? '',
        viaBranch: ids.viaBranch ?? '',
        sdp: msg.body.toString('utf8'),
        flags: ['sip-source-address'],
        receivedFrom: ids.receivedFrom,
      });
      msg.setBody(r.sdp, 'application/sdp');
      this.anchored.add(ids.callId);
      return true;
    } catch (err) {
      this.logger.warn({ err, callId: ids.callId }, 'media relay refused the offer; media goes direct');
      return false;
    }
  }

  /** Rewrite the answer's SDP in place (18x/2xx, or an ACK carrying the answer). */
  async answer(
    msg: SipMessage,
    ids: { callId: string; fromTag: string; toTag: string; viaBranch?: string; receivedFrom: string },
  ): Promise<void> {
    if (!this.api || !this.anchored.has(ids.callId) || !hasSdp(msg)) return;
    try {
      const r = await this.api.answer({
        ...NG_BASE,
        callId: ids.callId,
        fromTag: ids.fromTag,
        toTag: ids.toTag,
        viaBranch: ids.viaBranch ?? '',
        sdp: msg.body.toString('utf8'),
        flags: ['sip-source-address'],
        receivedFrom: ids.receivedFrom,
      });
      msg.setBody(r.sdp, 'application/sdp');
    } catch (err) {
      this.logger.warn({ err, callId: ids.callId }, 'media relay refused the answer');
    }
  }

  /** End the call's media (BYE, a failed or cancelled INVITE). */
  async end(callId: string): Promise<void> {
    if (!this.api || !this.anchored.delete(callId)) return;
    try {
      await this.api.delete({ callId, fromTag: '', toTag: '', viaBranch: '', deleteDelay: 0 });
    } catch (err) {
      this.logger.warn({ err, callId }, 'media relay delete failed');
    }
  }
}
