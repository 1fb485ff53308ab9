// Drives `trackhooks ui` in Debian's chromium: runs view, run view, compare overlay, a point logged
// by another process appearing without reload, injection inert, no console errors. Prints one JSON
// line. Usage: node check_ui.mjs BASE_URL LIVE_RUN_ID SCREENSHOT_DIR [CHROMIUM]
import { chromium } from "playwright-core";

const [base, liveId, shots, exe = "/usr/bin/chromium"] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: exe, headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
});
const out = { console_errors: [], page_errors: [], dialogs: [], external_requests: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 950 } });
  page.on("console", (m) => { if (m.type() === "error") out.console_errors.push(m.text()); });
  page.on("pageerror", (e) => out.page_errors.push(String(e)));
  page.on("dialog", (d) => { out.dialogs.push(d.message()); d.dismiss(); });
  page.on("request", (r) => { if (!r.url().startsWith(base)) out.external_requests.push(r.url()); });

  // runs view
  await page.goto(base + "/", { waitUntil: "load" });
  await page.waitForSelector("table#runs tbody tr");
  out.runs_listed = await page.$$eval("table#runs tbody tr", (rs) => rs.length);
  out.run_names = await page.$$eval("table#runs a.run-link", (as) => as.map((a) => a.textContent));
  await page.screenshot({ path: shots + "/ui-runs.png", fullPage: true });
  await page.evaluate(() => { window.__no_reload = 1; });

  // sort by name, filter by text
  await page.click("th[data-sort='name']");
  await page.waitForTimeout(400);
  out.sorted_names = await page.$$eval("table#runs a.run-link", (as) => as.map((a) => a.textContent));
  await page.fill("#filter", "alpha");
  await page.waitForTimeout(700);
  out.filtered = await page.$$eval("table#runs a.run-link", (as) => as.map((a) => a.textContent));
  await page.fill("#filter", "");
  await page.waitForTimeout(700);

  // compare two runs: select, click compare
  // the two finished runs share "loss"; the live run has only its own metric
  // (the table is rebuilt by its 3 s poll: pick the ids first, then check by selector, which retries)
  const pick = await page.$$eval("table#runs tbody tr", (rs) => rs.map((r) => [r.getAttribute("data-run"),
    r.querySelector("a.run-link").textContent]).filter(([, n]) => n === "alpha" || n.includes("<script>")).map(([id]) => id));
  for (const id of pick) await page.check(`table#runs input[type=checkbox][data-run='${id}']`);
  await page.click("#compare");
  await page.waitForSelector("#charts .card[data-series='2'] canvas", { timeout: 15000 });
  out.compare_series = await page.$$eval("#charts .card", (cs) => Object.fromEntries(
    cs.map((c) => [c.getAttribute("data-key"), Number(c.getAttribute("data-series"))])));
  out.diff_rows = await page.$$eval("#params-diff tr.diff", (rs) => rs.length);
  await page.selectOption("#xaxis", "epoch");
  await page.check("#logscale");
  await page.waitForTimeout(300);
  await page.screenshot({ path: shots + "/ui-compare.png", fullPage: true });

  // a run opens; a point logged by another process appears without reload
  await page.goto(base + "/#/run/" + liveId);
  await page.waitForSelector("#charts .card[data-key='live_metric'][data-points]", { timeout: 15000 });
  const before = Number(await page.getAttribute("#charts .card[data-key='live_metric']", "data-points"));
  let after = before;
  for (let i = 0; i < 40 && after <= before; i++) {
    await page.waitForTimeout(250);
    after = Number(await page.getAttribute("#charts .card[data-key='live_metric']", "data-points"));
  }
  out.live_before = before;
  out.live_after = after;
  out.live_status = await page.textContent("#run-status");
  out.no_reload = await page.evaluate(() => window.__no_reload === 1);
  out.run_sections = await page.$$eval("h2", (hs) => hs.map((h) => h.textContent));
  // console: live tail of complete lines, the unfinished line (a progress bar) replaced in place
  const lines = async () => (await page.textContent("#console")).split("\n").filter((l) => l.startsWith("console line")).length;
  await page.waitForFunction(() => (document.querySelector("#console") || {}).textContent.includes("console line"), null, { timeout: 15000 });
  out.console_before = await lines();
  out.console_after = out.console_before;
  for (let i = 0; i < 40 && out.console_after <= out.console_before; i++) {
    await page.waitForTimeout(250);
    out.console_after = await lines();
  }
  out.console_first = (await page.textContent("#console")).split("\n")[1];
  out.console_partial = await page.textContent("#console .partial");
  await page.waitForSelector("#system-charts .card[data-key='system/cpu_percent'][data-points]", { timeout: 15000 });
  out.system_keys = await page.$$eval("#system-charts .card", (cs) => cs.map((c) => c.getAttribute("data-key")));
  out.metric_keys = await page.$$eval("#charts .card", (cs) => cs.map((c) => c.getAttribute("data-key")));
  out.system_axis = await page.$eval("#system-xaxis", (s) => s.value);
  await page.screenshot({ path: shots + "/ui-run.png", fullPage: true });
  out.xss = await page.evaluate(() => window.__xss || null);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
