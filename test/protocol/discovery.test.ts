// Discovery advertises only what Keybridge's clients can use: the code flow (no implicit or
// hybrid response types), the grants clients can be configured with, shared-secret and public
// client authentication (no JWT client auth). An RP that picks its options from discovery
// (openid-client, express-openid-connect) then works, and one that insists on id_token is told
// plainly.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { Browser } from '../helpers/browser.ts';
import { signIn } from '../helpers/login-flow.ts';

const RP = 'http://127.0.0.1:9/cb'; // never contacted: the browser stops at the RP's origin
const SECRET = 'Wq7Lp2Xz9Kr4Mv8Bn3Ht6Yc1Jd5Gf0Sa';

describe('discovery', () => {
  let broker: TestBroker;
  let meta: Record<string, unknown>;

  before(async () => {
    broker = await startTestBroker({
      config: {
        clients: [
          { id: 'web', secret: SECRET, redirectUris: [RP], grantTypes: ['authorization_code', 'refresh_token'], firstParty: true },
          { id: 'post', secret: SECRET.split('').reverse().join(''), tokenEndpointAuthMethod: 'client_secret_post', redirectUris: [RP], firstParty: true },
          { id: 'spa', redirectUris: [RP], firstParty: true },
          { id: 'tv', grantTypes: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'] },
          { id: 'svc', secret: `${SECRET}x`, grantTypes: ['client_credentials'] },
        ],
        users: [{ username: 'alice', password: 'alice-password-1', email: 'alice@example.org' }],
      },
    });
    meta = await (await fetch(`${broker.issuer}/.well-known/openid-configuration`)).json();
  });

  after(async () => {
    await broker?.close();
  });

  test('advertises only the code response type, the usable grants and client auth methods', () => {
    assert.deepEqual(meta.response_types_supported, ['code']);
    assert.deepEqual([...(meta.grant_types_supported as string[])].sort(), ['authorization_code', 'client_credentials', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code']);
    assert.ok(!(meta.grant_types_supported as string[]).includes('implicit'));
    assert.deepEqual([...(meta.token_endpoint_auth_methods_supported as string[])].sort(), ['client_secret_basic', 'client_secret_post', 'none', 'private_key_jwt']);
    // private_key_jwt only: no HMAC (client_secret_jwt), whose key would be the client secret.
    assert.deepEqual([...(meta.token_endpoint_auth_signing_alg_values_supported as string[])].sort(), ['ES256', 'EdDSA', 'Ed25519', 'PS256', 'RS256'].sort());
    for (const mode of meta.response_modes_supported as string[]) assert.doesNotMatch(mode, /jwt|web_message/);
    assert.ok((meta.response_modes_supported as string[]).includes('query'));
  });

  test('an openid-client RP configured from discovery signs in with the code flow', async () => {
    const rp = await oidc.discovery(new URL(broker.issuer), 'web', SECRET, undefined, { execute: [oidc.allowInsecureRequests] });
    const verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(rp, { redirect_uri: RP, scope: 'openid email', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state: 'st', nonce: 'nn' });
    const callback = await signIn(new Browser(broker.issuer), url.href, { username: 'alice', password: 'alice-password-1' });
    const tokens = await oidc.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedState: 'st', expectedNonce: 'nn' });
    assert.equal(tokens.claims()!.email, 'alice@example.org');

    // client_secret_post, as advertised, works too.
    const post = await oidc.discovery(new URL(broker.issuer), 'post', SECRET.split('').reverse().join(''), oidc.ClientSecretPost(), { execute: [oidc.allowInsecureRequests] });
    const v2 = oidc.randomPKCECodeVerifier();
    const url2 = oidc.buildAuthorizationUrl(post, { redirect_uri: RP, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(v2), code_challenge_method: 'S256', state: 's2' });
    const callback2 = await signIn(new Browser(broker.issuer), url2.href, { username: 'alice', password: 'alice-password-1' });
    assert.ok((await oidc.authorizationCodeGrant(post, new URL(callback2), { pkceCodeVerifier: v2, expectedState: 's2' })).access_token);
  });

  test('an RP asking for id_token (express-openid-connect\'s default) is refused with unsupported_response_type', async () => {
    for (const responseType of ['id_token', 'code id_token', 'none']) {
      const url = new URL(`${broker.issuer}/auth`);
      url.search = new URLSearchParams({ client_id: 'web', response_type: responseType, response_mode: 'form_post', redirect_uri: RP, scope: 'openid', nonce: 'n', state: 's' }).toString();
      const res = await new Browser(broker.issuer).go(url.href);
      assert.match(res.html, /unsupported_response_type/, `${responseType}: ${res.status} ${res.html.slice(0, 200)}`);
    }
  });

  test('a client_secret_jwt assertion is not accepted at the token endpoint', async () => {
    const res = await fetch(`${broker.issuer}/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'svc', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: 'eyJhbGciOiJIUzI1NiJ9.e30.x' }),
    });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: string }).error, 'invalid_client');
  });
});
