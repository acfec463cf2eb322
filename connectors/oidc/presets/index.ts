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

/** Any OpenID provider by its issuer. */
export const genericPreset: OidcPreset = {
  fields: [],
  scopes: ['openid', 'profile', 'email'],
};
