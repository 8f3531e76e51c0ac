// The whole redirect chain in a real browser (Debian's Chromium driven by
// playwright-core), against the server at BASE_URL: the local server, or the
// functions under `cargo lambda watch` behind it. Each test saves a
// screenshot on failure under .local/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../harness/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const BASE = process.env.BASE_URL;
const STACK = process.env.STACK_NAME || 'local';
const SHOTS = new URL('../../.local/screenshots/', import.meta.url).pathname;
const TIMEOUT = 30_000; // first calls under cargo lambda watch may start a function
let browser;

before(async () => {
  assert.ok(BASE, 'BASE_URL is required');
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => { await browser?.close(); });

const unique = (name) => `${name}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6)}`;

async function boards() {
  const res = await fetch(`${BASE}/_miro/_emulator/stats`);
  return (await res.json()).boards;
}

/**
 * A fresh browser context (its own session storage) on the demo app;
 * `prepare(context)` runs before the first request.
 */
async function openApp(t, prepare = async () => {}) {
  const context = await browser.newContext();
  t.after(async () => { await context.close(); });
  await prepare(context);
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  await page.goto(`${BASE}/`);
  return page;
}

/** Runs `body`; on failure saves a screenshot of every page given. */
async function withScreenshots(name, pages, body) {
  try {
    await body();
  } catch (e) {
    for (const [i, page] of pages().entries()) {
      await page.screenshot({ path: `${SHOTS}${STACK}-${name}-${i}.png`, fullPage: true }).catch(() => {});
    }
    throw e;
  }
}

async function signIn(page, user) {
  await page.fill('#user', user);
  await page.click('#sign-in');
  await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Signed in'));
  await page.waitForFunction(() => document.querySelector('#connection').textContent !== 'unknown');
}

async function clickCreate(page, name) {
  await page.fill('#board-name', name);
  await page.click('#create-board');
}

async function onConsentPage(page) {
  await page.waitForURL(/\/_miro\/oauth\/authorize\?/);
}

async function backOnApp(page) {
  await page.waitForURL((url) => url.pathname === '/' && !url.search.includes('miro_'));
}

async function status(page) {
  return page.textContent('#status');
}

/** The flow secret the demo's client keeps in the tab's session storage. */
async function keptFlowSecret(page) {
  return page.evaluate(() => sessionStorage.getItem('miro-connect.flow-secret'));
}

/** The connections as the API reports them for the user signed in on `page`. */
async function connections(page) {
  return page.evaluate(async () => {
    const res = await fetch('/miro/connections', { headers: { Authorization: 'Bearer ' + sessionStorage.getItem('demo-token') } });
    return (await res.json()).connections;
  });
}

/**
 * Whether `href` is the emulator's drawing of a board, `{emulator}/app/board/{id}`:
 * the view link the emulator answers, which the product passes on because it
 * is on the origin of the Miro API base it was configured with.
 */
function isDrawnBoard(href) {
  if (!href) return false;
  const url = new URL(href);
  return url.origin === new URL(BASE).origin && /^\/_miro\/app\/board\/[^/]+\/?$/.test(url.pathname);
}

// The emulator's teams (miro_emulator::TEAM_ID, SECOND_TEAM_ID).
const TEAM = '3458764517517818867';
const SECOND_TEAM = '3458764517517818868';

test('a new user clicks Create board, consents, and sees exactly one board; the second needs no consent', async (t) => {
  let page;
  await withScreenshots('connect', () => [page], async () => {
    page = await openApp(t);
    const before = await boards();
    await signIn(page, unique('ada'));
    assert.match(await page.textContent('#connection'), /not connected/);

    // Every response of the redirect chain: no caching, no Referer, nothing from elsewhere.
    const chain = [];
    const foreign = [];
    page.on('response', (r) => { if (r.request().isNavigationRequest()) chain.push(r); });
    page.on('request', (r) => {
      if (r.isNavigationRequest()) return;
      const frame = r.frame().url();
      if (frame.startsWith('http') && new URL(r.url()).origin !== new URL(frame).origin) foreign.push(r.url());
    });

    await clickCreate(page, 'Launch plan');
    await onConsentPage(page);
    assert.match(await page.textContent('h1'), /authorize/i);
    await page.click('#allow');
    await backOnApp(page);
    await page.waitForSelector('a.board-link');
    assert.equal(await page.textContent('a.board-link'), 'Launch plan');
    assert.ok(isDrawnBoard(await page.getAttribute('a.board-link', 'href')), 'the view link is the emulator\'s drawn board');
    assert.match(await page.textContent('#connection'), /^connected/);
    assert.equal(await boards(), before + 1, 'exactly one board');

    const kinds = chain.map((r) => new URL(r.url()).pathname);
    assert.ok(kinds.includes('/_miro/oauth/authorize'), kinds.join(' '));
    assert.ok(kinds.includes('/miro/callback'), kinds.join(' '));
    for (const r of chain) {
      const h = await r.allHeaders();
      assert.equal(h['cache-control'], 'no-store', `${r.status()} ${new URL(r.url()).pathname}`);
      assert.equal(h['referrer-policy'], 'no-referrer', `${r.status()} ${new URL(r.url()).pathname}`);
    }
    assert.deepEqual(foreign, [], 'no page in the chain loads from another origin');

    await clickCreate(page, 'Second board');
    await page.waitForFunction(() => document.querySelectorAll('a.board-link').length === 2);
    assert.equal(new URL(page.url()).pathname, '/', 'no consent page the second time');
    assert.equal(await boards(), before + 2);
  });
});

test('Deny lands back with a readable error and no connection', async (t) => {
  let page;
  await withScreenshots('deny', () => [page], async () => {
    page = await openApp(t);
    const before = await boards();
    await signIn(page, unique('bea'));
    await clickCreate(page, 'Never');
    await onConsentPage(page);
    await page.click('#deny');
    await backOnApp(page);
    await page.waitForFunction(() => document.querySelector('#status').className === 'error');
    assert.match(await status(page), /declined access/);
    await page.waitForFunction(() => document.querySelector('#connection').textContent === 'not connected');
    assert.equal((await connections(page)).length, 0);
    assert.equal(await boards(), before);
  });
});

test('disconnect, then create asks for consent again', async (t) => {
  let page;
  await withScreenshots('disconnect', () => [page], async () => {
    page = await openApp(t);
    await signIn(page, unique('cy'));
    await clickCreate(page, 'Before');
    await onConsentPage(page);
    await page.click('#allow');
    await backOnApp(page);
    await page.waitForSelector('a.board-link');

    await page.click('#disconnect');
    await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Disconnected'));
    assert.equal((await connections(page)).length, 0);
    await clickCreate(page, 'After');
    await onConsentPage(page);
  });
});

test('an authorize link opened by another signed-in user connects neither', async (t) => {
  let victim;
  let attacker;
  await withScreenshots('cross-user', () => [victim, attacker].filter(Boolean), async () => {
    victim = await openApp(t);
    await signIn(victim, unique('dee'));
    await victim.click('#connect');
    await onConsentPage(victim);
    const link = victim.url();

    attacker = await openApp(t);
    await signIn(attacker, unique('eve'));
    await attacker.goto(link);
    await attacker.click('#allow');
    await backOnApp(attacker);
    await attacker.waitForFunction(() => document.querySelector('#status').className === 'error');
    assert.match(await status(attacker), /started by another user/);

    assert.equal((await connections(attacker)).length, 0);
    await victim.goto(`${BASE}/`);
    await victim.waitForFunction(() => document.querySelector('#connection').textContent !== 'unknown');
    assert.equal((await connections(victim)).length, 0);
  });
});

test('a completion link opened in another tab completes nothing', async (t) => {
  let tabA;
  let tabB;
  await withScreenshots('other-tab', () => [tabA, tabB].filter(Boolean), async () => {
    const user = unique('fay');
    const before = await boards();
    tabA = await openApp(t);
    await signIn(tabA, user);

    // Tab A consents and Miro's callback runs (the completion is parked),
    // but tab A does not follow the redirect back: the return URL is all
    // that leaves it. (A route sees only the first request of a redirect
    // chain, so the consent POST is held and its chain walked one hop at a
    // time.)
    let returnUrl;
    const consent = (url) => url.pathname === '/_miro/oauth/authorize';
    await tabA.route(consent, async (route) => {
      if (route.request().method() !== 'POST') { await route.continue(); return; }
      const toCallback = await route.fetch({ maxRedirects: 0 });
      const callback = new URL(toCallback.headers().location, BASE);
      assert.equal(callback.pathname, '/miro/callback');
      const back = await tabA.context().request.get(callback.href, { maxRedirects: 0 });
      assert.equal(back.status(), 303);
      returnUrl = new URL(back.headers().location, BASE).href;
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'held' });
    });
    await clickCreate(tabA, 'Only from tab A');
    await onConsentPage(tabA);
    await tabA.click('#allow');
    await tabA.waitForFunction(() => document.body.textContent === 'held');
    await tabA.unroute(consent);
    assert.ok(returnUrl, 'the callback answered with a redirect');
    const completion = new URL(returnUrl).searchParams.get('miro_authorization');
    assert.ok(completion, returnUrl);
    const secret = await keptFlowSecret(tabA);
    assert.ok(secret, 'tab A keeps the flow secret');
    assert.ok(!returnUrl.includes(secret), 'the return URL does not carry the flow secret');

    // The same user, in a browser (context) that does not share tab A's
    // session storage, opens the completion link: nothing is connected.
    tabB = await openApp(t);
    await signIn(tabB, user);
    await tabB.goto(returnUrl);
    await backOnApp(tabB);
    await tabB.waitForFunction(() => document.querySelector('#status').className === 'error');
    assert.match(await status(tabB), /another tab or browser/);
    await tabB.waitForFunction(() => document.querySelector('#connection').textContent === 'not connected');
    assert.equal((await connections(tabB)).length, 0);
    assert.equal(await keptFlowSecret(tabB), null);

    // Refusing it destroyed it: tab A, with its secret, cannot use it either.
    await tabA.goto(returnUrl);
    await backOnApp(tabA);
    await tabA.waitForFunction(() => document.querySelector('#status').className === 'error');
    assert.match(await status(tabA), /already used or has expired/);
    await tabA.waitForFunction(() => document.querySelector('#connection').textContent === 'not connected');
    assert.equal((await connections(tabA)).length, 0);
    assert.equal(await keptFlowSecret(tabA), null, 'tab A forgot the secret');
    assert.equal(await boards(), before, 'the board kept as the intent was not created');
  });
});

test('the flow secret never appears in a URL', async (t) => {
  let page;
  await withScreenshots('secret-in-url', () => [page], async () => {
    // Every URL the browser asks for, every redirect's Location, every Referer.
    const seen = [];
    // The flow secret of every 201/401 that started a flow.
    const secrets = [];
    page = await openApp(t, async (context) => {
      context.on('request', (r) => {
        seen.push(r.url());
        const referer = r.headers().referer;
        if (referer) seen.push(referer);
      });
      context.on('response', (r) => {
        const location = r.headers().location;
        if (location) seen.push(location);
      });
      context.on('framenavigated', (f) => seen.push(f.url()));
      await context.route(
        (url) => url.pathname === '/boards' || url.pathname === '/miro/authorizations',
        async (route) => {
          const response = await route.fetch();
          const body = await response.text();
          try {
            const json = JSON.parse(body);
            if (json.flow_secret !== undefined) secrets.push({ status: response.status(), secret: json.flow_secret });
          } catch (_) { /* not JSON */ }
          await route.fulfill({ response, body });
        },
      );
    });
    await signIn(page, unique('gus'));

    // The one-click path: 401 miro_authorization_required, consent, board.
    await clickCreate(page, 'Secretless');
    await onConsentPage(page);
    await page.click('#allow');
    await backOnApp(page);
    await page.waitForSelector('a.board-link');

    // The explicit path: 201 from POST /miro/authorizations, consent, connected.
    await page.click('#disconnect');
    await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Disconnected'));
    await page.click('#connect');
    await onConsentPage(page);
    await page.click('#allow');
    await backOnApp(page);
    await page.waitForFunction(() => document.querySelector('#status').textContent === 'Miro connected.');

    assert.deepEqual(secrets.map((s) => s.status), [401, 201]);
    const paths = seen.map((u) => { try { return new URL(u, BASE).pathname; } catch (_) { return u; } });
    for (const expected of ['/_miro/oauth/authorize', '/miro/callback', '/boards', '/miro/authorizations',
      '/miro/authorizations/complete']) {
      assert.ok(paths.includes(expected), `recorded ${expected}: ${paths.join(' ')}`);
    }
    for (const { secret } of secrets) {
      assert.equal(typeof secret, 'string');
      assert.ok(secret.length >= 20, 'a real secret');
      for (const url of seen) {
        let decoded = url;
        try { decoded = decodeURIComponent(url); } catch (_) { /* keep it raw */ }
        assert.ok(!url.includes(secret) && !decoded.includes(secret), `the flow secret is in ${url}`);
      }
    }
    const stored = await page.evaluate(() => Object.values(sessionStorage));
    for (const { secret } of secrets) assert.ok(!stored.includes(secret), 'forgotten once used');
  });
});

test('the demo user connects two teams, gets a board in each, and disconnects one', async (t) => {
  let page;
  await withScreenshots('teams', () => [page], async () => {
    page = await openApp(t);
    await signIn(page, unique('tess'));

    // Two consents, picking the team on Miro's page each time.
    for (const [team, count] of [[TEAM, 1], [SECOND_TEAM, 2]]) {
      await page.click('#connect');
      await onConsentPage(page);
      await page.selectOption('#team', team);
      await page.click('#allow');
      await backOnApp(page);
      await page.waitForFunction((n) => document.querySelectorAll('#connections li.team').length === n, count);
    }
    const listed = await connections(page);
    assert.deepEqual(listed.map((c) => [c.team_id, c.default]), [[TEAM, true], [SECOND_TEAM, false]]);

    // A board in each team, with no consent page in between.
    for (const [team, name, count] of [[TEAM, 'First team board', 1], [SECOND_TEAM, 'Second team board', 2]]) {
      await page.fill('#board-team', team);
      await clickCreate(page, name);
      await page.waitForFunction((n) => document.querySelectorAll('a.board-link').length === n, count);
      assert.equal(new URL(page.url()).pathname, '/', 'no consent page');
    }
    const made = await page.$$eval('#boards li', (items) => items.map((li) => li.dataset.team));
    assert.deepEqual(made, [TEAM, SECOND_TEAM], 'each board in its own team');

    // Disconnecting one team leaves the other, now the default.
    await page.click(`#connections li.team[data-team="${TEAM}"] button.disconnect-team`);
    await page.waitForFunction(() => document.querySelectorAll('#connections li.team').length === 1);
    assert.deepEqual((await connections(page)).map((c) => [c.team_id, c.default]), [[SECOND_TEAM, true]]);
    await page.fill('#board-team', '');
    await clickCreate(page, 'Default team board');
    await page.waitForFunction(() => document.querySelectorAll('a.board-link').length === 3);
    assert.equal(await page.getAttribute('#boards li:last-child', 'data-team'), SECOND_TEAM);
  });
});

test('the demo user copies a template board and invites people', async (t) => {
  let page;
  await withScreenshots('template', () => [page], async () => {
    page = await openApp(t);
    await signIn(page, unique('una'));
    await page.waitForFunction(() => document.querySelectorAll('#board-template option').length > 1);
    const template = await page.$eval('#board-template option[data-team]', (o) => ({ id: o.value, team: o.dataset.team }));
    await page.selectOption('#board-template', template.id);
    await page.fill('#board-team', template.team);
    await page.fill('#board-members', 'ann@example.com:editor, bo@example.com, cy@fails.example:viewer');
    await clickCreate(page, 'Sprint 9 retro');
    // Not connected yet: one consent (its team preselected), then the copy.
    await onConsentPage(page);
    await page.click('#allow');
    await backOnApp(page);
    await page.waitForSelector('a.board-link');
    assert.equal(await page.textContent('a.board-link'), 'Sprint 9 retro');
    assert.equal(await page.getAttribute('#boards li', 'data-team'), template.team);
    assert.match(await status(page), /Invited 2; not invited: cy@fails\.example \(INVITATION_FAILED\)/);
    const stats = await (await fetch(`${BASE}/_miro/_emulator/stats`)).json();
    assert.ok(stats.copies >= 1, 'a copy, not an empty board');
  });
});

test('Board with content: one consent, then the drawn board shows three frames, their sticky notes and a connector', async (t) => {
  let page;
  let board;
  await withScreenshots('content', () => [page, board].filter(Boolean), async () => {
    page = await openApp(t);
    const before = await boards();
    await signIn(page, unique('rhea'));
    assert.match(await page.textContent('#connection'), /not connected/);

    // The same one-click path as Create board: the board and its content
    // wait for the consent, and are made once it is given.
    await page.fill('#board-name', 'Sprint 14 retro');
    await page.click('#create-content-board');
    await onConsentPage(page);
    await page.click('#allow');
    await backOnApp(page);
    await page.waitForSelector('a.board-link');
    assert.equal(await page.textContent('a.board-link'), 'Sprint 14 retro');
    const said = await status(page);
    assert.match(said, /^Board "Sprint 14 retro" created\./);
    // What the answer reports of the content, when it does: 9 items and 1 connector, all confirmed.
    assert.match(said, / 10 items and connectors made\./);
    assert.equal(await boards(), before + 1, 'exactly one board');
    const href = await page.getAttribute('a.board-link', 'href');
    assert.ok(isDrawnBoard(href), `the view link is the emulator's drawn board: ${href}`);

    // Follow the link, as a user would (it opens in a new tab).
    [board] = await Promise.all([page.context().waitForEvent('page'), page.click('a.board-link')]);
    board.setDefaultTimeout(TIMEOUT);
    await board.waitForLoadState();
    assert.equal(board.url(), href);
    await board.waitForSelector('svg');
    assert.equal(await board.locator('svg').count(), 1, 'one drawing');
    const frames = board.locator('svg [data-type="frame"]');
    assert.equal(await frames.count(), 3);
    const titles = await frames.allTextContents();
    for (const title of ['Went well', 'To improve', 'Actions']) {
      assert.ok(titles.some((text) => text.includes(title)), `a frame titled ${title}: ${titles.join(' | ')}`);
    }
    const notes = board.locator('svg [data-type="sticky_note"]');
    assert.equal(await notes.count(), 6);
    const texts = await notes.allTextContents();
    // Plain text, never markup: the app's `>` and `&` are shown as they were written.
    assert.ok(texts.some((text) => text.includes('Reviews waited > 2 days & blocked us')), texts.join(' | '));
    const line = board.locator('svg [data-type="connector"]');
    assert.equal(await line.count(), 1);
    assert.match(await line.textContent(), /fixed by/);
    for (const el of await board.locator('svg [data-type]').all()) {
      assert.ok(await el.getAttribute('data-item-id'), 'every element names its item');
    }
  });
});
