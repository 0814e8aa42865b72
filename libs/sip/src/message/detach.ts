/**
 * A copy of a string that does not hold on to the one it was cut from. The parser's fields
 * are slices of the whole message's text, and a key kept by a completed transaction (seconds,
 * thousands at a time) or a tracked digest nonce (up to 100,000) would keep that text alive.
 * V8 flattens a concatenation before it slices it, so the result holds only a string of its
 * own length (plus one); strings under 13 characters are copied anyway.
 */
export function detach(s: string): string {
  return s.length < 13 ? s : (s + ' ').slice(0, -1);
}
