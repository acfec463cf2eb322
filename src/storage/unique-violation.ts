import { AlreadyExists } from '../errors.ts';

/** Runs a write; a unique violation (SQLSTATE 23505) becomes AlreadyExists(what). */
export async function uniquely<T>(what: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if ((err as { code?: string }).code === '23505') throw new AlreadyExists(what, { cause: err });
    throw err;
  }
}
