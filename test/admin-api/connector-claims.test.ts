// Claims that a stored connector's mappers issue reach the provider's claims configuration
// without a restart: a connector created through the admin API with a claim mapper under a new
// scope makes discovery offer that scope and claim (so clients can ask for it and tokens carry
// it, as for config connectors: test/protocol/federated-login.test.ts), and deleting it takes
// them away again.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBroker, type TestBroker } from '../helpers/test-broker.ts';
import { AdminApiClient, adminClientConfig, clientToken } from '../helpers/admin-api.ts';
import { within } from '../helpers/login-page-connectors.ts';

describe('claim mappers of stored connectors', () => {
  let broker: TestBroker;
  let api: AdminApiClient;

  before(async () => {
    broker = await startTestBroker({ config: { clients: [adminClientConfig('ops')], connectors: [{ id: 'local', type: 'local' }] } });
    api = new AdminApiClient(broker.issuer, await clientToken(broker.issuer, 'ops', 'admin:write'));
  });

  after(async () => {
    await broker?.close();
  });

  const discovery = async () => (await (await fetch(`${broker.issuer}/.well-known/openid-configuration`)).json()) as { scopes_supported: string[]; claims_supported: string[] };

  test('a created connector adds its scope and claim; deleting it removes them', async () => {
    const before = await discovery();
    assert.ok(!before.scopes_supported.includes('org'));
    assert.ok(!before.claims_supported.includes('department'));
    const made = await api.post('/connectors', {
      id: 'staff',
      type: 'local',
      name: 'Staff',
      policy: { mappers: { claims: [{ attribute: 'department', claim: 'department', scope: 'org' }] } },
    });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    await within(2000, async () => {
      const now = await discovery();
      return now.scopes_supported.includes('org') && now.claims_supported.includes('department');
    }, 'discovery offers the mapped scope and claim');
    assert.equal((await api.delete('/connectors/staff')).status, 204);
    await within(2000, async () => !(await discovery()).scopes_supported.includes('org'), 'the scope goes with the connector');
  });
});
