// Debian's Chromium driven by playwright-core, for the suites that need a real browser (the full
// federated login chain with its cross-site redirects and cookies).
import { existsSync } from 'node:fs';
import { chromium, type Browser as Chromium } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const chromiumMissing = (): string | null => (existsSync(CHROMIUM_PATH) ? null : `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium)`);

export function launchChromium(): Promise<Chromium> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
