// Managing local users at runtime (the admin API calls this; a CLI can too): search, create,
// profile updates, enable/disable, delete, passwords, linked identities, second factors and
// required actions, and the person's browser sessions and grants. Rules that hold whatever the caller:
// - users declared in config are read-only here (config is authoritative for them: the next
//   start would undo any change); users whose profile an upstream owns (managedBy) refuse profile
//   and password changes but may be disabled, enabled and deleted;
// - a read-check-write (If-Match) runs in one transaction with the row locked, so two admins
//   cannot both win against the same version;
// - disabling or deleting a user ends their browser sessions (back-channel logout to the
//   clients) and deletes every grant with its codes and tokens at once, so a refresh or a
//   userinfo call fails on every instance immediately, not when account caches age out.
import { randomBytes } from 'node:crypto';
import type Provider from 'oidc-provider';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { Store } from '../storage/store.ts';
import type { User } from '../storage/types.ts';
import type { UserSearch } from '../storage/user-repository.ts';
import type { RequiredAction } from '../storage/mfa-repository.ts';
import { usernameKey, usernameProblem } from '../accounts/normalize-username.ts';
import { hashPassword } from '../accounts/passwords.ts';
import { unlinkIdentity } from '../accounts/link-identity.ts';
import { createPasswordPolicy, type PasswordPolicyService, type PasswordSubject } from '../accounts/password-policy.ts';
import { PASSWORD_HARD_MAX, type PasswordPolicyConfig } from '../config/password-policy-schema.ts';
import { endSessions, type EndedSession } from '../oidc/end-sessions.ts';
import { checkIfMatch, etagOf } from '../admin-api/admin-support.ts';
import { AdminProblem, conflict, invalid, notFound, readOnly } from '../admin-api/problem.ts';
import { userMfaService } from './user-mfa.ts';
import { profileFields } from '../accounts/profile-fields.ts';
import { declaredInConfig } from '../accounts/config-users.ts';

/** The longest password the API accepts at all (the policy's maxLength is usually lower). */
export const PASSWORD_MAX = PASSWORD_HARD_MAX;

/** What the API shows of a user (never a credential). */
export interface UserView {
  id: string;
  username: string;
  email: string | null;
  emailVerified: boolean;
  name: string | null;
  givenName: string | null;
  familyName: string | null;
  enabled: boolean;
  attributes: Record<string, unknown>;
  /** config: declared in the config file (read-only); upstream: profile owned by `managedBy`; local: managed here. */
  source: 'config' | 'upstream' | 'local';
  managedBy: string | null;
  hasPassword: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface ProfilePatch {
  username?: string;
  email?: string | null;
  emailVerified?: boolean;
  name?: string | null;
  givenName?: string | null;
  familyName?: string | null;
  attributes?: Record<string, unknown>;
}

export interface NewUserInput extends ProfilePatch {
  username: string;
  enabled?: boolean;
  password?: string;
}

/** What ending a user's access did: sessions ended (and who was told) and grants revoked. */
export interface AccessEnded {
  sessions: EndedSession[];
  grantsRevoked: number;
}

export interface UserServiceDependencies {
  config: Config;
  store: Store;
  /** Needed to end browser sessions (back-channel logout); without it sessions are not touched. */
  provider?: Provider;
  logger: Logger;
  /** The broker's password policy (default: one built from config.passwordPolicy). */
  passwordPolicy?: PasswordPolicyService;
}

/**
 * A random base64url password of 24 characters (144 bits), longer when the policy's minLength
 * asks for more, never longer than its maxLength.
 */
export function generatePassword(policy: Pick<PasswordPolicyConfig, 'minLength' | 'maxLength'>): string {
  const length = Math.min(Math.max(24, policy.minLength), policy.maxLength);
  return randomBytes(Math.ceil((length * 3) / 4)).toString('base64url').slice(0, length);
}

export function userService(deps: UserServiceDependencies) {
  const { config, store } = deps;
  const configured = declaredInConfig(config);
  const policy = deps.passwordPolicy ?? createPasswordPolicy(config.passwordPolicy, store, { declared: configured });

  const sourceOf = (user: User): UserView['source'] => (configured(user.username) ? 'config' : user.managedBy ? 'upstream' : 'local');

  function view(user: User, hasPassword: boolean): UserView {
    return {
      ...profileFields(user),
      enabled: user.enabled,
      attributes: user.attributes,
      source: sourceOf(user),
      managedBy: user.managedBy,
      hasPassword,
      createdAt: user.createdAt.toISOString(),
      updatedAt: user.updatedAt.toISOString(),
    };
  }

  async function viewOf(s: Store, user: User): Promise<UserView> {
    return view(user, (await s.credentials.getPasswordHash(user.id)) !== null);
  }

  /** The user locked for this transaction, its view and ETag checked against If-Match. */
  async function lockChecked(tx: Store, id: string, ifMatch: string[] | null): Promise<{ user: User; before: UserView }> {
    const user = await tx.users.findByIdForUpdate(id);
    if (!user) throw notFound('The user');
    const before = await viewOf(tx, user);
    checkIfMatch(ifMatch, etagOf(before));
    return { user, before };
  }

  function refuseConfig(user: User): void {
    if (sourceOf(user) === 'config') throw readOnly(`User "${user.username}"`, 'the configuration file (users)');
  }

  function refuseProfileChange(user: User): void {
    refuseConfig(user);
    if (user.managedBy) throw readOnly(`The profile of "${user.username}"`, `connector "${user.managedBy}"`);
  }

  async function mustFind(id: string): Promise<User> {
    const user = await store.users.findById(id);
    if (!user) throw notFound('The user');
    return user;
  }

  /** The password policy's verdict as a 400 problem: code `password_rejected`, the reason's code on the field. */
  async function checkPassword(password: string, subject: PasswordSubject, path: string): Promise<void> {
    const problem = await policy.problem(password, subject);
    if (problem) throw new AdminProblem(400, 'password_rejected', `The password ${problem.message}.`, { errors: [{ path, message: problem.message, code: problem.code }] });
  }

  const subjectOf = (user: User): PasswordSubject => ({ userId: user.id, username: user.username, email: user.email, name: user.name });

  /** Ends every browser session of the user and deletes every grant (with its tokens). */
  async function endAccess(userId: string, reason: string): Promise<AccessEnded> {
    const uids = await store.userSessions.sessionUidsOf(userId);
    const sessions = deps.provider && uids.length ? await endSessions({ provider: deps.provider, store, logger: deps.logger }, uids, reason) : [];
    // Grants that persist logout (offline_access) and grants of no live session go too.
    const grantsRevoked = await store.userSessions.revokeGrants(await store.userSessions.grantIdsOf(userId));
    return { sessions, grantsRevoked };
  }

  /**
   * Sets a password (the policy checked, argon2id); optionally ends every session and grant.
   * `mustChange`: the user chooses a new one at their next login (required action update_password).
   */
  async function setPassword(id: string, password: string, options: { endSessions?: boolean; mustChange?: boolean } = {}): Promise<{ user: UserView; ended: AccessEnded | null }> {
    const user = await mustFind(id);
    refuseProfileChange(user);
    // A temporary password is random and replaced at the next login: only its length matters.
    if (!options.mustChange) await checkPassword(password, subjectOf(user), 'body.password');
    const hash = await hashPassword(password);
    const after = await store.transaction(async (tx) => {
      const locked = await tx.users.findByIdForUpdate(id);
      if (!locked) throw notFound('The user');
      refuseProfileChange(locked);
      // A password the administrator knows does not settle a pending "choose your own".
      const pending = await tx.passwords.changeReason(id);
      await policy.setPasswordHash(tx, id, hash);
      if (options.mustChange) await tx.passwords.requireChange(id, 'temporary');
      else if (pending !== undefined) await tx.passwords.requireChange(id, pending === 'temporary' ? 'temporary' : null);
      return view(locked, true);
    });
    return { user: after, ended: options.endSessions ? await endAccess(id, 'admin_password') : null };
  }

  return {
    view,
    etagOf: (v: UserView) => etagOf(v),

    async list(search: UserSearch): Promise<{ items: UserView[]; next: [string, string] | null }> {
      const users = await store.users.search({ ...search, limit: search.limit + 1 });
      const page = users.slice(0, search.limit);
      const withPassword = await store.credentials.withPassword(page.map((u) => u.id));
      const last = page.at(-1);
      return { items: page.map((u) => view(u, withPassword.has(u.id))), next: users.length > search.limit && last ? [usernameKey(last.username), last.id] : null };
    },

    async get(id: string): Promise<UserView> {
      return viewOf(store, await mustFind(id));
    },

    async create(input: NewUserInput): Promise<UserView> {
      const problem = usernameProblem(input.username);
      if (problem) throw invalid([{ path: 'body.username', message: problem }]);
      if (input.password !== undefined) await checkPassword(input.password, { username: input.username, email: input.email, name: input.name }, 'body.password');
      const existing = await store.users.findByUsername(input.username);
      if (existing) throw conflict(`A user named "${existing.username}" already exists (usernames are compared case- and width-insensitively).`, 'already_exists', 'body.username');
      const hash = input.password === undefined ? null : await hashPassword(input.password);
      return store.transaction(async (tx) => {
        const user = await tx.users.create({
          username: input.username,
          email: input.email ?? null,
          emailVerified: input.emailVerified ?? false,
          name: input.name ?? null,
          givenName: input.givenName ?? null,
          familyName: input.familyName ?? null,
          attributes: input.attributes ?? {},
          enabled: input.enabled ?? true,
        });
        if (hash) await policy.setPasswordHash(tx, user.id, hash);
        return view(user, hash !== null);
      });
    },

    async update(id: string, patch: ProfilePatch, ifMatch: string[] | null): Promise<{ before: UserView; after: UserView }> {
      if (patch.username !== undefined) {
        const problem = usernameProblem(patch.username);
        if (problem) throw invalid([{ path: 'body.username', message: problem }]);
      }
      return store.transaction(async (tx) => {
        const { user, before } = await lockChecked(tx, id, ifMatch);
        refuseProfileChange(user);
        if (patch.username !== undefined && usernameKey(patch.username) !== usernameKey(user.username)) {
          if (configured(patch.username)) throw conflict('That username belongs to a user declared in the configuration file.', 'already_exists', 'body.username');
          const taken = await tx.users.findByUsername(patch.username);
          if (taken) throw conflict(`A user named "${taken.username}" already exists (usernames are compared case- and width-insensitively).`, 'already_exists', 'body.username');
        }
        const updated = Object.keys(patch).length ? await tx.users.update(id, patch) : user;
        return { before, after: view(updated!, before.hasPassword) };
      });
    },

    /** Enables or disables; disabling ends the user's sessions and grants at once (also when already disabled). */
    async setEnabled(id: string, enabled: boolean, ifMatch: string[] | null): Promise<{ before: UserView; after: UserView; ended: AccessEnded | null }> {
      const { before, after } = await store.transaction(async (tx) => {
        const { user, before } = await lockChecked(tx, id, ifMatch);
        refuseConfig(user);
        const updated = user.enabled === enabled ? user : await tx.users.update(id, { enabled });
        return { before, after: view(updated!, before.hasPassword) };
      });
      const ended = enabled ? null : await endAccess(id, 'admin_disable');
      return { before, after, ended };
    },

    /** Deletes the user with its links, credentials and memberships, after ending its sessions and grants. */
    async remove(id: string, ifMatch: string[] | null): Promise<{ before: UserView; ended: AccessEnded }> {
      const user = await mustFind(id);
      refuseConfig(user);
      checkIfMatch(ifMatch, etagOf(await viewOf(store, user)));
      const ended = await endAccess(id, 'admin_delete');
      const before = await store.transaction(async (tx) => {
        const { user: locked, before } = await lockChecked(tx, id, ifMatch);
        refuseConfig(locked);
        await tx.users.delete(id);
        return before;
      });
      // Tokens issued between ending access and the delete belong to no account now; remove them anyway.
      await store.userSessions.revokeGrants(await store.userSessions.grantIdsOf(id));
      return { before, ended };
    },

    setPassword,

    /**
     * A fresh random password, set and returned once; it is stored only as its argon2id hash.
     * It is meant to be typed once: the user must choose their own at the next login.
     */
    async resetPassword(id: string, options: { endSessions?: boolean } = {}): Promise<{ user: UserView; password: string; ended: AccessEnded | null }> {
      const password = generatePassword(config.passwordPolicy);
      const { user, ended } = await setPassword(id, password, { ...options, mustChange: true });
      return { user, password, ended };
    },

    async requiredActions(id: string): Promise<RequiredAction[]> {
      await mustFind(id);
      return store.mfa.requiredActions(id);
    },

    /**
     * Replaces the user's required actions. update_password is refused (409) where the password
     * cannot be changed here (config users, profiles an upstream owns).
     */
    async setRequiredActions(id: string, actions: readonly RequiredAction[]): Promise<{ before: RequiredAction[]; after: RequiredAction[] }> {
      return store.transaction(async (tx) => {
        const user = await tx.users.findByIdForUpdate(id);
        if (!user) throw notFound('The user');
        if (actions.includes('update_password')) refuseProfileChange(user);
        const before = await tx.mfa.requiredActions(id);
        for (const action of before) if (!actions.includes(action)) await tx.mfa.removeRequiredAction(id, action);
        for (const action of actions) if (!before.includes(action)) await tx.mfa.addRequiredAction(id, action);
        return { before, after: await tx.mfa.requiredActions(id) };
      });
    },

    /** Second factors: list, remove one, reset all (src/management/user-mfa.ts). */
    mfa: userMfaService(store),

    async identities(id: string) {
      await mustFind(id);
      return store.identities.listForUser(id);
    },

    /** Unlinks one identity (as `keybridge users unlink`: allowed even when it was the last way to sign in; `canSignIn` says). */
    async unlink(id: string, identityId: string, by: string) {
      const user = await mustFind(id);
      const identity = await store.identities.findById(identityId);
      if (!identity || identity.userId !== user.id) throw notFound('The linked identity');
      await unlinkIdentity(store, identity.id, { by });
      const [remaining, password] = await Promise.all([store.identities.listForUser(id), store.credentials.getPasswordHash(id)]);
      return { identity, canSignIn: remaining.length > 0 || password !== null };
    },

    async groups(id: string) {
      await mustFind(id);
      return store.users.memberships(id);
    },

    async sessions(id: string) {
      await mustFind(id);
      return store.userSessions.sessionsOf(id);
    },

    /** Ends one live browser session of the user (one GET .../sessions lists). */
    async endSession(id: string, sessionUid: string): Promise<EndedSession> {
      await mustFind(id);
      const live = await store.userSessions.sessionsOf(id);
      if (!live.some((s) => s.uid === sessionUid)) throw notFound('The session');
      if (!deps.provider) throw new Error('ending sessions needs the OIDC provider');
      const [ended] = await endSessions({ provider: deps.provider, store, logger: deps.logger }, [sessionUid], 'admin_revoke');
      return ended;
    },

    /** Ends every live browser session of the user; grants that persist logout (offline_access) stay. */
    async endAllSessions(id: string): Promise<EndedSession[]> {
      await mustFind(id);
      const uids = (await store.userSessions.sessionsOf(id)).map((s) => s.uid);
      if (!uids.length) return [];
      if (!deps.provider) throw new Error('ending sessions needs the OIDC provider');
      return endSessions({ provider: deps.provider, store, logger: deps.logger }, uids, 'admin_revoke');
    },

    async grants(id: string) {
      await mustFind(id);
      return store.userSessions.grantsOf(id);
    },

    async revokeGrant(id: string, grantId: string) {
      await mustFind(id);
      const grant = await store.userSessions.grantOf(id, grantId);
      if (!grant) throw notFound('The grant');
      await store.userSessions.revokeGrants([grant.id]);
      return grant;
    },

    async revokeAllGrants(id: string) {
      await mustFind(id);
      const grants = await store.userSessions.grantsOf(id);
      const revoked = await store.userSessions.revokeGrants(await store.userSessions.grantIdsOf(id));
      return { grants, rows: revoked };
    },
  };
}

export type UserService = ReturnType<typeof userService>;
