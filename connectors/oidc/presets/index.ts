// Every preset by the name `preset:` takes, and the generic (no preset) defaults.
import type { OidcPreset } from '../oidc-preset.ts';
import { applePreset } from './apple.ts';
import { auth0Preset } from './auth0.ts';
import { entraPreset } from './entra.ts';
import { gitlabPreset } from './gitlab.ts';
import { googlePreset } from './google.ts';
import { keycloakPreset } from './keycloak.ts';
import { oktaPreset } from './okta.ts';

export const PRESET_NAMES = ['google', 'entra', 'gitlab', 'apple', 'okta', 'auth0', 'keycloak'] as const;

export const OIDC_PRESETS: Record<(typeof PRESET_NAMES)[number], OidcPreset> = {
  google: googlePreset,
  entra: entraPreset,
  gitlab: gitlabPreset,
  apple: applePreset,
  okta: oktaPreset,
  auth0: auth0Preset,
  keycloak: keycloakPreset,
};

/** How operators' tools name each preset, and what they must add to its config. */
export const PRESET_LABELS: Record<(typeof PRESET_NAMES)[number], { label: string; hint: string }> = {
  google: { label: 'Google', hint: 'clientId and clientSecret from the Google Cloud console; allowedDomains for Workspace.' },
  entra: { label: 'Microsoft Entra ID', hint: 'tenant (the tenant id, a GUID; or organizations / common with allowedTenants), clientId and clientSecret.' },
  gitlab: { label: 'GitLab', hint: 'clientId and clientSecret; baseUrl for a self-managed GitLab.' },
  apple: { label: 'Sign in with Apple', hint: 'clientId (the Services ID), teamId, keyId and the privateKey.' },
  okta: { label: 'Okta', hint: 'domain, clientId and clientSecret.' },
  auth0: { label: 'Auth0', hint: 'domain, clientId and clientSecret.' },
  keycloak: { label: 'Keycloak', hint: 'baseUrl, realm, clientId and clientSecret.' },
};

/** Any OpenID provider by its issuer. */
export const genericPreset: OidcPreset = {
  fields: [],
  scopes: ['openid', 'profile', 'email'],
};
