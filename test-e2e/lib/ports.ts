import { createServer } from 'node:net';

/** A port the kernel just handed out on 127.0.0.1 (released again for the caller to bind). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}
