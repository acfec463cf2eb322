// The console's catalogs: German has every English message (and no stray ones), placeholders
// match, and every literal message key the console's modules use exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { MessageCatalogs } from '../../src/i18n/messages.ts';
import { ACCOUNT_CONSOLE_DIR } from '../../src/account-console/account-console.ts';

const catalogs = new MessageCatalogs();
const account = (lang: string) => catalogs.keys(lang).filter((k) => k.startsWith('account.'));
const placeholders = (text: string) => [...text.matchAll(/\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]).sort();

test('German is complete, with the same placeholders, and really translated', () => {
  const en = account('en');
  assert.ok(en.length > 150);
  assert.deepEqual(account('de'), en);
  const tEn = catalogs.translator('en');
  const tDe = catalogs.translator('de');
  const same = en.filter((k) => tEn(k) === tDe(k));
  for (const key of en) assert.deepEqual(placeholders(tDe(key)), placeholders(tEn(key)), key);
  // A few words are the same in both languages (OK, Apps: {apps}); anything more is untranslated.
  assert.ok(same.length <= 3, `untranslated: ${same.join(', ')}`);
});

test('every message key the console names literally exists', async () => {
  const known = new Set(account('en'));
  const files = (await readdir(ACCOUNT_CONSOLE_DIR)).filter((f) => f.endsWith('.js'));
  const missing: string[] = [];
  for (const file of files) {
    const source = await readFile(path.join(ACCOUNT_CONSOLE_DIR, file), 'utf8');
    for (const m of source.matchAll(/\bt\('([A-Za-z0-9_.-]+)'/g)) {
      const key = m[1]!.startsWith('account.') ? m[1]! : `account.${m[1]}`;
      if (!known.has(key)) missing.push(`${file}: ${m[1]}`);
    }
  }
  assert.deepEqual(missing, []);
});
