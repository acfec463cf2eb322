// The admin console's first page on loopback, in Debian's Chromium: how long from navigation
// until the page is interactive (the layout with the signed-in administrator and the page's
// data loaded, no "Loading" left). Two cases, 10 runs each, medians and p90:
// - a new tab with a Keybridge session (the console signs in again without a password prompt:
//   /admin -> /auth -> /admin/callback -> token -> /me -> page data);
// - a reload of a signed-in tab (the token is still in the tab's sessionStorage).
// Run alone with `node bench/console.ts`; `npm run bench` runs it at the end in a process of its own
// with every core (`--json`: the figures as JSON; BENCH_CONSOLE=0 skips it).
import { launchChromium } from '../test/helpers/chromium.ts';
import { ADMIN, openConsolePage, signInToConsole, startConsoleBroker } from '../test/helpers/admin-console.ts';

export const CONSOLE_TARGET_MS = 1000;
const RUNS = 10;

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

export interface ConsoleTimes {
  newTab: { p50: number; p90: number };
  reload: { p50: number; p90: number };
}

export async function benchConsole(): Promise<ConsoleTimes> {
  const broker = await startConsoleBroker();
  const chromium = await launchChromium();
  try {
    const session = await openConsolePage(chromium);
    await signInToConsole(session, broker.issuer, ADMIN, '/admin/');
    const ready = async (page: typeof session.page) => {
      await page.waitForSelector('[data-testid="signed-in-as"]');
      await page.waitForSelector('#page-title');
      await page.waitForFunction(() => !document.querySelector('.loading'));
    };
    await ready(session.page);
    const newTab: number[] = [];
    const reload: number[] = [];
    for (let i = 0; i < RUNS + 1; i++) {
      const page = await session.context.newPage();
      const started = performance.now();
      await page.goto(`${broker.issuer}/admin/`);
      await ready(page);
      const tabMs = performance.now() - started;
      const again = performance.now();
      await page.reload();
      await ready(page);
      const reloadMs = performance.now() - again;
      await page.close();
      // The first run warms the server and the browser's module cache.
      if (i > 0) {
        newTab.push(tabMs);
        reload.push(reloadMs);
      }
    }
    const sum = (xs: number[]) => ({ p50: Math.round(quantile(xs, 0.5)), p90: Math.round(quantile(xs, 0.9)) });
    return { newTab: sum(newTab), reload: sum(reload) };
  } finally {
    await chromium.close();
    await broker.close();
  }
}

export const consoleLine = (r: ConsoleTimes) =>
  `admin console, first page (dashboard) interactive on loopback in Chromium: new tab with a session (silent sign-in) p50 ${r.newTab.p50} ms, p90 ${r.newTab.p90} ms; reload of a signed-in tab p50 ${r.reload.p50} ms, p90 ${r.reload.p90} ms (target < ${CONSOLE_TARGET_MS} ms): ${r.newTab.p90 < CONSOLE_TARGET_MS ? 'met' : 'NOT met'}`;

if (import.meta.main) {
  benchConsole().then(
    // --json: the figures for `npm run bench`, which runs this script in a process of its own.
    (r) => process.stdout.write(`${process.argv.includes('--json') ? JSON.stringify(r) : consoleLine(r)}\n`),
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
