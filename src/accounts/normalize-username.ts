// Local usernames after RFC 8265 (PRECIS). A username is kept as written (NFKC, trimmed) for
// display, and compared by its key: NFKC, then case folded (UsernameCaseMapped), so `Zoë`, the
// decomposed `zoe\u0308` and the full-width `ｚｏë` are one account, never three look-alikes.
// No local username contains `@`: an identifier with `@` is always an email at login, so one
// account's username can never shadow another account's email.

export const USERNAME_MAX = 128;

/** The display form: trimmed, NFKC (full-width and compatibility characters mapped). */
export function displayUsername(raw: string): string {
  return raw.normalize('NFKC').trim();
}

/**
 * The comparison key. Upper- then lower-casing gives Unicode's full case folding for what
 * usernames contain (`ß` -> `ss`, `ǅ` -> `ǆ`); NFKC again because folding can denormalize.
 */
export function usernameKey(raw: string): string {
  return displayUsername(raw).toUpperCase().toLowerCase().normalize('NFKC');
}

/** Why a username is not acceptable locally, or null when it is. Never echoes the value. */
export function usernameProblem(raw: string): string | null {
  const name = displayUsername(raw);
  if (!name) return 'must not be empty';
  if ([...name].length > USERNAME_MAX) return `must be at most ${USERNAME_MAX} characters`;
  if (name.includes('@')) return 'must not contain "@" (an email address goes in the email field)';
  if (/[\s\p{Z}]/u.test(name)) return 'must not contain whitespace';
  if (/\p{C}/u.test(name)) return 'must not contain control or invisible format characters';
  return null;
}

export const isValidUsername = (raw: string): boolean => usernameProblem(raw) === null;

/**
 * A valid local username made from what an upstream sent (never refusing the login for it):
 * the part before `@`, whitespace as `-`, invisible characters dropped, cut to length. Null when
 * nothing usable is left; the caller then tries the next source.
 */
export function deriveUsername(raw: string | undefined | null): string | null {
  if (!raw) return null;
  let name = displayUsername(raw);
  const at = name.indexOf('@');
  if (at >= 0) name = name.slice(0, at);
  name = name
    .replace(/[\s\p{Z}]+/gu, '-')
    .replace(/\p{C}/gu, '')
    .replace(/^-+|-+$/g, '');
  name = [...name].slice(0, USERNAME_MAX - 12).join(''); // room for a "-NN" collision suffix
  return isValidUsername(name) ? displayUsername(name) : null;
}
