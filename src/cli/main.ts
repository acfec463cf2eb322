// keybridge serve | migrate | check-config | keys rotate | users add | users links | users unlink | users mfa | ldap sync | saml-sp | audit tail | clients | admin create-client | connectors
import { parseArgs } from 'node:util';
import { ConfigError, KeybridgeError } from '../errors.ts';
import { loadConfig } from '../config/load-config.ts';
import type { Config } from '../config/schema.ts';
import { createLogger } from '../log.ts';
import { runServe } from './serve.ts';
import { runCheckConfig } from './check-config.ts';
import { runSync } from './sync-command.ts';
import { runLinks } from './links-command.ts';
import { runMfa } from './mfa-command.ts';
import { runSamlSp } from './saml-sp-command.ts';
import { runAudit } from './audit-command.ts';
import { runClients } from './clients-command.ts';
import { runConnectors } from './connectors-command.ts';
import { withStore } from './with-store.ts';
import { rotateSigningKeys, signingKeyGrace } from '../oidc/signing-keys.ts';
import { hashPassword } from '../accounts/passwords.ts';
import { createPasswordPolicy } from '../accounts/password-policy.ts';
import { usernameProblem } from '../accounts/normalize-username.ts';

const USAGE = `Usage: keybridge <command> [options]

Commands:
  serve                      start the broker (default)
  migrate                    apply database migrations and exit
  check-config               validate the configuration (and stored connectors) and exit
  keys rotate                activate new signing keys; old ones stay published until their tokens expire
  connectors list [--json]   list connectors (config file and database); secrets are never shown
  connectors test <id> [--json]
                             test a connector against its upstream (exit 1 when a step fails)
  ldap sync <connector>      import a directory connector's users and groups now (alias: sync <connector>)
  users add <username>       create a local user
      --email <email> --name <name> --group <group> (repeatable)
      --password-stdin       read the password from standard input (else KEYBRIDGE_PASSWORD)
  users links <username>     list the upstream identities linked to a user
  users unlink <username> <connector>
                             remove the user's identity from that connector (the user stays)
  users mfa list <username> [--json]
                             list the user's second factors (no secrets) and recovery codes left
  users mfa reset <username> remove every second factor and recovery code of the user (audited)
  saml-sp add --entity-id <id> (--metadata-file <file> | --metadata-url <url>) [--name <name>]
                             register a SAML service provider in the database
  saml-sp list               list SAML service providers (config file and database)
  saml-sp remove <entity-id> remove a SAML service provider from the database
  audit tail [--type T] [--user U] [--since 1h] [--limit N] [--json] [--follow]
                             print the newest audit events (50), oldest first; --type login.*
                             matches a prefix, --since takes 30m, 2d or an ISO time
  clients add <id>           store an OIDC client; prints its secret once (stored hashed)
      --grant <type> --redirect-uri <uri> --post-logout-uri <uri> --scope <scope> (repeatable)
      --name <name> --auth-method <method> --first-party
  clients list               list clients (config file and database)
  clients rotate-secret <id> [--overlap <seconds>]
                             a new secret (printed once); the old one works for the overlap (1 day)
  clients remove <id>        delete a stored client and revoke its tokens
  admin create-client <name> --scope admin:write
                             a client_credentials client for the admin API; prints id and secret once

Options:
  -c, --config <file>        config file (default: $KEYBRIDGE_CONFIG or config/dev.yaml)
  -h, --help                 show this help
`;


async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      email: { type: 'string' },
      name: { type: 'string' },
      group: { type: 'string', multiple: true },
      'password-stdin': { type: 'boolean' },
      'entity-id': { type: 'string' },
      'metadata-file': { type: 'string' },
      'metadata-url': { type: 'string' },
      type: { type: 'string' },
      user: { type: 'string' },
      since: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
      follow: { type: 'boolean' },
      grant: { type: 'string', multiple: true },
      'redirect-uri': { type: 'string', multiple: true },
      'post-logout-uri': { type: 'string', multiple: true },
      scope: { type: 'string', multiple: true },
      'auth-method': { type: 'string' },
      'first-party': { type: 'boolean' },
      overlap: { type: 'string' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const [command = 'serve', sub, arg, arg2] = positionals;

  if (command === 'check-config') return runCheckConfig(values.config);

  const { config, path: configPath } = await loadConfig({ path: values.config });
  switch (command) {
    case 'serve':
      return runServe(config, configPath);
    case 'migrate':
      return withStore(config, async (_store, applied) => {
        console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
        return 0;
      });
    case 'keys':
      if (sub !== 'rotate') break;
      return withStore(config, async (store) => {
        const fresh = await rotateSigningKeys(store, config.keys.algorithms, signingKeyGrace(config));
        console.log(`new signing keys: ${fresh.map((k) => `${k.kid} (${k.alg})`).join(', ')}`);
        console.log(`previous keys stay published for ${signingKeyGrace(config)} s; running instances switch within their key poll interval`);
        return 0;
      });
    case 'ldap':
      if (sub !== 'sync') break;
      return runSync(config, arg);
    case 'audit':
      return runAudit(config, sub, { type: values.type, user: values.user, since: values.since, limit: values.limit, json: values.json, follow: values.follow });
    case 'saml-sp':
      return runSamlSp(config, sub, { entityId: values['entity-id'], metadataFile: values['metadata-file'], metadataUrl: values['metadata-url'], name: values.name, target: arg });
    case 'sync':
      return runSync(config, sub);
    case 'clients':
    case 'admin': {
      const clientOptions = { grant: values.grant, redirectUri: values['redirect-uri'], postLogoutUri: values['post-logout-uri'], scope: values.scope, name: values.name, authMethod: values['auth-method'], firstParty: values['first-party'], overlap: values.overlap };
      return runClients(config, command, sub, arg, clientOptions);
    }
    case 'connectors':
      return runConnectors(config, sub, arg, { json: values.json });
    case 'users':
      if ((sub === 'links' || sub === 'unlink') && arg) return runLinks(config, sub, arg, arg2);
      if (sub === 'mfa') return runMfa(config, arg, arg2, { json: values.json });
      if (sub !== 'add' || !arg) break;
      if (usernameProblem(arg)) {
        console.error(`invalid username: ${usernameProblem(arg)}`);
        return 2;
      }
      return withStore(config, async (store) => {
        const password = values['password-stdin'] ? await readStdin() : process.env.KEYBRIDGE_PASSWORD;
        if (!password) {
          console.error('a password is required: use --password-stdin or set KEYBRIDGE_PASSWORD');
          return 2;
        }
        const policy = createPasswordPolicy(config.passwordPolicy, store);
        const problem = await policy.problem(password, { username: arg, email: values.email ?? null, name: values.name ?? null });
        if (problem) {
          console.error(`password refused (${problem.code}): the password ${problem.message}`);
          return 2;
        }
        const passwordHash = await hashPassword(password);
        const user = await store.transaction(async (tx) => {
          const created = await tx.users.create({ username: arg, email: values.email ?? null, emailVerified: Boolean(values.email), name: values.name ?? null });
          await policy.setPasswordHash(tx, created.id, passwordHash);
          if (values.group?.length) await tx.groups.setMemberships(created.id, values.group, 'local');
          await tx.audit.record({ type: 'user.created', userId: created.id, details: { via: 'cli' } });
          return created;
        });
        console.log(`created user ${user.username} (id ${user.id})`);
        return 0;
      });
  }
  process.stderr.write(`unknown command: ${positionals.join(' ')}\n\n${USAGE}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== -1) process.exitCode = code;
  },
  (err) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exitCode = 1;
    } else if (String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')) {
      // A mistyped flag or a flag without its value: a usage error, not a crash.
      process.stderr.write(`error: ${(err as Error).message}\n`);
      process.exitCode = 2;
    } else if (err instanceof KeybridgeError && err.expose) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exitCode = 1;
    } else {
      createLogger('error').fatal({ err }, 'keybridge failed');
      process.exitCode = 1;
    }
  },
);

