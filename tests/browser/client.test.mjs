// web/miro-connect.js on its own, with a fake fetch, storage and history:
// what it sends, what it keeps, and what it removes from the address bar.
// (The whole flow in a real browser is flow.test.mjs.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createClient, hasMiroResult, messageFor, MESSAGES, MiroConnectError,
} from '../../web/miro-connect.js';

function memoryStorage() {
  const items = new Map();
  return {
    items,
    getItem: (k) => (items.has(k) ? items.get(k) : null),
    setItem: (k, v) => { items.set(k, String(v)); },
    removeItem: (k) => { items.delete(k); },
  };
}

function fakeHistory(href) {
  return {
    state: { app: 1 },
    href,
    replaced: [],
    replaceState(state, _title, url) { this.replaced.push({ state, url }); this.href = new URL(url, this.href).href; },
  };
}

/** A client whose fetch answers from `answers` in order and records each call. */
function setup(answers, { token = 'jwt-1', href = 'https://app.example/page' } = {}) {
  const calls = [];
  const navigations = [];
  const storage = memoryStorage();
  const history = fakeHistory(href);
  const client = createClient({
    baseUrl: 'https://api.example/',
    getToken: () => token,
    storage,
    navigate: (url) => navigations.push(url),
    history,
    fetch: async (url, init) => {
      calls.push({ url, init, body: init.body === undefined ? undefined : JSON.parse(init.body) });
      const [status, body, headers = {}] = answers.shift();
      return new Response(body === undefined ? null : JSON.stringify(body), { status, headers });
    },
  });
  return { client, calls, navigations, storage, history };
}

const KEY = 'miro-connect.flow-secret';
const started = { authorize_url: 'https://miro.example/oauth/authorize?state=s', expires_at: '2030-01-01T00:00:00Z', flow_secret: 'fs-123456789012345678901' };

test('startConnect keeps the flow secret in storage, not in a URL, and navigates', async () => {
  const { client, calls, navigations, storage } = setup([[201, started]]);
  const out = await client.startConnect({ returnTo: 'https://app.example/back', teamId: '42' });
  assert.equal(calls[0].url, 'https://api.example/miro/authorizations');
  assert.equal(calls[0].init.method, 'POST');
  assert.equal(calls[0].init.headers.Authorization, 'Bearer jwt-1');
  assert.deepEqual(calls[0].body, { return_to: 'https://app.example/back', team_id: '42' });
  assert.equal(storage.getItem(KEY), started.flow_secret);
  assert.deepEqual(navigations, [started.authorize_url]);
  assert.deepEqual(out, { authorizeUrl: started.authorize_url, expiresAt: started.expires_at });
  assert.ok(!JSON.stringify(out).includes(started.flow_secret));
});

test('createBoard returns the board, or keeps the secret and goes to Miro on 401 miro_authorization_required', async () => {
  const board = { id: 'b1', name: 'B', view_link: 'https://miro.com/app/board/b1/' };
  const { client, calls, navigations, storage } = setup([
    [201, { board }],
    [401, { error: 'miro_authorization_required', message: 'connect', ...started }],
  ]);
  assert.deepEqual(await client.createBoard({ name: 'B' }, { idempotencyKey: 'k-1' }), board);
  assert.equal(calls[0].init.headers['Idempotency-Key'], 'k-1');
  assert.equal(storage.getItem(KEY), null);
  assert.equal(await client.createBoard({ name: 'B' }), null);
  assert.equal(calls[1].init.headers['Idempotency-Key'], undefined);
  assert.equal(storage.getItem(KEY), started.flow_secret);
  assert.deepEqual(navigations, [started.authorize_url]);
});

test('addItems posts the content to the board, with the team and the key; an invalid item names its field', async () => {
  const added = { board: { id: 'b 1' }, items: { created: 3, refs: { a: '11', b: '12' } } };
  const { client, calls, navigations, storage } = setup([
    [200, added],
    [422, { error: 'invalid_item', message: 'items[1].color: one of gray, …', field: 'items[1].color' }],
    [404, { error: 'board_not_found', message: 'no such board' }],
    [401, { error: 'miro_authorization_required', message: 'connect', ...started }],
  ]);
  const content = {
    items: [{ type: 'sticky_note', ref: 'a', text: 'x' }, { type: 'sticky_note', ref: 'b', text: 'y' }],
    connectors: [{ from: 'a', to: 'b' }],
  };
  assert.deepEqual(await client.addItems('b 1', content, { teamId: '42', idempotencyKey: 'k-2' }), added);
  assert.equal(calls[0].url, 'https://api.example/boards/b%201/items');
  assert.equal(calls[0].init.method, 'POST');
  assert.equal(calls[0].init.headers['Idempotency-Key'], 'k-2');
  assert.deepEqual(calls[0].body, { ...content, team_id: '42' });
  assert.equal(content.team_id, undefined, 'the caller\'s object is left as it was');
  await assert.rejects(client.addItems('b1', content), (e) => e.code === 'invalid_item' && e.status === 422
    && e.field === 'items[1].color' && e.message === MESSAGES.invalid_item);
  assert.equal(calls[1].init.headers['Idempotency-Key'], undefined);
  await assert.rejects(client.addItems('b1', content), (e) => e.code === 'board_not_found' && e.status === 404);
  assert.equal(await client.addItems('b1', content), null);
  assert.equal(storage.getItem(KEY), started.flow_secret);
  assert.deepEqual(navigations, [started.authorize_url]);
});

test('errors carry the code, a friendly message, the detail and Retry-After', async () => {
  const { client, navigations } = setup([
    [401, { error: 'unauthenticated', message: 'a valid JWT is required' }],
    [429, { error: 'miro_rate_limited', message: 'slow down' }, { 'Retry-After': '7' }],
    [500, undefined],
  ]);
  await assert.rejects(client.createBoard({}), (e) => e instanceof MiroConnectError
    && e.code === 'unauthenticated' && e.status === 401 && e.message === MESSAGES.unauthenticated
    && e.detail === 'a valid JWT is required');
  await assert.rejects(client.connections(), (e) => e.code === 'miro_rate_limited' && e.retryAfter === 7);
  await assert.rejects(client.disconnect(), (e) => e.code === 'unexpected_response' && e.status === 500);
  assert.deepEqual(navigations, []);
});

test('completeFromLocation cleans the address bar first, presents the kept secret once, and forgets it', async () => {
  const href = 'https://app.example/page?tab=2&miro_authorization=c-1#top';
  const { client, calls, storage, history } = setup([
    [200, { connection: { team_id: '1', default: true }, board: { id: 'b', name: 'n', view_link: 'v' } }],
  ], { href });
  storage.setItem(KEY, 'fs-1');
  const done = await client.completeFromLocation({ href });
  assert.deepEqual(history.replaced, [{ state: { app: 1 }, url: '/page?tab=2#top' }]);
  assert.equal(calls[0].url, 'https://api.example/miro/authorizations/complete');
  assert.deepEqual(calls[0].body, { completion: 'c-1', flow_secret: 'fs-1' });
  assert.equal(storage.getItem(KEY), null);
  assert.deepEqual(done, { connection: { team_id: '1', default: true }, board: { id: 'b', name: 'n', view_link: 'v' }, items: null, invitations: null, boardError: null });
});

test('a completion this tab did not start is still presented (to be destroyed), without a secret', async () => {
  const href = 'https://app.example/?miro_authorization=planted';
  const { client, calls, history } = setup([
    [403, { error: 'completion_forbidden', message: 'not yours' }],
  ], { href });
  await assert.rejects(client.completeFromLocation({ href }), (e) => e.code === 'completion_forbidden'
    && e.message === MESSAGES.completion_forbidden);
  assert.deepEqual(calls[0].body, { completion: 'planted' });
  assert.equal(history.replaced[0].url, '/');
});

test('a miro_error is thrown as its code, after cleaning the address bar and forgetting the secret', async () => {
  const href = 'https://app.example/?miro_error=access_denied';
  const { client, calls, storage, history } = setup([], { href });
  storage.setItem(KEY, 'fs-1');
  await assert.rejects(client.completeFromLocation({ href }), (e) => e.code === 'access_denied');
  assert.equal(history.replaced[0].url, '/');
  assert.equal(storage.getItem(KEY), null);
  assert.equal(calls.length, 0);
  const odd = 'https://app.example/?miro_error=%3Cscript%3E';
  await assert.rejects(setup([], { href: odd }).client.completeFromLocation({ href: odd }),
    (e) => e.code === 'authorization_failed');
});

test('a board that failed after connecting comes back as boardError', async () => {
  const href = 'https://app.example/?miro_authorization=c-2';
  const { client } = setup([
    [200, { connection: { team_id: '1', default: true }, board_error: { error: 'invalid_board', message: 'name too long' } }],
  ], { href });
  const done = await client.completeFromLocation({ href });
  assert.equal(done.board, null);
  assert.ok(done.boardError instanceof MiroConnectError);
  assert.equal(done.boardError.code, 'invalid_board');
  assert.equal(done.boardError.detail, 'name too long');
});

test('nothing to do without a result in the location; hasMiroResult says so', async () => {
  const { client, calls, history } = setup([]);
  assert.equal(await client.completeFromLocation({ href: 'https://app.example/?x=1' }), null);
  assert.equal(calls.length, 0);
  assert.equal(history.replaced.length, 0);
  assert.equal(hasMiroResult({ href: 'https://app.example/?x=1' }), false);
  assert.equal(hasMiroResult({ href: 'https://app.example/?miro_authorization=a' }), true);
  assert.equal(hasMiroResult({ href: 'https://app.example/?miro_error=expired' }), true);
});

test('a network failure is network_error; no token is unauthenticated without a request', async () => {
  const client = createClient({
    getToken: () => 'jwt', storage: memoryStorage(), navigate: () => {}, history: fakeHistory('https://a.example/'),
    fetch: async () => { throw new TypeError('Failed to fetch'); },
  });
  await assert.rejects(client.connections(), (e) => e.code === 'network_error' && e.cause instanceof TypeError);
  const { client: signedOut, calls } = setup([], { token: null });
  await assert.rejects(signedOut.connections(), (e) => e.code === 'unauthenticated');
  assert.equal(calls.length, 0);
});

test('messageFor has a text for every code of the API and the callback', () => {
  const codes = ['unauthenticated', 'method_not_allowed', 'not_found', 'unsupported_media_type',
    'payload_too_large', 'malformed_json', 'invalid_body', 'invalid_board', 'invalid_parameter',
    'return_to_not_allowed', 'invalid_completion', 'completion_forbidden', 'miro_authorization_required',
    'miro_rejected', 'miro_rate_limited', 'miro_unavailable', 'miro_outcome_unknown',
    'idempotency_key_reused', 'idempotency_in_progress', 'storage_unavailable', 'internal_error',
    'invalid_item', 'board_not_found', 'access_denied', 'expired', 'authorization_failed', 'network_error', 'unexpected_response'];
  for (const code of codes) assert.ok(Object.hasOwn(MESSAGES, code), code);
  assert.equal(messageFor('access_denied'), MESSAGES.access_denied);
  assert.match(messageFor('no_such_code'), /no_such_code/);
  assert.match(messageFor('__proto__'), /__proto__/);
});

test('connections, the default team and disconnecting one team or all use their routes', async () => {
  const { client, calls } = setup([
    [200, { connections: [{ team_id: '1', default: true }] }],
    [200, { connections: [{ team_id: '1', default: false }, { team_id: '2', default: true }] }],
    [204, undefined],
    [204, undefined],
  ]);
  assert.deepEqual(await client.connections(), [{ team_id: '1', default: true }]);
  const chosen = await client.chooseDefault('2');
  assert.deepEqual(chosen.map((c) => c.default), [false, true]);
  await client.disconnect('2');
  await client.disconnect();
  assert.deepEqual(calls.map((c) => `${c.init.method} ${c.url}`), [
    'GET https://api.example/miro/connections',
    'PUT https://api.example/miro/connections/2/default',
    'DELETE https://api.example/miro/connections/2',
    'DELETE https://api.example/miro/connections',
  ]);
});
