// The connector plugin contract. A connector folder
// `connectors/<type>/index.ts` (or an npm package) default-exports a ConnectorPlugin.
// Connectors see no koa context, no knex, no templates: only their validated config,
// a scoped logger, fetch, and the narrow services below.
import type { Logger } from 'pino';
import type { ZodType } from 'zod';

/** One identity as an upstream asserted it, normalized. */
export interface UpstreamIdentity {
  connectorId: string;
  /** Stable upstream subject (entryUUID, objectGUID, OIDC sub, ...); never a username. */
  subject: string;
  username?: string;
  email?: string;
  emailVerified?: boolean;
  name?: string;
  givenName?: string;
  familyName?: string;
  groups?: string[];
  /** Raw attributes for mappers; must be JSON-serializable. */
  attributes?: Record<string, unknown>;
  /**
   * Authentication methods references (RFC 8176), e.g. ['pwd', 'otp'], as the upstream proved
   * them (OIDC: the verified ID token's `amr`; SAML: derived from the AuthnContextClassRef).
   * Bounded by `upstreamAmr` (src/connectors/upstream-authentication.ts).
   */
  amr?: string[];
  /**
   * The authentication context class the upstream reports (OIDC: the ID token's `acr`; SAML: the
   * validated assertion's AuthnContextClassRef), at most 256 characters. Informational until a
   * connector's policy lists it under `upstreamMfa.acr` (src/mfa/upstream-mfa.ts).
   */
  acr?: string;
  /**
   * The local user this identity is already known to be (the `local` connector's identities
   * are local users themselves). Redirect and directory connectors leave it unset and the
   * linking service decides.
   */
  localUserId?: string;
  /**
   * The `local` connector's read of the stored password it verified: when it was set and the
   * policy stamp it met, so that the policy check after the login needs no second read.
   */
  localPassword?: StoredPasswordFacts;
  /**
   * Tokens the upstream issued (OAuth 2.0 / OIDC connectors). The broker keeps them, encrypted,
   * only for connectors configured with `storeTokens: true`, and hands them back to `refresh`.
   */
  tokens?: UpstreamTokens;
  /**
   * The upstream's own session behind this login (SAML NameID and SessionIndex, an OIDC `sid`).
   * The broker keeps it with its login session so that logging out of Keybridge can end the
   * upstream session (`logout.start`) and an upstream logout request can end ours. `subject`
   * and `id` are what the upstream names in its logout requests; `data` is opaque to the broker.
   */
  upstreamSession?: UpstreamSession;
}

export interface UpstreamSession {
  /** Who the upstream says is logged in (SAML NameID value). */
  subject: string;
  /** The upstream's id of this session (SAML SessionIndex), when it has one. */
  id?: string;
  /** Whatever the connector needs to end the session later; JSON-serializable. */
  data: Record<string, unknown>;
}

/** What an OAuth 2.0 upstream issued for one login; refreshed (and rotated) by `refresh`. */
export interface UpstreamTokens {
  accessToken: string;
  refreshToken?: string;
  idToken?: string;
  /** Seconds since the epoch when the access token expires. */
  expiresAt?: number;
  scope?: string;
}

/** Why a login or refresh did not succeed. A wrong password is a result, not an exception. */
export type FailureReason =
  | 'invalid_credentials'
  | 'account_disabled'
  | 'account_locked'
  | 'account_expired'
  | 'password_expired'
  | 'password_change_required'
  | 'not_permitted'
  | 'user_gone'
  | 'reauth_needed'
  /** The person declined or cancelled at the upstream. */
  | 'access_denied'
  /** The upstream answered with an error or something that failed validation. */
  | 'upstream_error';

export type LoginResult =
  | { ok: true; identity: UpstreamIdentity }
  | { ok: false; reason: FailureReason; /** logged, never shown */ detail?: string };

export type RefreshResult = LoginResult;

/** What the broker offers the built-in local connector (and only it). */
export interface LocalAccounts {
  /** Look a local user up for login: an identifier with `@` by email, any other by username key (RFC 8265: case and Unicode compatibility forms fold). */
  findForLogin(login: string): Promise<LocalAccount | null>;
  findById(id: string): Promise<LocalAccount | null>;
}

/** When a stored password was set (epoch ms) and the stamp of the policy rules it was last found to meet. */
export interface StoredPasswordFacts {
  changedAt: number;
  policyChecked: string | null;
}

export interface LocalAccount {
  id: string;
  username: string;
  email: string | null;
  emailVerified: boolean;
  name: string | null;
  givenName: string | null;
  familyName: string | null;
  enabled: boolean;
  groups: string[];
  passwordHash: string | null;
  /** Read with the hash; null without a password. */
  passwordFacts: StoredPasswordFacts | null;
}

/** One-time use of message ids across every broker instance (SAML assertion replay guard). */
export interface ReplayGuard {
  /** Records `key` as used until `expiresAt`; false when it was used before (on any instance). */
  firstUse(key: string, expiresAt: Date): Promise<boolean>;
}

export interface ConnectorUrls {
  /** Where the upstream sends the browser back after a login: OAuth redirect_uri, SAML ACS. */
  callback: string;
  /** Where the upstream sends logout requests and responses (SAML SLO). */
  logout: string;
  /** Where the broker serves `metadata()` (SAML SP metadata; also the default SAML entity ID). */
  metadata: string;
}

export interface ConnectorContext<C> {
  id: string;
  name: string;
  config: C;
  logger: Logger;
  fetch: typeof fetch;
  /** This connector's public endpoints on the broker (issuer-based). */
  urls: ConnectorUrls;
  services: { localAccounts: LocalAccounts; replayGuard: ReplayGuard };
}

/** One user as a directory lists it for an import. */
export interface SyncedUser {
  identity: UpstreamIdentity;
  /** The upstream would refuse this user's login (disabled, expired, locked): import it disabled. */
  blocked: FailureReason | null;
}

/**
 * Optional capability of directory connectors (LDAP, AD): list every user so the broker can
 * import them into the local store (user federation), page by page, never all at once.
 */
export interface DirectorySync {
  /** Minutes between imports run by the broker itself; 0 means only on demand (CLI). */
  intervalMinutes: number;
  /** Disable local users whose upstream entry is gone. */
  disableRemoved: boolean;
  /** How many users listUsers will yield, for progress; may be approximate. */
  countUsers?(): Promise<number>;
  listUsers(): AsyncIterable<SyncedUser[]>;
  /** Every group name, so groups without members exist locally too. */
  listGroups?(): Promise<string[]>;
}

/** The broker's login session a refresh token belongs to. */
export interface RefreshLogin {
  /** When the person last signed in at the upstream for this session. */
  authenticatedAt: Date;
}

interface ConnectorBase {
  /**
   * Re-check an identity on refresh-token use; absent means "refresh always allowed". The
   * identity carries the stored upstream `tokens` when the broker keeps them; an ok result may
   * carry new (rotated) tokens, which replace the stored ones. An upstream that revoked the
   * grant is `{ ok: false, reason: 'reauth_needed' }`; only an unreachable upstream throws.
   * The broker never runs two refreshes of one identity at once.
   */
  refresh?(identity: UpstreamIdentity, login?: RefreshLogin): Promise<RefreshResult>;
  /** Present when the upstream can be imported (user federation). */
  sync?: DirectorySync;
  /**
   * Optional capability: checks that the upstream is reachable and the config works (LDAP: bind
   * as the service account and search one user; OIDC: discovery and JWKS; SAML: metadata and
   * certificate expiry; OAuth 2.0: endpoints reachable), for operators (admin API, CLI). It
   * never throws: a failure is a report with `ok: false` naming the failing step.
   */
  test?(): Promise<ConnectorTestReport>;
  /** Release sockets, timers, pools. */
  close?(): Promise<void>;
}

export interface PasswordConnector extends ConnectorBase {
  kind: 'password';
  /** Label of the username field on the login form. */
  usernameLabel?: string;
  login(username: string, password: string): Promise<LoginResult>;
}

export interface RedirectStart {
  /** Where to send the browser. */
  location: string;
  /**
   * Send the browser as a POST of these fields to `location` instead of a redirect (SAML
   * HTTP-POST binding); the broker renders a self-submitting form.
   */
  form?: Record<string, string>;
  /** Kept server-side by the broker (single use, expires) and handed back to callback: PKCE verifier, nonce, request id. */
  context: Record<string, unknown>;
}

export interface RedirectConnector extends ConnectorBase {
  kind: 'redirect';
  /**
   * `state` is the broker's opaque, unguessable handle for this attempt; the connector must make
   * the upstream send it back to `callbackUrl` as the `state` parameter (OAuth) or `RelayState`
   * (SAML). The broker finds the attempt by it, uses it once, and binds it to the browser.
   */
  start(input: { callbackUrl: string; state: string }): Promise<RedirectStart>;
  callback(input: {
    callbackUrl: string;
    /** How the upstream sent the browser back: GET (query) or POST (form_post, SAML POST binding). */
    method?: 'GET' | 'POST';
    /** Query or form parameters the upstream sent back (state included). */
    params: Record<string, string>;
    context: Record<string, unknown>;
    /**
     * No attempt of this broker matches: an upstream-initiated (SAML IdP-initiated) login. Only
     * sent to connectors that set `unsolicited`; `context` is empty.
     */
    unsolicited?: boolean;
  }): Promise<LoginResult>;
  /**
   * Present when this connector accepts logins the upstream starts on its own (SAML
   * IdP-initiated SSO). The signed-in person is sent to this client's `initiateLoginUri`.
   */
  unsolicited?: { client: string };
  /** Single logout with the upstream. */
  logout?: UpstreamLogout;
  /** A document the upstream needs about this broker (SAML SP metadata), served at /connectors/<id>/metadata. */
  metadata?(urls: { callbackUrl: string; logoutUrl: string }): { contentType: string; body: string };
}

/** Single logout between the broker and an upstream (SAML SLO). */
export interface UpstreamLogout {
  /**
   * Logging out of Keybridge: where to send the browser so the upstream ends its session too
   * (answering at `returnUrl` with `state` echoed); null when the upstream has no logout endpoint.
   */
  start(input: { session: UpstreamSession; returnUrl: string; state: string }): Promise<RedirectStart | null>;
  /** A message the upstream sent to `returnUrl`: its answer to `start`, or its own logout request. */
  receive(input: {
    returnUrl: string;
    method: 'GET' | 'POST';
    params: Record<string, string>;
    /** The raw query string as received (signatures of the SAML Redirect binding cover it). */
    query: string;
  }): Promise<LogoutMessage>;
}

export type LogoutMessage =
  /** The upstream's answer to our `start`; `state` is what `start` was given. */
  | { kind: 'response'; state: string | null; ok: boolean; detail?: string }
  /**
   * The upstream ends a session (IdP-initiated logout): the broker ends every login session of
   * this connector with that upstream subject (and one of `sessionIds`, when given), then sends
   * the browser where `respond` says.
   */
  | { kind: 'request'; subject: string; sessionIds: string[] | null; respond(ended: boolean): Promise<RedirectStart> }
  /** Not acceptable (bad signature, wrong destination, unknown issuer...); logged, audited, refused. */
  | { kind: 'invalid'; detail: string };

export type Connector = PasswordConnector | RedirectConnector;

/** One step of a connector test, in the order it ran. */
export interface ConnectorTestStep {
  /** `connect`, `bind`, `search`, `discovery`, `jwks`, `metadata`, `certificate`, ... */
  name: string;
  ok: boolean;
  /** What it found or why it failed; never a secret. */
  detail: string;
  /** The config field most likely at fault when it failed (`bindDn`, `users.baseDn`), relative to `config`. */
  field?: string;
  ms: number;
}

/** What a connector test found: `ok` when every step passed; `found` holds the facts (counts, names, dates). */
export interface ConnectorTestReport {
  ok: boolean;
  steps: ConnectorTestStep[];
  found: Record<string, unknown>;
}

/** A named starting point for a type's config (OIDC: Google, Entra ID; OAuth 2.0: GitHub). */
export interface ConnectorPreset {
  /** Stable name (the config's `preset:` value where the type has one). */
  name: string;
  label: string;
  /** The config a new connector of this preset starts from (never a secret). */
  config: Record<string, unknown>;
  /** What else the operator must fill in, in a sentence. */
  hint?: string;
  /** Top-level config fields that do not apply with this preset (another preset's own); forms hide them. */
  hide?: readonly string[];
}

/** What a type is, for people choosing one; data only, read without creating a connector. */
export interface ConnectorTypeAbout {
  label: string;
  /** Its connectors implement `test()`. */
  test: boolean;
  /** Its connectors offer `sync` (directory import). */
  sync: boolean;
  presets?: readonly ConnectorPreset[];
}

export interface ConnectorPlugin<C = unknown> {
  /** Same word as the folder name and the config `type:`. */
  type: string;
  /** Validates the connector's `config:` block; unknown keys must be rejected. */
  configSchema: ZodType<C>;
  /**
   * The config fields that are secrets (`bindPassword`, `clientSecret`, `sp.privateKey`), as
   * dotted paths into `config:`. For connectors stored in the database the broker keeps these
   * encrypted (secrets.tokenKeys) apart from the rest of the config, never returns them through
   * the admin API or the CLI, and masks them in the audit log; an update that omits one keeps the
   * stored value. A plugin with secrets it does not list here leaks them to administrators.
   */
  secretFields?: readonly string[];
  /**
   * How operators' tools (the admin console, GET /admin/api/v1/connector-types) present this
   * type. Absent: the type name as label, no presets, and neither `test` nor `sync` announced.
   */
  about?: ConnectorTypeAbout;
  create(context: ConnectorContext<C>): Connector | Promise<Connector>;
}
