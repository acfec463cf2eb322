// The fields that say who a user is, in the order every view of a user shows them (the account
// API's profile, the admin API's user, what the local connector sees).
import type { User } from '../storage/types.ts';

export const profileFields = (user: User) => ({
  id: user.id,
  username: user.username,
  email: user.email,
  emailVerified: user.emailVerified,
  name: user.name,
  givenName: user.givenName,
  familyName: user.familyName,
});
