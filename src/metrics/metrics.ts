// One broker instance's Prometheus series, in its own registry (tests and embedders run several
// brokers in one process; the prom-client global registry would mix them up). Every label value
// comes from a bounded set: route patterns, known connector ids, code-defined event types and
// OAuth error codes; anything else is `other`, so no request can grow the label space.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type Provider from 'oidc-provider';
import type { Knex } from 'knex';
import type { Database } from '../storage/database.ts';
import type { AuditListener } from '../storage/audit-repository.ts';
import type { NewAuditEvent } from '../storage/types.ts';
import type { ConnectorCallObserver } from '../connectors/registry.ts';
import { processMetrics } from './process-metrics.ts';

const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const GRANT_TYPES = new Set([
  'authorization_code',
  'refresh_token',
  'client_credentials',
  'urn:ietf:params:oauth:grant-type:device_code',
  'urn:ietf:params:oauth:grant-type:token-exchange',
  'urn:openid:params:grant-type:ciba',
]);
const OAUTH_ERRORS = new Set([
  'invalid_request', 'invalid_client', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope',
  'invalid_target', 'invalid_dpop_proof', 'use_dpop_nonce', 'authorization_pending', 'slow_down', 'access_denied',
  'expired_token', 'server_error', 'temporarily_unavailable', 'invalid_token', 'insufficient_scope', 'invalid_authorization_details',
]);
// Event types and reasons are written by our own code; the cap only guards against a future bug.
const CODE_WORD = /^[a-z][a-z0-9_.-]{0,63}$/;
const MAX_EVENT_TYPES = 200;

const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const UPSTREAM_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

interface HttpSeries {
  count: { inc(): void };
  duration: { observe(value: number): void };
}

export class BrokerMetrics {
  readonly registry = new Registry();
  readonly #connectors = new Set<string>();
  readonly #eventTypes = new Set<string>();
  readonly #http = new Map<string, HttpSeries>();
  readonly #pools: { name: string; knex: Knex }[] = [];

  readonly #httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly #httpDuration: Histogram<'method' | 'route'>;
  readonly #auditEvents: Counter<'type' | 'outcome'>;
  readonly #logins: Counter<'connector' | 'outcome'>;
  readonly #throttles: Counter<'type'>;
  readonly #grants: Counter<'grant_type'>;
  readonly #grantErrors: Counter<'grant_type' | 'error'>;
  readonly #refreshDenied: Counter;
  readonly #upstreamRefreshDenied: Counter<'connector' | 'reason'>;
  readonly #upstreamDuration: Histogram<'connector' | 'operation' | 'outcome'>;
  readonly #upstreamErrors: Counter<'connector' | 'operation'>;

  constructor() {
    const registers = [this.registry];
    this.#httpRequests = new Counter({ name: 'keybridge_http_requests_total', help: 'HTTP requests by method, route pattern and status.', labelNames: ['method', 'route', 'status'], registers });
    this.#httpDuration = new Histogram({ name: 'keybridge_http_request_duration_seconds', help: 'HTTP request latency by method and route pattern.', labelNames: ['method', 'route'], buckets: HTTP_BUCKETS, registers });
    this.#auditEvents = new Counter({ name: 'keybridge_audit_events_total', help: 'Audit events recorded, by type and outcome.', labelNames: ['type', 'outcome'], registers });
    this.#logins = new Counter({ name: 'keybridge_logins_total', help: 'Login attempts by connector and outcome (the login.* audit events).', labelNames: ['connector', 'outcome'], registers });
    this.#throttles = new Counter({ name: 'keybridge_throttled_total', help: 'Throttled attempts and account lockouts (the *.throttled and *.locked audit events).', labelNames: ['type'], registers });
    this.#grants = new Counter({ name: 'keybridge_token_grants_total', help: 'Tokens issued at the token endpoint, by grant type.', labelNames: ['grant_type'], registers });
    this.#grantErrors = new Counter({ name: 'keybridge_token_grant_errors_total', help: 'Token endpoint requests refused, by grant type and OAuth error code.', labelNames: ['grant_type', 'error'], registers });
    this.#refreshDenied = new Counter({ name: 'keybridge_token_refresh_denied_total', help: 'Refresh token grants refused (invalid_grant: expired, revoked, reused, or the upstream re-check said no).', registers });
    this.#upstreamRefreshDenied = new Counter({ name: 'keybridge_upstream_refresh_denied_total', help: 'Refreshes refused because the upstream re-check failed, by connector and reason.', labelNames: ['connector', 'reason'], registers });
    this.#upstreamDuration = new Histogram({ name: 'keybridge_upstream_request_duration_seconds', help: 'Connector calls to upstreams by connector, operation and outcome.', labelNames: ['connector', 'operation', 'outcome'], buckets: UPSTREAM_BUCKETS, registers });
    this.#upstreamErrors = new Counter({ name: 'keybridge_upstream_errors_total', help: 'Connector calls that threw or got an invalid upstream answer, by connector and operation.', labelNames: ['connector', 'operation'], registers });

    const pools = this.#pools;
    new Gauge({
      name: 'keybridge_db_pool_connections',
      help: 'Database pool connections by pool (main, artifacts) and state (used, free, pending_acquires, pending_creates).',
      labelNames: ['pool', 'state'],
      registers,
      collect() {
        this.reset();
        for (const { name, knex } of pools) {
          const pool = poolOf(knex);
          if (!pool) continue;
          this.set({ pool: name, state: 'used' }, pool.numUsed());
          this.set({ pool: name, state: 'free' }, pool.numFree());
          this.set({ pool: name, state: 'pending_acquires' }, pool.numPendingAcquires());
          this.set({ pool: name, state: 'pending_creates' }, pool.numPendingCreates());
        }
      },
    });
    new Gauge({
      name: 'keybridge_db_pool_max',
      help: 'Largest size of each database pool.',
      labelNames: ['pool'],
      registers,
      collect() {
        this.reset();
        for (const { name, knex } of pools) {
          const pool = poolOf(knex);
          if (pool) this.set({ pool: name }, pool.max);
        }
      },
    });
  }

  /** The connector ids labels may carry; any other id (a random /callback/<x>) is `other`. */
  setConnectors(ids: Iterable<string>): void {
    for (const id of ids) this.#connectors.add(id);
  }

  /** Pool gauges for both knex instances; PGlite shares one (one connection), reported once as `main`. */
  watchDatabase(database: Pick<Database, 'knex' | 'artifacts'>): void {
    this.#pools.push({ name: 'main', knex: database.knex });
    if (database.artifacts !== database.knex) this.#pools.push({ name: 'artifacts', knex: database.artifacts });
  }

  /** The hot path: one map lookup and two increments per request, no per-request label objects. */
  recordHttp(method: string, route: string, status: number, seconds: number): void {
    const m = HTTP_METHODS.has(method) ? method : 'OTHER';
    const key = `${m} ${status} ${route}`;
    let series = this.#http.get(key);
    if (!series) {
      series = { count: this.#httpRequests.labels(m, route, String(status)), duration: this.#httpDuration.labels(m, route) };
      this.#http.set(key, series);
    }
    series.count.inc();
    series.duration.observe(seconds);
  }

  /** Counts audit events as the store records them, so the metrics cannot drift from the trail. */
  readonly onAuditRecord: AuditListener = (events) => {
    for (const event of events) this.#countAudit(event);
  };

  /** For the connector registry: upstream call latency and errors. */
  readonly observeConnectorCall: ConnectorCallObserver = (connectorId, operation, outcome, seconds) => {
    const connector = this.#connector(connectorId);
    this.#upstreamDuration.observe({ connector, operation, outcome }, seconds);
    if (outcome === 'error' || outcome === 'upstream_error') this.#upstreamErrors.inc({ connector, operation });
  };

  /** Token grants from oidc-provider's events (each provider instance; keys reload rebuilds it). */
  observeProvider(provider: Provider): void {
    const on = provider.on.bind(provider) as (event: string, listener: (ctx: GrantContext, err?: { error?: unknown }) => void) => void;
    on('grant.success', (ctx) => this.#grants.inc({ grant_type: grantTypeOf(ctx) }));
    on('grant.error', (ctx, err) => {
      const grantType = grantTypeOf(ctx);
      const error = typeof err?.error === 'string' && OAUTH_ERRORS.has(err.error) ? err.error : 'other';
      this.#grantErrors.inc({ grant_type: grantType, error });
      if (grantType === 'refresh_token' && error === 'invalid_grant') this.#refreshDenied.inc();
    });
  }

  /** The exposition text: this instance's series, then the process's. */
  async render(): Promise<string> {
    const [own, process] = await Promise.all([this.registry.metrics(), processMetrics().metrics()]);
    return `${own}\n${process}`;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  #countAudit(event: NewAuditEvent): void {
    const type = this.#eventType(event.type);
    this.#auditEvents.inc({ type, outcome: event.outcome === 'failure' ? 'failure' : 'success' });
    if (type.startsWith('login.')) this.#logins.inc({ connector: this.#connector(event.connectorId), outcome: type.slice('login.'.length) });
    if (type.endsWith('.throttled') || type.endsWith('.locked')) this.#throttles.inc({ type });
    if (type === 'token.refresh_denied') {
      const reason = event.details?.reason;
      this.#upstreamRefreshDenied.inc({ connector: this.#connector(event.connectorId), reason: typeof reason === 'string' && CODE_WORD.test(reason) ? reason : 'other' });
    }
  }

  #eventType(type: string): string {
    if (this.#eventTypes.has(type)) return type;
    if (!CODE_WORD.test(type) || this.#eventTypes.size >= MAX_EVENT_TYPES) return 'other';
    this.#eventTypes.add(type);
    return type;
  }

  #connector(id: string | null | undefined): string {
    if (!id) return 'none';
    return this.#connectors.has(id) ? id : 'other';
  }
}

interface GrantContext {
  oidc?: { params?: { grant_type?: unknown } };
  request?: { body?: unknown };
}

function grantTypeOf(ctx: GrantContext): string {
  const body = ctx.request?.body as { grant_type?: unknown } | undefined;
  const value = ctx.oidc?.params?.grant_type ?? body?.grant_type;
  if (typeof value !== 'string' || !value) return 'none';
  return GRANT_TYPES.has(value) ? value : 'other';
}

interface TarnPool {
  max: number;
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
  numPendingCreates(): number;
}

function poolOf(knex: Knex): TarnPool | null {
  const pool = (knex.client as { pool?: Partial<TarnPool> } | undefined)?.pool;
  return pool && typeof pool.numUsed === 'function' ? (pool as TarnPool) : null;
}
