// Headless Chromium for the browser tests: Debian's `chromium` package driven by
// playwright-core (no browser download). A missing browser is a failure with a clear
// message, never a silent skip: CI installs it (.ci/run).
import { accessSync, constants, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Kept by CI; ignored by git. */
export const ARTIFACT_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../test-artifacts/browser');

export function assertChromiumInstalled(): void {
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK);
  } catch {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM_PATH}: the browser tests need it. ` +
        `Install Debian's package (apt-get install chromium; .ci/run does) or set CHROMIUM_PATH.`,
    );
  }
}

export async function launchChromium(): Promise<Browser> {
  assertChromiumInstalled();
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
  });
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACT_DIR, { recursive: true });
  const path = join(ARTIFACT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * Records what would show a broken page: script errors, CSP violations (the dashboard's
 * policy forbids inline code and foreign origins) and console errors other than the
 * failed requests a test provokes on purpose.
 */
export function watchProblems(page: Page): { problems: string[] } {
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    if (/Failed to load resource|net::ERR_/.test(text)) return; // provoked 401s, aborted requests
    problems.push(`console error: ${text}`);
  });
  void page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  return { problems };
}
