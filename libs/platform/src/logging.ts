import pino, { type Logger } from 'pino';
import { isTerminal } from './config';

export type { Logger };

export interface LoggingOptions {
  level: string;
  /** 'auto' is pretty on a terminal, JSON otherwise. */
  format?: 'auto' | 'json' | 'pretty';
  /** Where JSON lines go (tests); default stdout. */
  destination?: pino.DestinationStream;
}

/** The process logger: JSON lines (pino) carrying the process name; services take `.child({ service })`. */
export function createLogger(name: string, opts: LoggingOptions): Logger {
  const pretty = !opts.destination && (opts.format === 'pretty' || (opts.format !== 'json' && isTerminal()));
  const base = { level: opts.level, base: { name } };
  if (pretty) {
    return pino({
      ...base,
      transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } },
    });
  }
  return opts.destination ? pino(base, opts.destination) : pino(base);
}

/** A logger for one service in the process. Pass `callId` in log calls where there is one. */
export const serviceLogger = (root: Logger, service: string): Logger => root.child({ service });
