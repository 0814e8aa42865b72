/**
 * The `--name=value` arguments of the RADIUS and rating benchmarks: split at the first '=' (a
 * value may hold more: --node-flags=--max-semi-space-size=32); a bare `--name` is 'true'.
 */
export function cliArgs(argv = process.argv.slice(2)): Record<string, string> {
  return Object.fromEntries(
    argv.map((a) => {
      const kv = a.replace(/^--/, '');
      const i = kv.indexOf('=');
      return i < 0 ? [kv, 'true'] : [kv.slice(0, i), kv.slice(i + 1)];
    }),
  );
}

/** `--node-flags="..."`: more node flags for the Switchboard child. */
export function nodeFlags(args: Record<string, string>): string[] {
  return (args['node-flags'] ?? '').split(' ').filter(Boolean);
}
