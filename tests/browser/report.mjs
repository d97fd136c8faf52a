// `cgr-request report --html` in chromium: the page is self-contained (nothing is fetched
// but the file itself), shows the report's own figures, draws every chart, and fits a
// phone. tests/browser.sh writes REPORT (the JSON) and PAGE (the HTML) from the same run.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const report = JSON.parse(readFileSync(process.env.REPORT, 'utf8'));
const url = pathToFileURL(process.env.PAGE).href;
const out = process.env.OUT;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run'],
});

for (const [name, viewport] of Object.entries({ desktop: { width: 1280, height: 900 }, phone: { width: 390, height: 844 } })) {
  const ctx = await browser.newContext({ viewport, javaScriptEnabled: false });
  const page = await ctx.newPage();
  const fetched = [];
  page.on('request', (r) => fetched.push(r.url()));
  await page.goto(url);
  assert.deepEqual(fetched, [url], 'the page fetches nothing but itself');

  const t = report.total;
  assert.equal(await page.locator('#card-requests b').innerText(), String(t.requests));
  assert.equal(await page.locator('#card-saved b').innerText(), `${t.time_saved_hours.toFixed(1)} h`);
  // One bar segment per non-empty outcome of each week, and every week labelled.
  const bars = await page.locator('#requests-chart rect').count();
  assert.ok(bars >= 1 && t.requests > 0, `bars drawn: ${bars}`);
  const heights = await page.locator('#requests-chart rect').evaluateAll((rs) => rs.map((r) => r.getBBox().height));
  assert.ok(heights.every((h) => h > 0), 'every segment is visible');
  for (const id of ['#approval-chart', '#satisfaction-chart']) {
    assert.equal(await page.locator(id).count(), 1, `${id} is drawn`);
    const box = await page.locator(id).boundingBox();
    assert.ok(box.width > 100 && box.height > 30, `${id} has a size: ${JSON.stringify(box)}`);
  }
  if (t.capacity_used !== null) {
    assert.equal(await page.locator('#capacity-chart').count(), 1);
  }
  // The satisfaction line has a point per week.
  assert.equal(await page.locator('#satisfaction-chart circle').count(), 2 * report.weeks.length);
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
    `${name}: nothing overflows sideways`);
  await page.screenshot({ path: `${out}/report-${name}.png`, fullPage: true });
  await ctx.close();
}
await browser.close();
console.log('report page checked at desktop and phone widths');
