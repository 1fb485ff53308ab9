// The report's System section in chromium: system/* charts in their own grid, drawn on a
// wall-time axis by default, switchable to sample number; no console errors. Prints one JSON line.
// Usage: node check_report_system.mjs REPORT_HTML [CHROMIUM]
import { chromium } from "playwright-core";

const [report, exe = "/usr/bin/chromium"] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: exe, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
const out = { console_errors: [], page_errors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") out.console_errors.push(m.text()); });
  page.on("pageerror", (e) => out.page_errors.push(String(e)));
  await page.goto("file://" + report);
  await page.waitForSelector("body[data-ready='1']");
  const keys = (sel) => page.$$eval(sel + " .chart", (cs) => cs.map((c) => c.getAttribute("data-key")));
  out.system_keys = await keys("#system-grid");
  out.metric_keys = await keys("#chart-grid");
  out.expected = Number(await page.getAttribute("#system-grid", "data-charts"));
  out.axis = await page.getAttribute("button[data-sysx].on", "data-sysx");
  const points = () => page.$$eval("#system-grid .chart canvas", (cs) => cs.map((c) => Number(c.getAttribute("data-points"))));
  out.points_wall = await points();
  const canvas = await page.$("#system-grid .chart canvas");
  await canvas.scrollIntoViewIfNeeded();
  const box = await canvas.boundingBox();
  await page.mouse.move(box.x + box.width - 16, box.y + box.height / 2);  // next to the last sample
  out.tip = await page.$eval("#system-grid .tip .x", (t) => t.textContent).catch(() => null);
  await page.click("button[data-sysx='step']");
  out.points_sample = await points();
  await page.screenshot({ path: report + ".png", fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
