// Media panels in Debian's chromium, for the HTML report (a file: URL) and `trackhooks ui` (an http
// URL to a run or compare view): step sliders change the image, the confusion-matrix toggle
// normalises, tables sort, histograms switch to the all-steps view, injections stay inert, and
// (UI) records logged by another writer appear without a reload. Prints one JSON line.
// Usage: node check_media.mjs URL SCREENSHOT.png [CHROMIUM] [LIVE_KEY]
import { chromium } from "playwright-core";

const [url, shot, exe = "/usr/bin/chromium", liveKey = ""] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: exe, headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
});
const out = { console_errors: [], page_errors: [], dialogs: [], external_requests: [] };
const origin = url.startsWith("file:") ? "file:" : new URL(url).origin;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 }, deviceScaleFactor: 1 });
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") out.console_errors.push(m.text()); });
  page.on("pageerror", (e) => out.page_errors.push(String(e)));
  page.on("dialog", (d) => { out.dialogs.push(d.message()); d.dismiss(); });
  await page.route("**/*", (route) => {
    const u = route.request().url();
    if (!u.startsWith(origin)) { out.external_requests.push(u); return route.abort(); }
    return route.continue();
  });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector(".media-panel[data-key='samples'] img[src]", { timeout: 20000 });
  // every key's panel is there (the UI adds them as their records arrive, which moves the others)
  await page.waitForFunction(() => {
    const g = document.getElementById("media-grid") || document.getElementById("media");
    return g && g.getAttribute("data-settled") === "1" && document.querySelectorAll(".media-panel").length >= 7;
  }, null, { timeout: 20000 });
  out.panels = await page.$$eval(".media-panel", (ps) => ps.map((p) => ({
    key: p.getAttribute("data-key"), kind: p.getAttribute("data-kind"), steps: Number(p.getAttribute("data-steps")),
    step: p.getAttribute("data-step"), cells: p.querySelectorAll(".media-cell").length })));
  out.paint = await page.evaluate(() => Object.fromEntries(performance.getEntriesByType("paint").map((e) => [e.name, e.startTime])));

  // images: the slider starts at the last step; clicking its left end shows the first image
  const img = ".media-panel[data-key='samples'] .media-cell:first-child img";
  const slider = ".media-panel[data-key='samples'] input.media-slider";
  out.image_last = { step: await page.getAttribute(img, "data-step"), src: (await page.getAttribute(img, "src")).slice(-40) };
  await page.locator(slider).scrollIntoViewIfNeeded();
  const box = await (await page.$(slider)).boundingBox();
  await page.mouse.click(box.x + 2, box.y + box.height / 2);
  out.image_first = { step: await page.getAttribute(img, "data-step"), src: (await page.getAttribute(img, "src")).slice(-40),
    panel_step: await page.getAttribute(".media-panel[data-key='samples']", "data-step") };
  await page.focus(slider);
  await page.keyboard.press("ArrowRight");
  out.image_next = { step: await page.getAttribute(img, "data-step"), src: (await page.getAttribute(img, "src")).slice(-40) };
  out.caption = await page.textContent(".media-panel[data-key='samples'] .media-cell:first-child .media-cap");
  // at a step only the second run logged, both runs show a record: each its latest at or before it
  out.cell_steps_by_slider = [];
  const nSteps = Number(await page.getAttribute(".media-panel[data-key='samples']", "data-steps"));
  for (let i = 0; i < nSteps; i++) {
    await page.$eval(slider, (s, v) => { s.value = String(v); s.dispatchEvent(new Event("input")); }, i);
    out.cell_steps_by_slider.push(await page.$$eval(".media-panel[data-key='samples'] .media-cell",
      (cs) => cs.map((c) => c.getAttribute("data-record-step"))));
  }

  // confusion matrix: counts, then normalised by the true label (each row sums to 1)
  const cm = ".media-panel[data-key='val_confusion'] .media-cell:first-child table.media-cm";
  const cells = async () => page.$$eval(cm + " tbody tr", (rs) => rs.map((r) => Array.from(r.querySelectorAll("td")).map((t) => t.textContent)));
  out.cm_counts = await cells();
  await page.click(".media-panel[data-key='val_confusion'] button[data-mode='normalized']");
  out.cm_normalized = await cells();
  out.cm_mode = await page.getAttribute(cm, "data-mode");
  await page.click(".media-panel[data-key='val_confusion'] button[data-mode='counts']");
  out.cm_back = await cells();

  // table: click a column header to sort ascending, again for descending
  const tbl = ".media-panel[data-key='predictions'] table.media-table";
  const col = async (i) => page.$$eval(tbl + " tbody tr", (rs, i) => rs.map((r) => r.children[i].textContent), i);
  const scoreIdx = await page.$$eval(tbl + " thead th", (ths) => ths.findIndex((t) => t.textContent === "score"));
  out.table_before = await col(scoreIdx);
  await page.click(tbl + ` thead th[data-col='${scoreIdx}']`);
  out.table_asc = await col(scoreIdx);
  await page.click(tbl + ` thead th[data-col='${scoreIdx}']`);
  out.table_desc = await col(scoreIdx);
  const labelIdx = await page.$$eval(tbl + " thead th", (ths) => ths.findIndex((t) => t.textContent === "label"));
  await page.click(tbl + ` thead th[data-col='${labelIdx}']`);
  out.table_labels = await col(labelIdx);

  // histogram: this step's bars, then every step as a heat map
  const hist = ".media-panel[data-key='weights/fc1'] canvas";
  out.hist_bars = { mode: await page.getAttribute(hist, "data-mode"), bins: await page.getAttribute(hist, "data-bins") };
  await page.click(".media-panel[data-key='weights/fc1'] button[data-mode='ridge']");
  out.hist_ridge = { mode: await page.getAttribute(hist, "data-mode"), rows: await page.getAttribute(hist, "data-rows") };
  await page.click(".media-panel[data-key='weights/fc1'] button[data-mode='heat']");
  out.hist_heat = { mode: await page.getAttribute(hist, "data-mode"), rows: await page.getAttribute(hist, "data-rows") };
  out.hist_caption = await page.textContent(".media-panel[data-key='weights/fc1'] .media-cap");

  // a family of curves ("<base>/<member>") is one panel with the members overlaid
  out.family = await page.$$eval(".media-panel[data-key='pr_curve/*'] .media-cell", (cs) => cs.map((c) => ({
    legend: Array.from(c.querySelectorAll(".media-legend-item")).map((i) => i.textContent),
    lines: c.querySelector("canvas").getAttribute("data-lines"), caption: c.querySelector(".media-cap").textContent })));
  // curves: AUC where it applies
  out.curves = await page.$$eval(".media-panel[data-kind='curve']", (ps) => ps.map((p) => ({
    key: p.getAttribute("data-key"), auc: p.querySelector("canvas").getAttribute("data-auc"),
    points: Number(p.querySelector("canvas").getAttribute("data-points")), caption: p.querySelector(".media-cap").textContent })));

  out.xss = await page.evaluate(() => window.__xss || null);
  out.injected = await page.$$eval(".media-panel script, .media-panel img:not(.media-img)", (e) => e.length);
  out.payload_as_text = (await page.textContent("#media, #media-grid")).includes("<script>window.__xss=1</script>");

  // report only: the runs table hides a run's cells too, and panels filter by key
  const runBox = await page.$("#runs input[type=checkbox][data-run='1']");
  if (runBox) {
    await runBox.click();
    out.hidden_cells = await page.$$eval(".media-cell[data-run='1']", (cs) => cs.map((c) => c.hidden));
    await runBox.click();
    out.shown_again = await page.$$eval(".media-cell[data-run='1']", (cs) => cs.every((c) => !c.hidden));
    await page.fill("#media-filter", "ROC");
    out.filtered_panels = await page.$$eval(".media-panel:not(.hidden)", (ps) => ps.map((p) => p.getAttribute("data-key")));
    await page.fill("#media-filter", "");
  }
  if (liveKey) {
    // another writer keeps logging: the panel grows and, at the last step, follows it
    const p = `.media-panel[data-key='${liveKey}']`;
    await page.waitForSelector(p, { timeout: 20000 });
    out.live_before = Number(await page.getAttribute(p, "data-steps"));
    let after = out.live_before;
    for (let i = 0; i < 60 && after <= out.live_before + 1; i++) {
      await page.waitForTimeout(250);
      after = Number(await page.getAttribute(p, "data-steps"));
    }
    out.live_after = after;
    out.live_followed = (await page.getAttribute(p, "data-step")) === (await page.getAttribute(p + " img", "data-step"));
  }
  await page.$eval(slider, (s) => { s.value = s.max; s.dispatchEvent(new Event("input")); });
  await page.evaluate(() => document.querySelector("#media, #media-grid").scrollIntoView());
  await page.screenshot({ path: shot, fullPage: false });
  out.xss_after = await page.evaluate(() => window.__xss || null);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
