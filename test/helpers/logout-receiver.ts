// A client's back-channel logout endpoint (OIDC Back-Channel Logout 1.0): keeps every
// logout_token POSTed to it, answers 200.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LogoutReceiver {
  /** The endpoint's URL (any path on it works). */
  url: string;
  /** logout_token values received, oldest first; clear with `tokens.length = 0`. */
  tokens: string[];
  close(): void;
}

export async function startLogoutReceiver(path = '/backchannel'): Promise<LogoutReceiver> {
  const tokens: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const token = new URLSearchParams(body).get('logout_token');
      if (token) tokens.push(token);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`, tokens, close: () => server.close() };
}
