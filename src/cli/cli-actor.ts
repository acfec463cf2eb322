// Who a CLI change is audited as: the operating-system user running it, when known.
import { userInfo } from 'node:os';

export const cliActor = () => ({ kind: 'cli', osUser: osUser() });

function osUser(): string | null {
  try {
    return userInfo().username;
  } catch {
    return null;
  }
}
