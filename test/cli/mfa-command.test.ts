// `keybridge users mfa list|reset` as an operator runs them (a child process per command) on the
// embedded database: factors listed without secrets, reset removes factors and recovery codes
// and is in the audit trail with the CLI as actor; an unknown user is a clear error.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openDatabase } from '../../src/storage/database.ts';
import { Store } from '../../src/storage/store.ts';
import { TotpService } from '../../src/mfa/totp.ts';
import { mfaCipher } from '../../src/mfa/mfa-cipher.ts';
import { issueRecoveryCodes } from '../../src/mfa/recovery-codes.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'src/cli/main.ts');

interface Run { code: number | null; stdout: string; stderr: string }

function run(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('keybridge users mfa', () => {
  let work: string;
  before(() => {
    mkdirSync(path.join(ROOT, 'test/.work'), { recursive: true });
    work = mkdtempSync(path.join(ROOT, 'test/.work', 'mfa-cli-'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  test('list shows factors without secrets; reset removes factors and recovery codes, audited with actor cli; unknown users exit 1', async () => {
    const dataDir = path.join(work, 'data');
    const file = path.join(work, 'mfa.yaml');
    writeFileSync(file, `issuer: http://127.0.0.1:5556\ndatabase: { dataDir: ${JSON.stringify(dataDir)} }\n`);
    assert.equal((await run(['migrate', '-c', file])).code, 0);

    let userId = '';
    let otherId = '';
    let secret = '';
    let sealed = '';
    const seed = await openDatabase({ dataDir: path.join(dataDir, 'pglite') });
    try {
      const store = new Store(seed.knex);
      const uma = await store.users.create({ username: 'uma' });
      const other = await store.users.create({ username: 'vic' });
      userId = uma.id;
      otherId = other.id;
      const totp = new TotpService({ store, cipher: await mfaCipher({ secrets: {} } as never, store), issuerName: 'Keybridge' });
      const enrolment = await totp.startEnrolment({ id: uma.id, username: uma.username });
      secret = enrolment.secret;
      await store.mfa.confirm(uma.id, enrolment.factorId);
      await store.mfa.addWebauthn(uma.id, { name: 'YubiKey 5', credentialId: 'cred-1', publicKey: 'pk-1', signCount: 0, data: {} });
      await issueRecoveryCodes(store, uma.id);
      await totp.startEnrolment({ id: other.id, username: other.username });
      sealed = (await store.mfa.totpFactors(uma.id))[0].sealedSecret;
    } finally {
      await seed.close();
    }

    const list = await run(['users', 'mfa', 'list', 'uma', '-c', file]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^[0-9a-f-]{36}\ttotp\tAuthenticator app\tconfirmed\tcreated \S+\tlast used \S+$/m);
    assert.match(list.stdout, /^[0-9a-f-]{36}\twebauthn\tYubiKey 5\tconfirmed\tcreated \S+\tlast used -$/m);
    assert.match(list.stdout, /^recovery codes left: 10$/m);
    for (const leak of [secret, sealed, 'pk-1']) assert.equal(list.stdout.includes(leak), false, 'no secret or key in the listing');

    const json = await run(['users', 'mfa', 'list', 'uma', '--json', '-c', file]);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout);
    assert.deepEqual(parsed.user, { id: userId, username: 'uma' });
    assert.deepEqual(parsed.factors.map((f: { type: string }) => f.type), ['totp', 'webauthn']);
    assert.deepEqual(Object.keys(parsed.factors[0]).sort(), ['confirmed', 'createdAt', 'id', 'lastUsedAt', 'name', 'type']);
    assert.equal(parsed.recoveryCodesLeft, 10);

    const pending = await run(['users', 'mfa', 'list', 'VIC', '-c', file]);
    assert.match(pending.stdout, /\ttotp\tAuthenticator app\tpending\t/);

    const unknown = await run(['users', 'mfa', 'reset', 'nobody', '-c', file]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^error: no user "nobody"$/m);
    assert.equal((await run(['users', 'mfa', 'list', 'nobody', '-c', file])).code, 1);
    assert.equal((await run(['users', 'mfa', 'wipe', 'uma', '-c', file])).code, 2, 'unknown action: usage');
    assert.equal((await run(['users', 'mfa', 'reset', '-c', file])).code, 2, 'no user: usage');

    const reset = await run(['users', 'mfa', 'reset', 'uma', '-c', file]);
    assert.equal(reset.code, 0, reset.stderr);
    assert.match(reset.stdout, /^removed 2 factors and 10 recovery codes from uma$/m);
    const after = await run(['users', 'mfa', 'list', 'uma', '-c', file]);
    assert.match(after.stdout, /^uma has no second factors$/m);
    assert.match(after.stdout, /^recovery codes left: 0$/m);

    const db = await openDatabase({ dataDir: path.join(dataDir, 'pglite') });
    try {
      const store = new Store(db.knex);
      assert.deepEqual(await store.mfa.list(userId), []);
      assert.equal((await store.mfa.list(otherId)).length, 1, "another user's factors stay");
      const events = await store.audit.list({ type: 'admin.mfa.reset', userId });
      assert.equal(events.length, 1);
      const details = events[0].details as { actor: { kind: string }; via: string; details: { factors: { type: string; name: string }[]; recoveryCodesRemoved: number } };
      assert.equal(details.actor.kind, 'cli');
      assert.equal(details.via, 'cli');
      assert.deepEqual(details.details.factors.map((f) => [f.type, f.name]), [['totp', 'Authenticator app'], ['webauthn', 'YubiKey 5']]);
      assert.equal(details.details.recoveryCodesRemoved, 10);
      assert.equal(JSON.stringify(events[0]).includes(secret), false);
    } finally {
      await db.close();
    }
  });
});
