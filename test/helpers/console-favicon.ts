// Chromium asks for /favicon.ico on its own (the console shell declares no icon) and logs the
// 404 as a console error that names no URL in its text. This keeps such errors apart, by the
// location Chromium gives them, so a suite can still demand that nothing else went wrong.
import type { ConsoleSession } from './admin-console.ts';

/** Starts noting favicon errors; call the returned function for pageErrors without them. */
export function ignoreFaviconErrors(session: ConsoleSession): () => string[] {
  const favicon: string[] = [];
  session.page.on('console', (m) => {
    if (m.type() === 'error' && /\/favicon\.ico$/.test(m.location().url ?? '')) favicon.push(m.text());
  });
  return () => {
    const rest = [...session.pageErrors];
    for (const text of favicon) {
      const i = rest.indexOf(text);
      if (i >= 0) rest.splice(i, 1);
    }
    return rest;
  };
}
