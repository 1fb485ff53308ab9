// Opens a page with a trackhooks study view (the HTML report, or the UI at a study run) in Debian's
// chromium and prints one JSON line: errors, how many study charts drew something, and the hover
// read-out of the optimisation history. Usage: node check_study.mjs URL SCREENSHOT.png [CHROMIUM]
import { chromium } from "playwright-core";

const [url, shot, exe = "/usr/bin/chromium"] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: exe, headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run", "--disable-dev-shm-usage"] });
const out = { console_errors: [], page_errors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 }, deviceScaleFactor: 1 });
  page.on("console", (m) => { if (m.type() === "error") out.console_errors.push(m.text()); });
  page.on("pageerror", (e) => out.page_errors.push(String(e)));
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector(".study-chart canvas", { timeout: 15000 });
  out.charts = await page.$$eval(".study-chart", (cards) => cards.map((c) => {
    const canvas = c.querySelector("canvas");
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let inked = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked++;
    return { title: c.querySelector(".chart-title").textContent, width: canvas.width, inked };
  }));
  // move the mouse over the history chart (in the page: one round trip) until the read-out names a trial
  out.readout = await page.evaluate(() => {
    const canvas = document.querySelector(".study-chart canvas");
    const readout = canvas.parentElement.querySelector(".study-readout");
    canvas.scrollIntoView();
    const r = canvas.getBoundingClientRect();
    for (let x = r.left + 50; x < r.right; x += 2) {
      for (let y = r.top + 8; y < r.bottom - 28; y += 4) {
        canvas.dispatchEvent(new MouseEvent("mousemove", { clientX: x, clientY: y, bubbles: true }));
        if (readout.textContent.startsWith("trial")) return readout.textContent;
      }
    }
    return readout.textContent.trim();
  });
  await page.screenshot({ path: shot, fullPage: false });
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
