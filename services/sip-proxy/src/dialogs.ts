/**
 * Calls with a granted time (prepaid credit): like Kamailio's dialog module
 * with a timeout, the proxy remembers what it needs to end an answered call
 * and, when the time runs out, sends a BYE to each side itself.
 */
import {
  NameAddr,
  createRequest,
  isSipUri,
  parseNameAddr,
  type SipRequest,
  type SipResponse,
} from '@switchboard/sip';
import type { SendTarget } from '@switchboard/sip';

export interface LimitedCall {
  callId: string;
  /** The caller's side: its From (with tag), Contact, the hop it came from and the Route set toward it. */
  caller: { nameAddr: string; contact: string; target: SendTarget; route: string[]; cseq: number };
  /** The callee's side: the To of the 2xx (with tag), its Contact, the hop we sent to, the Route set toward it. */
  callee: { nameAddr: string; contact: string; target: SendTarget; route: string[]; cseq: number };
  timer?: unknown;
  /** What the proxy keeps of the call for its accounting. */
  meta: unknown;
}

export interface LimiterDeps {
  clock: { setTimeout(fn: () => void, ms: number): unknown; clearTimeout(h: unknown): void };
  /** Sends a BYE we built (the proxy adds its Via) toward a target. */
  send(bye: SipRequest, target: SendTarget): void;
  /** The call was cut: account its Stop (the BYE toward the callee stands for the call). */
  onCut(call: LimitedCall, bye: SipRequest): void;
  isSelf(routeValue: string): boolean;
  /** Cutting a call threw (a bug): reported, not thrown out of the clock. */
  onError(err: unknown, callId: string): void;
}

export class CallLimiter {
  private readonly calls = new Map<string, LimitedCall>();

  constructor(private readonly d: LimiterDeps) {}

  get size(): number {
    return this.calls.size;
  }

  /**
   * Starts the clock of an answered call: `invite` is the request as the caller
   * sent it, `ok` the 2xx as the callee sent it (before the proxy edits it).
   */
  start(
    invite: SipRequest,
    callerContact: string,
    callerTarget: SendTarget,
    ok: SipResponse,
    calleeTarget: SendTarget,
    /** The granted time; undefined: no limit (the call is only remembered, to end it on a media timeout). */
    seconds: number | undefined,
    meta: unknown,
  ): void {
    const rr = ok.getHeaderValues('Record-Route');
    const ours = rr.map((v) => this.d.isSelf(v));
    const first = ours.indexOf(true);
    const last = ours.lastIndexOf(true);
    // Record-Route lists the hops nearest the callee first: above ours lead to the callee, below to the caller.
    const towardCallee = first < 0 ? [] : rr.slice(0, first).reverse();
    const towardCaller = last < 0 ? [] : rr.slice(last + 1);
    const call: LimitedCall = {
      callId: invite.callId,
      meta,
      caller: {
        nameAddr: invite.getHeader('From')!,
        contact: callerContact,
        target: callerTarget,
        route: towardCaller,
        cseq: 0,
      },
      callee: {
        nameAddr: ok.getHeader('To')!,
        contact: ok.contacts[0]?.uri.toString() ?? invite.uriText,
        target: calleeTarget,
        route: towardCallee,
        cseq: invite.cseq.seq,
      },
    };
    this.end(call.callId);
    if (seconds !== undefined)
      call.timer = this.d.clock.setTimeout(() => {
        try {
          this.cut(call, 'Credit time exhausted');
        } catch (err) {
          this.d.onError(err, call.callId);
        }
      }, seconds * 1000);
    this.calls.set(call.callId, call);
  }

  /** An in-dialog request passed through: remember its CSeq (our BYE must be higher); a BYE ends the clock. */
  seen(req: SipRequest): void {
    const call = this.calls.get(req.callId);
    if (!call) return;
    if (req.method === 'BYE') return this.end(req.callId);
    const fromCaller =
      parseNameAddr(call.caller.nameAddr, 'from', NameAddr).params.get('tag') === req.fromTag;
    const side = fromCaller ? call.callee : call.caller;
    side.cseq = Math.max(side.cseq, req.cseq.seq);
  }

  end(callId: string): void {
    const call = this.calls.get(callId);
    if (!call) return;
    this.d.clock.clearTimeout(call.timer);
    this.calls.delete(callId);
  }

  /** Ends a remembered call now (the media proxy saw no RTP); false when the call is not one of ours. */
  cutNow(callId: string, why: string): boolean {
    const call = this.calls.get(callId);
    if (!call) return false;
    this.d.clock.clearTimeout(call.timer);
    this.cut(call, why);
    return true;
  }

  private cut(call: LimitedCall, why: string): void {
    this.calls.delete(call.callId);
    // Toward the callee: from the caller; toward the caller: from the callee.
    const toCallee = this.bye(call, call.caller.nameAddr, call.callee, why);
    const toCaller = this.bye(call, call.callee.nameAddr, call.caller, why);
    this.d.send(toCallee, call.callee.target);
    this.d.send(toCaller, call.caller.target);
    this.d.onCut(call, toCallee);
  }

  private bye(call: LimitedCall, from: string, to: LimitedCall['caller'], why: string): SipRequest {
    const contact = parseNameAddr(`<${to.contact}>`, 'contact', NameAddr).uri;
    if (isSipUri(contact)) contact.params.delete('alias');
    return createRequest({
      method: 'BYE',
      uri: contact.toString(),
      from,
      to: to.nameAddr,
      callId: call.callId,
      cseq: to.cseq + 1,
      route: to.route,
      headers: [['Reason', `SIP;cause=200;text="${why}"`]],
    });
  }
}
