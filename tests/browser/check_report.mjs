// Opens a trackhooks HTML report in Debian's chromium (no browser download) and prints one JSON
// line with what a person would check: console errors, charts rendered, injections inert, no
// network. Usage: node check_report.mjs REPORT.html SCREENSHOT.png [CHROMIUM]
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";

const [report, shot, exe = "/usr/bin/chromium"] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: exe,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
});
const out = { console_errors: [], page_errors: [], requests: [], dialogs: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 }, deviceScaleFactor: 1 });
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") out.console_errors.push(m.text()); });
  page.on("pageerror", (e) => out.page_errors.push(String(e)));
  page.on("dialog", (d) => { out.dialogs.push(d.message()); d.dismiss(); });
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (!url.startsWith("file:")) { out.requests.push(url); return route.abort(); }
    return route.continue();
  });
  const t0 = Date.now();
  await page.goto(pathToFileURL(report).href, { waitUntil: "load" });
  await page.waitForSelector("body[data-ready='1']", { timeout: 15000 });
  out.load_ms = Date.now() - t0;
  out.expected_charts = Number(await page.getAttribute("#chart-grid", "data-charts"));
  out.render_ms = await page.evaluate(() => window.__trackhooks.render_ms);
  out.charts = await page.$$eval(".chart canvas", (cs) => cs.map((c) => ({
    key: c.parentElement.getAttribute("data-key"), points: Number(c.getAttribute("data-points") || 0),
    series: Number(c.getAttribute("data-series") || 0), width: c.width, height: c.height })));
  out.notes = await page.$$eval(".chart-note", (ns) => ns.map((n) => n.textContent));
  out.xss = await page.evaluate(() => window.__xss || null);
  out.injected_elements = await page.$$eval("main script, main img, header script, header img", (e) => e.length);
  out.title = await page.title();
  out.body_text_has_payload = (await page.textContent("body")).includes("<script>window.__xss");
  // interactions: hover a chart, switch to the epoch axis, hide a run, zoom by dragging
  const first = await page.$(".chart canvas");
  if (first) {
    const box = await first.boundingBox();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
    out.tooltip_rows = await page.$$eval(".tip", (ts) => Math.max(0, ...ts.map((t) => t.style.display === "block" ? t.children.length : 0)));
    await page.screenshot({ path: shot.replace(/\.png$/, "-hover.png"), fullPage: false });
    // responsiveness with the largest series: time a sweep of hover moves (reported, not asserted)
    const moves = 40, t1 = Date.now();
    for (let i = 0; i < moves; i++) await page.mouse.move(box.x + box.width * (0.1 + 0.8 * i / moves), box.y + box.height * 0.5);
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
    out.hover_ms_per_move = (Date.now() - t1) / moves;
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.8, box.y + box.height * 0.5, { steps: 4 });
    await page.mouse.up();
    out.zoom = await first.getAttribute("data-zoom");
    await page.mouse.dblclick(box.x + box.width * 0.5, box.y + box.height * 0.5);
  }
  await page.click("button[data-x='epoch']");
  out.epoch_points = await page.$$eval(".chart canvas", (cs) => cs.map((c) => Number(c.getAttribute("data-points"))));
  await page.click("button[data-x='step']");
  const box0 = await page.$("input[type=checkbox][data-run='0']");
  if (box0) {
    await box0.click();
    out.after_hide_series = await page.$$eval(".chart canvas", (cs) => cs.map((c) => Number(c.getAttribute("data-series"))));
    await box0.click();
  }
  await page.mouse.move(0, 0);
  await page.screenshot({ path: shot, fullPage: true });
  out.xss_after = await page.evaluate(() => window.__xss || null);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
