// The web UI in headless Chromium as a restricted user, run by tests/it/ui.rs:
//   node ui-as-user.cjs BASE_URL USER PASSWORD SQL...
// Signs in and prints, one JSON object per line, what the user is shown: the overview's KPIs,
// the worklist's grid, the catalog's table count, and for each SQL statement the CSV the SQL
// page downloads or the error it shows. The Rust test decides what is right.
'use strict';
const fs = require('fs');
const { chromium } = require('playwright-core');

const [base, user, password, ...queries] = process.argv.slice(2);
const emit = (what) => console.log(JSON.stringify(what));

async function grid(page) {
  const header = await page.$$eval('.grid thead th', (h) => h.map((x) => x.textContent.trim()));
  const rows = await page.$$eval('.grid tbody tr', (trs) => trs.map((tr) =>
    Array.from(tr.querySelectorAll('td')).map((td) => td.textContent.trim())));
  return { header, rows };
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CARELAKE_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  let failed = false;
  try {
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    await page.goto(`${base}/login`);
    await page.fill('#user', user);
    await page.fill('#password', password);
    await page.click('button[type=submit]');
    await page.waitForURL(`${base}/`);
    const kpis = await page.$$eval('.kpi .value', (v) => v.map((x) => x.textContent.trim()));
    emit({ what: 'overview', kpis });

    let response = await page.goto(`${base}/worklist?risk=all`);
    emit({ what: 'worklist', status: response.status(), ...(await grid(page)) });

    // With CARELAKE_OUTREACH=outcome: record that outcome with the first row's form.
    const outcome = process.env.CARELAKE_OUTREACH;
    if (outcome) {
      const form = page.locator('form.outreach').first();
      await form.locator('select').selectOption(outcome);
      await Promise.all([page.waitForURL(/\/worklist/), form.locator('button').click()]);
      const error = await page.$('.error');
      emit({ what: 'outreach', url: page.url(), error: error ? (await error.textContent()).trim() : null });
    }

    response = await page.goto(`${base}/catalog`);
    emit({ what: 'catalog', status: response.status(), ...(await grid(page)) });

    for (const sql of queries) {
      await page.goto(`${base}/sql`);
      await page.fill('#sql', sql);
      await page.click('#run');
      await page.waitForSelector('#sql-summary, #sql-error');
      const error = await page.$('#sql-error');
      if (error) {
        emit({ what: 'sql', sql, error: (await error.textContent()).trim() });
        continue;
      }
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#csv')]);
      const csv = fs.readFileSync(await download.path(), 'utf8').trim().split('\n');
      emit({ what: 'sql', sql, csv });
    }
  } catch (e) {
    failed = true;
    emit({ what: 'failure', message: e.message });
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
})();
