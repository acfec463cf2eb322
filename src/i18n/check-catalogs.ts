// Checks that every language of a `locales/` folder is complete against English: the same area
// files, every English key (plural messages in the forms the language's own CLDR rules need), no
// key English lacks, no empty message, and the same `{placeholders}`. A theme's folder, which
// overrides single messages, is checked with `partial`: only what it has must be right.
//
//   node src/i18n/check-catalogs.ts                  the built-in catalogs
//   node src/i18n/check-catalogs.ts my-theme/locales  a theme's (partial) catalogs
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { LOCALES_DIR } from './messages.ts';

const PLURAL = /\.(zero|one|two|few|many|other)$/;
const base = (key: string) => key.replace(PLURAL, '');
const placeholders = (message: string) => [...new Set([...message.matchAll(/\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]))].sort().join(',');

/** `<lang>/<area>.json` as { lang: { "area.key": message } }; problems reading them are reported. */
function read(dir: string, problems: string[]): Map<string, Map<string, unknown>> {
  const out = new Map<string, Map<string, unknown>>();
  for (const lang of readdirSync(dir).filter((d) => statSync(path.join(dir, d)).isDirectory()).sort()) {
    const messages = new Map<string, unknown>();
    for (const file of readdirSync(path.join(dir, lang)).filter((f) => f.endsWith('.json')).sort()) {
      try {
        const parsed = JSON.parse(readFileSync(path.join(dir, lang, file), 'utf8')) as Record<string, unknown>;
        for (const [key, value] of Object.entries(parsed)) messages.set(`${file.slice(0, -'.json'.length)}.${key}`, value);
      } catch (err) {
        problems.push(`${lang}/${file}: not valid JSON (${(err as Error).message})`);
      }
    }
    out.set(lang, messages);
  }
  return out;
}

/**
 * The problems of the catalogs in `dir`, one line each (empty: complete).
 * @param options.partial a theme's folder: missing keys are fine, wrong ones are not
 */
export function catalogProblems(dir = LOCALES_DIR, options: { partial?: boolean } = {}): string[] {
  const problems: string[] = [];
  const catalogs = read(dir, problems);
  // A theme's messages are checked against the built-in English (and its own English overrides).
  const builtIn = options.partial && dir !== LOCALES_DIR ? read(LOCALES_DIR, problems).get('en') : undefined;
  const en = new Map([...(builtIn ?? []), ...(catalogs.get('en') ?? [])]);
  if (!options.partial && !catalogs.has('en')) problems.push('no English catalog (en/)');
  const englishAreas = new Set([...en.keys()].map((k) => k.split('.')[0]));
  const pluralBases = new Set([...en.keys()].filter((k) => PLURAL.test(k)).map(base));
  const englishOf = (key: string): string | undefined => {
    const direct = en.get(key);
    if (typeof direct === 'string') return direct;
    if (!PLURAL.test(key) || !pluralBases.has(base(key))) return undefined;
    return (en.get(`${base(key)}.other`) ?? [...en].find(([k]) => PLURAL.test(k) && base(k) === base(key))?.[1]) as string | undefined;
  };

  for (const [lang, messages] of catalogs) {
    let categories: string[];
    try {
      categories = new Intl.PluralRules(lang).resolvedOptions().pluralCategories;
    } catch {
      problems.push(`${lang}: not a language tag`);
      continue;
    }
    for (const [key, message] of messages) {
      if (typeof message !== 'string') {
        problems.push(`${lang}: ${key} is not a string`);
        continue;
      }
      if (message.trim() === '') problems.push(`${lang}: ${key} is empty`);
      const english = englishOf(key);
      if (english === undefined) {
        problems.push(`${lang}: ${key} is not an English key`);
        continue;
      }
      if (placeholders(message) !== placeholders(english)) problems.push(`${lang}: ${key} has {${placeholders(message)}} where English has {${placeholders(english)}}`);
    }
    if (options.partial || lang === 'en') continue;
    const areas = new Set([...messages.keys()].map((k) => k.split('.')[0]));
    for (const area of englishAreas) if (!areas.has(area)) problems.push(`${lang}: no ${area}.json`);
    for (const key of en.keys()) {
      if (!PLURAL.test(key)) {
        if (!messages.has(key)) problems.push(`${lang}: missing ${key}`);
      }
    }
    for (const plural of pluralBases) {
      for (const category of categories) if (!messages.has(`${plural}.${category}`)) problems.push(`${lang}: missing ${plural}.${category} (a plural form ${lang} needs)`);
    }
  }
  return problems;
}

if (import.meta.main) {
  const dir = process.argv[2] ? path.resolve(process.argv[2]) : LOCALES_DIR;
  const problems = catalogProblems(dir, { partial: dir !== LOCALES_DIR });
  for (const line of problems) console.log(line);
  console.log(problems.length ? `${problems.length} problem(s) in ${dir}` : `${dir}: complete`);
  process.exitCode = problems.length ? 1 : 0;
}
