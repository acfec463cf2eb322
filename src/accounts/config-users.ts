// Users declared in the config file (`users:`): the file is authoritative for them, so their
// profile, email and password are not changed through forms, mails or the APIs.
import { usernameKey } from './normalize-username.ts';

/** Whether a username belongs to a user declared in the config file (compared as usernames are). */
export function declaredInConfig(config: { users: readonly { username: string }[] }): (username: string) => boolean {
  const declared = new Set(config.users.map((u) => usernameKey(u.username)));
  return (username) => declared.has(usernameKey(username));
}
