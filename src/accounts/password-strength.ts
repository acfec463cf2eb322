// zxcvbn-ts strength estimates, with its common and English dictionaries, computed in a worker
// thread (password-strength-worker.ts) that starts on the first estimate and ends after a
// minute without one. So a broker that sets no password never loads zxcvbn, one that did gives
// its memory back, and an estimate never blocks the event loop.
import { Worker } from 'node:worker_threads';

/**
 * How many leading characters zxcvbn judges. Its cost grows steeply with length and with l33t
 * candidates: at its defaults (256 characters, 100 substitutions) one random 128-character
 * password took 2 s of CPU here, a cheap way to stall a broker. The first 64 characters with at
 * most 10 substitutions take tens of ms; a password strong in its first 64 characters is strong.
 */
export const ESTIMATED_LENGTH = 64;
/** The worker ends after this long without an estimate. */
const IDLE_MS = 60_000;

export interface StrengthEstimate {
  score: 0 | 1 | 2 | 3 | 4;
  /** zxcvbn's warning key (`wordByItself`, `userInputs`...), or null. */
  warning: string | null;
  /** The weakest part is built from the person's own name, username or email. */
  fromUserInputs: boolean;
}

interface Reply extends Partial<StrengthEstimate> {
  id: number;
  error?: string;
}

interface Pending {
  resolve(estimate: StrengthEstimate): void;
  reject(err: Error): void;
}

let worker: Worker | null = null;
let idle: NodeJS.Timeout | null = null;
let nextId = 0;
const pending = new Map<number, Pending>();

function failAll(err: Error): void {
  for (const p of pending.values()) p.reject(err);
  pending.clear();
}

function started(): Worker {
  if (worker) return worker;
  const w = new Worker(new URL('./password-strength-worker.ts', import.meta.url));
  w.on('message', (reply: Reply) => {
    const waiting = pending.get(reply.id);
    if (!waiting) return;
    pending.delete(reply.id);
    if (reply.error !== undefined) waiting.reject(new Error(`password strength estimate failed: ${reply.error}`));
    else waiting.resolve({ score: reply.score!, warning: reply.warning ?? null, fromUserInputs: Boolean(reply.fromUserInputs) });
    settle();
  });
  w.on('error', (err) => {
    if (worker === w) worker = null;
    failAll(err);
  });
  w.on('exit', (code) => {
    if (worker === w) worker = null;
    if (pending.size) failAll(new Error(`password strength worker exited (${code})`));
  });
  worker = w;
  return w;
}

/** While estimates are pending the worker keeps the process alive; idle, it does not, and it ends after IDLE_MS. */
function settle(): void {
  if (idle) clearTimeout(idle);
  idle = null;
  if (!worker) return;
  if (pending.size) {
    worker.ref();
    return;
  }
  worker.unref();
  idle = setTimeout(stopStrengthEstimator, IDLE_MS).unref();
}

/** The strength of `password` for a person described by `userInputs` (their name, username, email parts). */
export function estimateStrength(password: string, userInputs: readonly string[]): Promise<StrengthEstimate> {
  const id = ++nextId;
  const result = new Promise<StrengthEstimate>((resolve, reject) => pending.set(id, { resolve, reject }));
  started().postMessage({ id, password, userInputs: [...userInputs], maxLength: ESTIMATED_LENGTH });
  settle();
  return result;
}

/** Ends the worker now (it starts again on the next estimate); pending estimates fail. */
export async function stopStrengthEstimator(): Promise<void> {
  if (idle) clearTimeout(idle);
  idle = null;
  const w = worker;
  worker = null;
  if (w) await w.terminate();
}

/** Whether the worker (and so zxcvbn's memory) is there now. */
export function strengthEstimatorRunning(): boolean {
  return worker !== null;
}
