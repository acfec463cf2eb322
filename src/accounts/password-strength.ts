// zxcvbn-ts strength estimates, with its common and English dictionaries. The library and its
// dictionaries (several MB of heap) load on the first estimate, not at start-up: a broker that
// never sets a password never pays for them.
import type { ZxcvbnFactory, ZxcvbnResult } from '@zxcvbn-ts/core';

/** How many leading characters zxcvbn judges. */
export const ESTIMATED_LENGTH = 64;

let loading: Promise<ZxcvbnFactory> | null = null;

function estimator(): Promise<ZxcvbnFactory> {
  loading ??= (async () => {
    const [core, common, en] = await Promise.all([import('@zxcvbn-ts/core'), import('@zxcvbn-ts/language-common'), import('@zxcvbn-ts/language-en')]);
    return new core.ZxcvbnFactory({
      dictionary: { ...common.dictionary, ...en.dictionary },
      graphs: common.adjacencyGraphs,
      // zxcvbn's cost grows steeply with length and with l33t candidates: at its defaults (256
      // characters, 100 substitutions) one random 128-character password took 2 s of CPU here,
      // a cheap way to stall a broker. The first 64 characters with at most 10 substitutions
      // take tens of ms; a password that is strong in its first 64 characters is strong.
      maxLength: ESTIMATED_LENGTH,
      l33tMaxSubstitutions: 10,
      // Plain keys: the feedback is translated from our own catalogs (locales/*/password.json).
    });
  })();
  loading.catch(() => (loading = null));
  return loading;
}

export interface StrengthEstimate {
  score: ZxcvbnResult['score'];
  /** zxcvbn's warning key (`wordByItself`, `userInputs`...), or null. */
  warning: string | null;
  /** The weakest part is built from the person's own name, username or email. */
  fromUserInputs: boolean;
}

/** The strength of `password` for a person described by `userInputs` (their name, username, email parts). */
export async function estimateStrength(password: string, userInputs: readonly string[]): Promise<StrengthEstimate> {
  const zxcvbn = await estimator();
  const result = zxcvbn.check(password, [...userInputs]);
  const fromUserInputs = result.sequence.some((m) => m.pattern === 'dictionary' && m.dictionaryName === 'userInputs');
  return { score: result.score, warning: result.feedback.warning || null, fromUserInputs };
}
