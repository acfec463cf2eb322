// The console's messages, in the language the shell was served in (a JSON data block the server
// filled from locales/<lang>/account.json): t('account.profile.title'), t(key, { name }).
const data = (() => {
  try {
    return JSON.parse(document.getElementById('keybridge-messages')?.textContent ?? '{}');
  } catch {
    return {};
  }
})();

export const locale = data.locale ?? document.documentElement.lang ?? 'en';
const messages = data.messages ?? {};

/** The message `key` (an `account.` prefix may be left out), with `{name}` placeholders filled. */
export function t(key, values) {
  const full = key.startsWith('account.') || key.startsWith('password.') ? key : `account.${key}`;
  const text = messages[full] ?? full;
  return values ? text.replace(/\{([A-Za-z0-9_]+)\}/g, (whole, name) => (values[name] ?? null) !== null ? String(values[name]) : whole) : text;
}

/** Whether a message exists (problem codes fall back to the API's own English text when not). */
export const has = (key) => Object.hasOwn(messages, key.startsWith('account.') || key.startsWith('password.') ? key : `account.${key}`);

const dateFormat = new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' });
/** A date and time in the person's language, or a dash. */
export const when = (iso) => (iso ? dateFormat.format(new Date(iso)) : '—');
