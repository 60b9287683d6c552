// The web UI in headless Chromium (Debian's chromium, driven by playwright-core), run by
// tests/it/ui.rs:  node ui-test.cjs BASE_URL USER PASSWORD SCREENSHOT_DIR
// Signs in, opens every page, checks that it loads, that charts draw and that a query runs and
// downloads as CSV, and takes a screenshot of each page. Prints one line per check; exits 1 on
// the first failure.
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const [base, user, password, shots] = process.argv.slice(2);

function check(ok, what) {
  if (!ok) {
    console.log(`FAIL ${what}`);
    throw new Error(what);
  }
  console.log(`ok ${what}`);
}

(async () => {
  fs.mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CARELAKE_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  let failed = false;
  try {
    const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`script error: ${e}`));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
    // The UI works offline: it asks nothing of any other host.
    page.on('request', (r) => { if (!r.url().startsWith(base)) problems.push(`request to ${r.url()}`); });
    const shot = (name) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

    let response = await page.goto(`${base}/`);
    check(page.url() === `${base}/login`, 'signed out, / leads to the sign-in page');
    await shot('login');
    await page.fill('#user', user);
    await page.fill('#password', 'not the password');
    await page.click('button[type=submit]');
    check((await page.textContent('.error') || '').includes('Wrong user name or password'), 'a wrong password is refused');
    await page.fill('#user', user);
    await page.fill('#password', password);
    await page.click('button[type=submit]');
    await page.waitForURL(`${base}/`);
    check(true, 'signed in');

    // Overview: four charts, each with marks of a real size.
    const charts = await page.$$eval('svg.chart', (svgs) => svgs.map((s) => {
      const marks = s.querySelectorAll('rect.bar, circle.dot');
      const box = s.getBoundingClientRect();
      let drawn = 0;
      marks.forEach((m) => { const b = m.getBoundingClientRect(); if (b.width > 0 && b.height > 0) drawn += 1; });
      return { marks: marks.length, drawn, width: box.width, height: box.height };
    }));
    check(charts.length === 4, `overview has 4 charts (${charts.length})`);
    check(charts.every((c) => c.marks > 0 && c.drawn === c.marks && c.width > 200 && c.height > 50),
      `every chart draws its marks ${JSON.stringify(charts)}`);
    const kpis = await page.$$eval('.kpi .value', (v) => v.map((x) => x.textContent));
    check(kpis.length === 4 && kpis.every((k) => k && k.trim() !== ''), `KPIs shown ${JSON.stringify(kpis)}`);
    await shot('overview');

    // Worklist.
    response = await page.goto(`${base}/worklist?risk=all`);
    check(response.status() === 200, 'worklist loads');
    const worklistRows = await page.$$eval('.grid tbody tr', (r) => r.length);
    check(worklistRows > 0, `worklist lists recent discharges (${worklistRows})`);
    await page.goto(`${base}/worklist`);
    await shot('worklist');

    // Catalog and one table's page with its lineage graph.
    response = await page.goto(`${base}/catalog`);
    check(response.status() === 200, 'catalog loads');
    const tables = await page.$$eval('.grid tbody tr', (r) => r.length);
    check(tables >= 20, `catalog lists the tables (${tables})`);
    await shot('catalog');
    await page.click('a[href="/catalog/analytics.fact_encounter"]');
    await page.waitForURL(`${base}/catalog/analytics.fact_encounter`);
    const nodes = await page.$$eval('svg.lineage rect.node', (n) => n.length);
    check(nodes >= 3, `lineage graph draws upstream and downstream (${nodes} nodes)`);
    const columns = await page.$$eval('.grid tbody tr', (r) => r.length);
    check(columns > 5, `table page lists columns (${columns})`);
    await shot('catalog-table');

    // SQL editor: a query runs, the grid fills, the CSV downloads.
    await page.goto(`${base}/sql`);
    await page.fill('#sql', "SELECT facility_id, count(*) AS stays FROM analytics.fact_encounter WHERE encounter_class = 'inpatient' GROUP BY facility_id ORDER BY facility_id");
    await page.click('#run');
    await page.waitForSelector('#sql-summary');
    const grid = await page.$$eval('.grid tbody tr', (r) => r.length);
    const header = await page.$$eval('.grid thead th', (h) => h.map((x) => x.textContent));
    check(grid > 0 && header.join(',') === 'facility_id,stays', `query result grid (${grid} rows, ${header})`);
    await shot('sql');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#csv')]);
    const csv = fs.readFileSync(await download.path(), 'utf8').trim().split('\n');
    check(csv[0] === 'facility_id,stays' && csv.length === grid + 1, `CSV download (${csv.length} lines)`);
    await page.goto(`${base}/sql`);
    await page.fill('#sql', "SELECT CAST('Lovelace' AS INT)");
    await page.click('#run');
    await page.waitForSelector('#sql-error');
    const error = await page.textContent('#sql-error');
    check(!error.includes('Lovelace'), `a failed query shows its error without the literal (${error.trim()})`);

    // Pipeline runs.
    response = await page.goto(`${base}/runs`);
    check(response.status() === 200, 'pipeline runs load');
    const runs = await page.$$eval('.grid tbody tr', (r) => r.length);
    check(runs >= 20, `pipeline runs listed (${runs})`);
    await shot('runs');

    // Sign out: the cookie no longer opens pages.
    await page.click('.signout button');
    await page.waitForURL(`${base}/login`);
    await page.goto(`${base}/catalog`);
    check(page.url() === `${base}/login`, 'signed out');

    check(problems.length === 0, `no script errors or outside requests ${JSON.stringify(problems)}`);
  } catch (e) {
    failed = true;
    console.log(`error: ${e.message}`);
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
})();
