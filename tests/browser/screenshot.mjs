// Screenshot of a page in Debian's chromium, for the README. Usage: node screenshot.mjs URL OUT.png [WAIT_SELECTOR]
import { chromium } from "playwright-core";

const [url, out, wait] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"] });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(url, { waitUntil: "load" });
  if (wait) await page.waitForSelector(wait, { timeout: 15000 });
  await page.waitForTimeout(800);
  await page.screenshot({ path: out, fullPage: process.env.FULL === "1" });
} finally {
  await browser.close();
}
