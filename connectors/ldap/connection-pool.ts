// A small pool of open LDAP connections. A login reuses an open (and, with StartTLS or LDAPS,
// already encrypted) connection instead of paying for TCP and TLS handshakes. Each connection
// remembers who it is bound as, so the service-account binds are only repeated after the same
// connection was used to check a user's password.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls, { type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { Client } from 'ldapts';

export interface PoolOptions {
  urls: string[];
  startTls: boolean;
  tls: { ca?: string | string[]; rejectUnauthorized: boolean; serverName?: string };
  connectTimeoutMs: number;
  timeoutMs: number;
  size: number;
  idleTimeoutMs: number;
}

/** A pooled connection; `boundAs` is the DN of its last successful bind ('' = anonymous). */
export interface PooledConnection {
  readonly client: Client;
  boundAs: string | null;
}

interface Slot extends PooledConnection {
  /** The socket under the client (the plain one under StartTLS): the connection is alive while it is open. */
  socket: net.Socket;
  idleSince: number;
}

const alive = (slot: Slot) => !slot.socket.destroyed && slot.socket.readyState === 'open';

/** Says goodbye politely when the connection is up, and always releases the socket. */
function discard(slot: Slot): Promise<void> {
  const bye = slot.client.isConnected ? slot.client.unbind().catch(() => {}) : Promise.resolve();
  return bye.finally(() => slot.socket.destroy());
}

/** Thrown when the directory cannot be reached or does not answer in time. */
export class DirectoryUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DirectoryUnavailable';
  }
}

export function loadCaBundle(tls: { caFile?: string | string[]; ca?: string }): string[] | undefined {
  const files = tls.caFile === undefined ? [] : Array.isArray(tls.caFile) ? tls.caFile : [tls.caFile];
  const pems = files.map((f) => {
    try {
      return readFileSync(f, 'utf8');
    } catch (err) {
      throw new Error(`tls.caFile: cannot read ${f} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  });
  if (pems.some((pem) => !pem.includes('-----BEGIN CERTIFICATE-----'))) throw new Error('tls.caFile: not a PEM certificate file');
  if (tls.ca) pems.push(tls.ca);
  return pems.length ? pems : undefined;
}

export class ConnectionPool {
  readonly #options: PoolOptions;
  readonly #idle: Slot[] = [];
  #open = 0;
  readonly #waiters: Array<{ resolve: (slot: Slot) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }> = [];
  readonly #reaper: NodeJS.Timeout;
  #closed = false;

  constructor(options: PoolOptions) {
    this.#options = options;
    this.#reaper = setInterval(() => this.#closeIdle(), Math.min(options.idleTimeoutMs, 30_000));
    this.#reaper.unref();
  }

  /**
   * Runs `fn` on a pooled connection. A connection whose operation failed at the transport level
   * is thrown away rather than returned; an LDAP error result (bad password, no such object)
   * leaves it usable. `prefer` picks an idle connection in the wanted state (bound as the service
   * account, or not) so steady-state logins need no rebinds; with none idle and room in the pool a
   * new connection is opened rather than taking one in the other state.
   */
  async use<T>(fn: (conn: PooledConnection) => Promise<T>, prefer?: (conn: PooledConnection) => boolean): Promise<T> {
    const slot = await this.#acquire(prefer);
    let healthy = true;
    try {
      return await fn(slot);
    } catch (err) {
      healthy = isLdapResult(err) && alive(slot);
      if (!healthy) throw asUnavailable(err);
      throw err;
    } finally {
      this.#release(slot, healthy);
    }
  }

  /**
   * A connection of its own, outside the pool's size, for a long paged search: OpenLDAP ties a
   * paging cookie to its connection and drops it when another search runs there in between.
   */
  async dedicated(): Promise<PooledConnection & { close(): Promise<void> }> {
    if (this.#closed) throw new DirectoryUnavailable('connection pool closed');
    const slot = await this.#connect();
    return Object.assign(slot, { close: () => discard(slot) });
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#reaper);
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new DirectoryUnavailable('connection pool closed'));
    }
    const idle = this.#idle.splice(0);
    this.#open -= idle.length;
    await Promise.all(idle.map(discard));
  }

  async #acquire(prefer?: (conn: PooledConnection) => boolean): Promise<Slot> {
    if (this.#closed) throw new DirectoryUnavailable('connection pool closed');
    this.#dropDead();
    const preferred = prefer ? this.#idle.findLastIndex((s) => prefer(s)) : this.#idle.length - 1;
    if (preferred >= 0) return this.#idle.splice(preferred, 1)[0]!;
    if (this.#open < this.#options.size) {
      this.#open += 1;
      try {
        return await this.#connect();
      } catch (err) {
        this.#open -= 1;
        this.#wakeWaiter();
        throw err;
      }
    }
    if (this.#idle.length) return this.#idle.pop()!;
    return new Promise<Slot>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.findIndex((w) => w.timer === timer);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new DirectoryUnavailable(`all ${this.#options.size} directory connections stayed busy for ${this.#options.timeoutMs} ms`));
      }, this.#options.timeoutMs);
      this.#waiters.push({ resolve, reject, timer });
    });
  }

  #release(slot: Slot, healthy: boolean): void {
    if (!healthy || this.#closed || !alive(slot)) {
      this.#open -= 1;
      void discard(slot);
      this.#wakeWaiter();
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.resolve(slot);
      return;
    }
    slot.idleSince = Date.now();
    this.#idle.push(slot);
  }

  /** A slot was freed without a connection to hand over: let the first waiter open one. */
  #wakeWaiter(): void {
    const waiter = this.#waiters.shift();
    if (!waiter) return;
    clearTimeout(waiter.timer);
    this.#open += 1;
    this.#connect().then(waiter.resolve, (err: Error) => {
      this.#open -= 1;
      waiter.reject(err);
    });
  }

  async #connect(): Promise<Slot> {
    const errors: string[] = [];
    for (const url of this.#options.urls) {
      let socket: net.Socket | undefined;
      try {
        const { hostname, port } = new URL(url);
        const host = hostname.replace(/^\[|\]$/g, '');
        const secure = /^ldaps:/i.test(url);
        socket = await this.#openSocket(host, Number(port) || (secure ? 636 : 389), secure);
        // ldapts gets this already-open socket. If it ever closes, ldapts' reconnect gets the same
        // dead socket back and fails: it can never quietly reconnect without TLS or unbound.
        const open = socket;
        const client = new Client({
          url,
          timeout: this.#options.timeoutMs,
          strictDN: false,
          createConnection: (() => open) as unknown as typeof net.connect,
          ...(secure ? { createSecureConnection: (() => open) as unknown as typeof tls.connect } : {}),
        });
        if (this.#options.startTls) await client.startTLS(this.#tlsOptions(host));
        return { client, socket, boundAs: null, idleSince: Date.now() };
      } catch (err) {
        socket?.destroy();
        errors.push(`${url}: ${(err as Error).message}`);
      }
    }
    throw new DirectoryUnavailable(`cannot connect to the directory (${errors.join('; ')})`);
  }

  /** A connected TCP (or TLS, for ldaps://) socket, or an error after connectTimeoutMs. */
  #openSocket(host: string, port: number, secure: boolean): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = secure ? tls.connect({ ...this.#tlsOptions(host), port }) : net.connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no connection within ${this.#options.connectTimeoutMs} ms`));
      }, this.#options.connectTimeoutMs);
      socket.once(secure ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      });
    });
  }

  #tlsOptions(host: string): ConnectionOptions {
    const { ca, rejectUnauthorized, serverName } = this.#options.tls;
    const name = serverName ?? host;
    return {
      ca,
      rejectUnauthorized,
      minVersion: 'TLSv1.2',
      // For StartTLS tls.connect() gets an existing socket and no host: name the peer explicitly,
      // or the certificate would be checked against "localhost".
      host,
      servername: net.isIP(name) ? undefined : name,
      ...(serverName ? { checkServerIdentity: (_h: string, cert: PeerCertificate) => tls.checkServerIdentity(serverName, cert) } : {}),
    };
  }

  /**
   * A connection the server closed would be silently re-opened by ldapts without StartTLS and
   * unbound: never reuse one.
   */
  #dropDead(): void {
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const slot = this.#idle[i]!;
      if (alive(slot)) continue;
      this.#idle.splice(i, 1);
      this.#open -= 1;
      void discard(slot);
    }
  }

  #closeIdle(): void {
    const cutoff = Date.now() - this.#options.idleTimeoutMs;
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const slot = this.#idle[i]!;
      if (slot.idleSince < cutoff || !alive(slot)) {
        this.#idle.splice(i, 1);
        this.#open -= 1;
        void discard(slot);
      }
    }
  }
}

/** An LDAP result code error (the server answered) as opposed to a transport failure. */
function isLdapResult(err: unknown): boolean {
  return typeof (err as { code?: unknown })?.code === 'number';
}

function asUnavailable(err: unknown): Error {
  if (err instanceof DirectoryUnavailable) return err;
  return new DirectoryUnavailable(`directory operation failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}
