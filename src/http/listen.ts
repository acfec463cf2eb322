// Opens an HTTP server on a configured `host:port` (`[::1]:port` for IPv6) and says where it
// listens: the broker's public listener and the separate metrics listener alike.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';

function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1', port: Number(listen.slice(i + 1)) };
}

/** Listens on `listen`; resolves with the base URL (`http://host:port`), rejects if the address is taken. */
export async function listenOn(server: http.Server, listen: string): Promise<string> {
  const { host, port } = parseListen(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
}
