// zxcvbn-ts in a worker thread (src/accounts/password-strength.ts starts and ends it): its
// dictionaries (about 27 MB of heap, 55 MB resident) live only while passwords are being judged,
// and an estimate (tens of ms) never blocks the broker's event loop.
import { parentPort } from 'node:worker_threads';
import { ZxcvbnFactory } from '@zxcvbn-ts/core';
import * as common from '@zxcvbn-ts/language-common';
import * as en from '@zxcvbn-ts/language-en';

export interface StrengthRequest {
  id: number;
  password: string;
  userInputs: string[];
  maxLength: number;
}

const zxcvbnFor = new Map<number, ZxcvbnFactory>();

function zxcvbn(maxLength: number): ZxcvbnFactory {
  let found = zxcvbnFor.get(maxLength);
  if (!found) {
    found = new ZxcvbnFactory({
      dictionary: { ...common.dictionary, ...en.dictionary },
      graphs: common.adjacencyGraphs,
      maxLength,
      l33tMaxSubstitutions: 10,
      // Plain keys: the feedback is translated from our own catalogs (locales/*/password.json).
    });
    zxcvbnFor.set(maxLength, found);
  }
  return found;
}

parentPort!.on('message', (request: StrengthRequest) => {
  try {
    const result = zxcvbn(request.maxLength).check(request.password, request.userInputs);
    const fromUserInputs = result.sequence.some((m) => m.pattern === 'dictionary' && m.dictionaryName === 'userInputs');
    parentPort!.postMessage({ id: request.id, score: result.score, warning: result.feedback.warning || null, fromUserInputs });
  } catch (err) {
    parentPort!.postMessage({ id: request.id, error: (err as Error).message });
  }
});
