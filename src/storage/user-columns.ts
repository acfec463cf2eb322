// The users columns that userFromRow (user-repository.ts) reads, for statements that name them
// with the alias `u`. Its own module: account-cache.ts and user-repository.ts import each other.
export const USER_COLUMNS = 'u.id, u.username, u.email, u.email_verified, u.name, u.given_name, u.family_name, u.enabled, u.attributes, u.managed_by, u.created_at, u.updated_at';
