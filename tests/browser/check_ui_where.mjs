// Drives the where box of `trackhooks ui` in Debian's chromium: a typed expression filters the
// table to exactly the matching runs (also when an unfiltered poll answers late), a malformed one
// shows the QueryError with its caret and leaves the table as it was, clearing the box shows all
// runs again. Every wait is on a condition, none on a clock. Prints one JSON line.
// Usage: node check_ui_where.mjs BASE_URL SCREENSHOT_DIR CHROMIUM SPEC_JSON
//   SPEC_JSON: {"where": ..., "bad": ..., "all": [names], "match": [names]}
import { chromium } from "playwright-core";

const [base, shots, exe, specText] = process.argv.slice(2);
const spec = JSON.parse(specText);
const browser = await chromium.launch({
  executablePath: exe, headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
});
const out = { console_errors: [], page_errors: [], dialogs: [], timeouts: [] };
const WAIT = 20000;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
  page.on("console", (m) => {
    // the 400 of a malformed expression is the answer under test, not a fault of the page
    if (m.type() === "error" && !m.text().includes("400 (Bad Request)")) out.console_errors.push(m.text());
  });
  page.on("pageerror", (e) => out.page_errors.push(String(e)));
  page.on("dialog", (d) => { out.dialogs.push(d.message()); d.dismiss(); });

  const names = () => page.$$eval("table#runs a.run-link", (as) => as.map((a) => a.textContent).sort());
  // wait until the table lists exactly `want`; on a timeout, say so and report what it shows
  async function tableShows(want, what) {
    try {
      await page.waitForFunction((w) => JSON.stringify(Array.from(document.querySelectorAll("table#runs a.run-link"),
        (a) => a.textContent).sort()) === JSON.stringify(w), [...want].sort(), { timeout: WAIT });
    } catch (e) {
      out.timeouts.push(what);
    }
    return names();
  }
  // the table is aria-busy while an answer is awaited: not busy = the last answer was handled
  const handled = () => page.waitForSelector("table#runs:not([aria-busy])", { state: "attached", timeout: WAIT });
  const errorShown = () => page.$eval("#where-error", (e) => !e.hidden);
  const box = page.locator("#where");

  await page.goto(base + "/", { waitUntil: "load" });
  out.initial = await tableShows(spec.all, "initial");
  // every render of the table, in order (the 3 s poll renders too)
  await page.evaluate(() => {
    window.__renders = [];
    const table = document.getElementById("runs");
    new MutationObserver(() => window.__renders.push(Array.from(table.querySelectorAll("a.run-link"),
      (a) => a.textContent).sort())).observe(table, { childList: true, subtree: true });
  });
  const renders = () => page.evaluate(() => window.__renders);

  // hold back the next unfiltered poll: its answer (the real server's, fetched at once) arrives
  // only after the filtered one has been shown, as a slow network would deliver it
  let releaseHeld, heldUrl;
  const held = new Promise((resolve) => { releaseHeld = resolve; });
  let holding = true;
  const unfiltered = (url) => url.pathname === "/api/runs" && !url.searchParams.has("where");
  const heldRoute = new Promise((resolve) => {
    page.route(unfiltered, async (route) => {
      if (!holding) return route.continue();
      holding = false;
      heldUrl = route.request().url();
      const response = await route.fetch();
      resolve();
      await held;
      await route.fulfill({ response });
    });
  });
  await heldRoute;  // the poll is in flight

  await box.click();
  await box.pressSequentially(spec.where);
  await box.press("Enter");
  out.filtered = await tableShows(spec.match, "filtered");
  out.info_filtered = await page.textContent("#runs-info");

  const k = (await renders()).length;
  const stale = page.waitForResponse((r) => r.url() === heldUrl);
  releaseHeld();
  await (await stale).finished();
  // then one more filtered answer of the poll: every render since the release must be the filtered table
  try {
    await page.waitForFunction(([k, w]) => window.__renders.length > k &&
      JSON.stringify(window.__renders[window.__renders.length - 1]) === JSON.stringify(w),
      [k, [...spec.match].sort()], { timeout: WAIT });
  } catch (e) {
    out.timeouts.push("poll after the late answer");
  }
  out.renders_after_late_answer = (await renders()).slice(k);
  await page.unroute(unfiltered);

  // a malformed expression: the error with its caret, the table left as it was
  await box.selectText();
  const firstBad = page.waitForResponse((r) => r.url().includes("/api/runs?") && r.status() === 400);
  await box.pressSequentially(spec.bad);
  await box.press("Enter");
  await firstBad;
  try {
    await page.waitForSelector("#where-error:not([hidden])", { timeout: WAIT });
  } catch (e) {
    out.timeouts.push("error shown");
  }
  out.error_text = await page.textContent("#where-error");
  out.error_font = await page.$eval("#where-error", (e) => getComputedStyle(e).fontFamily);
  const kBad = (await renders()).length;
  // the poll asks again with the same expression: still the error, still the same table
  await page.waitForResponse((r) => r.url().includes("/api/runs?") && r.status() === 400, { timeout: WAIT });
  await handled();
  out.after_error = await names();
  out.error_still_shown = await errorShown();
  out.header_cells = await page.$$eval("table#runs thead th", (ths) => ths.length);
  out.renders_after_error = (await renders()).slice(kBad);
  out.info_after_error = await page.textContent("#runs-info");
  await page.screenshot({ path: shots + "/ui-where-error.png", fullPage: true });

  // clearing the box from the keyboard shows every run again and hides the error
  await box.click();
  await box.press("ControlOrMeta+a");
  await box.press("Backspace");
  out.cleared = await tableShows(spec.all, "cleared");
  try {
    await page.waitForSelector("#where-error[hidden]", { state: "attached", timeout: WAIT });
  } catch (e) {
    out.timeouts.push("error hidden");
  }
  out.error_shown_after_clear = await errorShown();
  out.box_after_clear = await box.inputValue();
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
