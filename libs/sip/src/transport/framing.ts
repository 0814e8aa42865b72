/**
 * Adapters from the message layer to the transport: the StreamFramer
 * (Content-Length framing, RFC 5626 CRLF keep-alives) and parseMessage.
 */
import { StreamFramer, parseMessage, type SipRequest, type SipResponse } from '../message';
import type { FramerFactory } from './connection';

/** Frames TCP/TLS streams with the message layer's StreamFramer; a framing error closes the connection. */
export const defaultFramer: FramerFactory = (sink, maxMessageSize) => {
  const f = new StreamFramer(
    { onMessage: sink.message, onPing: sink.ping },
    { maxBuffer: maxMessageSize + 4096 },
  );
  return {
    push(chunk: Buffer): void {
      try {
        f.push(chunk);
      } catch (err) {
        sink.error(err as Error, chunk);
      }
    },
  };
};

const STREAM = { transport: 'stream' } as const;
const DATAGRAM = { transport: 'datagram' } as const;

/** Parses with the message layer: streams need Content-Length, datagrams and WebSocket frames are bounded. */
export function parseSip(buf: Buffer, stream: boolean): SipRequest | SipResponse {
  return parseMessage(buf, stream ? STREAM : DATAGRAM);
}
