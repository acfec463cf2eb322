// A relying party's callback for browser tests: a page on a free loopback port that only has to
// load, so a test can wait for the browser to arrive there and read the code from its URL.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export async function startRpCallback(): Promise<{ url: string; close(): void }> {
  const server = createServer((_req, res) => res.end('relying party'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/cb`, close: () => server.close() };
}
