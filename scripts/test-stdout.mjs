// Loaded into every spec file's process (scripts/test.mjs passes it to `node --test` with --import,
// which the runner hands on to the processes it starts). A spec file's process reports its results
// to the runner over stdout, a pipe; with --test-force-exit it ends with process.exit(), which drops
// what is still queued on a non-blocking pipe: the last results of the file vanish from the count
// and the run still passes (nodejs/node#64833). Blocking writes leave nothing queued.
process.stdout._handle?.setBlocking?.(true);
