// The approval page in chromium, as an approver meets it: at desktop and phone widths,
// open the emailed link, check what the page says, click Approve with a reason, check the
// page after; and a stale tab's Deny, refused, that keeps what was typed. tests/browser.sh
// starts the system, writes REQUESTS and checks the stored decisions after.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const requests = JSON.parse(readFileSync(process.env.REQUESTS, 'utf8'));
const out = process.env.OUT;
const widths = {
  desktop: { width: 1280, height: 900 },
  phone: { width: 390, height: 844 },
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run'],
});

const text = (page, selector) => page.locator(selector).innerText();
const noSideways = (page) => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);

async function checkConfirmPage(page, r, name) {
  assert.equal(await page.title(), `Approve ${r.image}? · Image Request`);
  assert.equal(await text(page, 'h1'), `Approve ${r.image}?`);
  assert.equal(await text(page, '#image'), r.image);
  assert.equal(await text(page, '#destination'), `cgr.dev/${requests.org}/${r.image}`);
  assert.equal(await text(page, '#status'), 'waiting for a decision');
  assert.match(await text(page, '#expiry'), /^This link works until \d{4}-\d\d-\d\d \d\d:\d\d UTC, once\.$/);
  assert.equal(await text(page, '#request-id'), r.id);
  assert.match(await text(page, '#capacity'), /^\d[\d,]* of 2,500 repositories used \(when checked\)$/);
  const name_ = r.image.split(':')[0];
  assert.equal(await page.locator('a[href*="images.chainguard.dev"]').getAttribute('href'),
    `https://images.chainguard.dev/directory/image/${name_}/overview`);
  // The facts are the largest text after the title.
  const size = (sel) => page.locator(sel).evaluate((e) => parseFloat(getComputedStyle(e).fontSize));
  assert.ok(await size('#image') > await size('#requester'), 'the image is prominent');
  assert.ok(await noSideways(page), `${name}: nothing overflows sideways`);
  await page.screenshot({ path: `${out}/confirm-${name}.png`, fullPage: true });
}

// Desktop: the request with two lines, a 300-character word, and a second asker.
{
  const r = requests.desktop;
  const ctx = await browser.newContext({ viewport: widths.desktop });
  const page = await ctx.newPage();
  // A tab opened on the Deny link, and left there (phone width).
  const staleCtx = await browser.newContext({ viewport: widths.phone, isMobile: true });
  const stale = await staleCtx.newPage();
  await stale.goto(r.deny);
  assert.equal(await text(stale, 'h1'), `Deny ${r.image}?`);
  assert.ok(await noSideways(stale), 'the deny page fits a phone, long word and all');

  await page.goto(r.approve);
  await checkConfirmPage(page, r, 'desktop');
  const justification = await text(page, '#justification');
  assert.ok(justification.includes('Reporting database for the data team.\nSecond line: kept as written.'),
    `multi-line text is kept: ${JSON.stringify(justification)}`);
  const also = await text(page, '#also-asked');
  assert.ok(also.includes('email:platform-admin@example.com') && also.includes('Analytics needs it too'), also);
  assert.match(await text(page, '#standing'), /One other person asked for it too/);

  await page.fill('#reason', 'Fine for the desktop test.\nSecond line.');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(await text(page, 'h1'), `Approved: ${r.image}`);
  assert.match(await text(page, '#decision'),
    /^Approved by email:platform-admin@example\.com at \d{4}-\d\d-\d\d \d\d:\d\d UTC\. The requester and the other person who asked will be told\.$/);
  assert.equal(await text(page, '#reason'), 'Fine for the desktop test.\nSecond line.');
  assert.equal(await text(page, '#follow'), `cgr-request status ${r.id}`);
  assert.notEqual(await text(page, '#status'), 'waiting for a decision');
  await page.screenshot({ path: `${out}/decided-desktop.png`, fullPage: true });

  // The stale tab: a reason typed, Deny clicked after the approval. Refused, and it says
  // which image and what happened, and gives back what was typed.
  await stale.fill('#reason', 'Typed in a tab left open.');
  const [answer] = await Promise.all([stale.waitForNavigation(), stale.click('button[type=submit]')]);
  assert.equal(answer.status(), 409);
  assert.equal(await text(stale, '#image'), r.image);
  assert.match(await text(stale, '#problem'),
    new RegExp(`^${r.image.replace('.', '\\.')}: already decided by email:platform-admin@example\\.com at .*Your decision was not recorded\\.$`));
  assert.equal(await stale.locator('#typed').inputValue(), 'Typed in a tab left open.');
  assert.ok(await noSideways(stale), 'the refusal fits a phone');
  await stale.screenshot({ path: `${out}/stale-tab-phone.png`, fullPage: true });
  await ctx.close();
  await staleCtx.close();
}

// Phone: the whole approval on a small screen.
{
  const r = requests.phone;
  const ctx = await browser.newContext({ viewport: widths.phone, isMobile: true });
  const page = await ctx.newPage();
  await page.goto(r.approve);
  await checkConfirmPage(page, r, 'phone');
  assert.equal(await page.locator('#also-asked').count(), 0, 'nobody else asked');
  await page.fill('#reason', 'Fine for the phone test.\nSecond line.');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(await text(page, 'h1'), `Approved: ${r.image}`);
  assert.match(await text(page, '#decision'), /The requester will be told\.$/);
  assert.ok(await noSideways(page), 'the page after fits a phone');
  await page.screenshot({ path: `${out}/decided-phone.png`, fullPage: true });
  await ctx.close();
}

await browser.close();
console.log('approval pages: desktop and phone checked');
