// Opens a page in a fresh headless chromium and prints one JSON line of its timings (ms since
// navigation start): first paint, first contentful paint, load event, when the page said it had
// drawn its charts and panels (body[data-ready]) and when the report had attached its embedded
// images (body[data-images]). Usage: node paint.mjs URL [CHROMIUM]
import { chromium } from "playwright-core";

const [url, exe = "/usr/bin/chromium"] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: exe, headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"] });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 }, deviceScaleFactor: 1 });
  await page.addInitScript(() => {
    new MutationObserver(() => {
      if (document.body && document.body.getAttribute("data-ready") === "1" && !window.__ready_at) window.__ready_at = performance.now();
      if (document.body && document.body.getAttribute("data-images") === "1" && !window.__images_at) window.__images_at = performance.now();
    }).observe(document, { attributes: true, subtree: true, attributeFilter: ["data-ready", "data-images"] });
  });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("body[data-ready='1']", { timeout: 30000 });
  if (await page.$("#trackhooks-images")) await page.waitForSelector("body[data-images='1']", { timeout: 30000 });
  const t = await page.evaluate(() => {
    const paint = Object.fromEntries(performance.getEntriesByType("paint").map((e) => [e.name, e.startTime]));
    const nav = performance.getEntriesByType("navigation")[0];
    return { first_paint: paint["first-paint"], fcp: paint["first-contentful-paint"], load: nav.loadEventEnd,
             ready: window.__ready_at, images: window.__images_at || window.__ready_at, images_shown: document.querySelectorAll(".media-panel img[src]").length };
  });
  console.log(JSON.stringify(t));
} finally {
  await browser.close();
}
