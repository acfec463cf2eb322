// What a preset is: data over the generic `oidc` connector (issuer, scopes, claim names,
// defaults) plus the few hooks an upstream's quirks need. Presets never copy the protocol code.
import type { ClaimNames, OidcConfig, ResolvedOidcConfig, ResponseMode, TokenAuthMethod, UserinfoMode } from './oidc-config.ts';

export type Claims = Record<string, unknown>;

/** Reports one config problem at a path relative to the connector's `config:` block. */
export type ReportIssue = (path: Array<string | number>, message: string) => void;

/** Calls an API of the upstream with the login's access token (Microsoft Graph). */
export type CallWithAccessToken = (url: URL, method: string, body?: string, headers?: Record<string, string>) => Promise<Response>;

export interface OidcPreset {
  /** Config keys that belong to this preset; with any other preset (or none) they are refused. */
  fields: readonly (keyof OidcConfig)[];
  /** Of those, the ones the preset cannot do without. */
  required?: readonly (keyof OidcConfig)[];
  /** Issuer used when `issuer` is not configured. */
  defaultIssuer?: string;
  /** The issuer built from the preset's own fields; `issuer` is then refused (set those fields). */
  issuer?(c: OidcConfig): string;
  /** Which fields `issuer` is built from, for the config error. */
  issuerFrom?: string;
  scopes: readonly string[];
  claims?: Partial<ClaimNames>;
  userinfo?: UserinfoMode;
  responseMode?: ResponseMode;
  /** The only client authentication the upstream takes. */
  tokenAuthMethod?: TokenAuthMethod;
  /** allowedDomains is checked against this claim (Google's `hd`) instead of the verified email's domain. */
  domainClaim?: string;
  /** Checks across the preset's fields; runs even when other fields failed, so reads defensively. */
  check?(c: Partial<Record<keyof OidcConfig, unknown>>, issue: ReportIssue): void;
  hooks?: PresetHooks;
}

export interface PresetHooks {
  /**
   * What the discovery document's `issuer` says when it is not the configured issuer: Entra's
   * multi-tenant `{tenantid}` template, resolved per token from its `tid`.
   */
  issuerTemplate?(c: ResolvedOidcConfig): string | undefined;
  /** Extra authorization request parameters (Google's `hd`). */
  authParams?(c: ResolvedOidcConfig): Record<string, string>;
  /** A client secret made rather than configured (Apple signs one); asked before every token request. Throws on bad key material. */
  clientSecret?(c: ResolvedOidcConfig): () => Promise<string>;
  /** Claims the upstream sends beside the code rather than in tokens (Apple's `user`); lowest precedence. */
  callbackClaims?(params: Record<string, string>): Claims;
  /** Why a verified identity is not let in (tenant checks), or null. */
  refuse?(claims: Claims, c: ResolvedOidcConfig): string | null;
  /** Groups the tokens only point to (Entra's overage), or undefined to keep the mapped claim. */
  groups?(claims: Claims, call: CallWithAccessToken, c: ResolvedOidcConfig): Promise<string[] | undefined>;
}
