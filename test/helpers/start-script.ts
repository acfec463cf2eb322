// What `npm start` hands to Node, read from package.json: the flags in its NODE_OPTIONS (the heap
// settings, which a person's own NODE_OPTIONS follow) and the flags on its node command line
// (V8 flags, which NODE_OPTIONS may not carry). Used by the CLI tests and the bench.
import { readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

export function startScriptFlags(): { nodeOptions: string[]; nodeFlags: string[] } {
  const start = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  const m = /NODE_OPTIONS="([^"]*)" node ((?:--\S+ )*)src\/cli\/main\.ts serve$/.exec(start);
  if (!m) throw new Error(`npm start is not shaped as expected: ${start}`);
  const flags = (text: string) => text.replace('$NODE_OPTIONS', '').split(' ').filter(Boolean);
  return { nodeOptions: flags(m[1]!), nodeFlags: flags(m[2]!) };
}
