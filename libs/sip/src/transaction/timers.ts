/** RFC 3261 §17 timer values (Table 4 of RFC 3261 §A, plus RFC 6026 Timers L and M). */

export interface TimerConfig {
  /** RTT estimate. Default 500 ms. */
  T1: number;
  /** Maximum retransmit interval for non-INVITE requests and INVITE responses. Default 4 s. */
  T2: number;
  /** Maximum duration a message remains in the network. Default 5 s. */
  T4: number;
  /** Timer D: wait time for response retransmits (unreliable). Default 32 s (> 32 s per RFC). */
  D: number;
  /**
   * Timers J, L and M: how long a transaction stays after its final response only to absorb
   * retransmissions (server non-INVITE Completed, server and client INVITE Accepted). Unset:
   * 64*T1, as RFC 3261 and RFC 6026 give them. Kamailio's tm keeps such transactions its
   * `wt_timer`, 5 s.
   */
  wait?: number;
  /** A server INVITE transaction sends 100 Trying if the TU sent no provisional within this (RFC 3261 §17.2.1). */
  trying100: number;
}

export const DEFAULT_TIMERS: Readonly<TimerConfig> = {
  T1: 500,
  T2: 4000,
  T4: 5000,
  D: 32_000,
  trying100: 200,
};

export function timerConfig(partial: Partial<TimerConfig> = {}): TimerConfig {
  return { ...DEFAULT_TIMERS, ...partial };
}

/** 64*T1: Timers B, F, H. */
export const txTimeout = (t: TimerConfig): number => 64 * t.T1;

/** Timers J, L, M: the configured wait, else 64*T1. */
export const waitTimeout = (t: TimerConfig): number => t.wait ?? 64 * t.T1;
