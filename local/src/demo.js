// The demo app: its own sign-in (a JWT from /demo/sign-in), and the three
// calls an app makes to miro-connect. Nothing here ever sees a Miro token.
'use strict';

const $ = (id) => document.getElementById(id);
const session = {
  get token() { return sessionStorage.getItem('demo-token'); },
  get user() { return sessionStorage.getItem('demo-user'); },
  set(token, user) { sessionStorage.setItem('demo-token', token); sessionStorage.setItem('demo-user', user); },
  clear() { sessionStorage.removeItem('demo-token'); sessionStorage.removeItem('demo-user'); },
};

const MESSAGES = {
  access_denied: 'You declined access in Miro. No connection was made.',
  expired: 'The Miro sign-in took too long and expired. Please try again.',
  authorization_failed: 'Miro did not complete the authorization. Please try again.',
  invalid_completion: 'This Miro authorization was already used or has expired. Please connect again.',
  completion_forbidden: 'This Miro authorization was started by another user. Nothing was connected.',
  miro_rate_limited: 'Miro is busy (rate limit). Please wait a moment and try again.',
  miro_unavailable: 'Miro is unavailable right now. Please try again shortly.',
  storage_unavailable: 'The service is unavailable right now. Please try again shortly.',
  unauthenticated: 'Your demo session expired. Please sign in again.',
};

function say(text, kind) {
  const el = $('status');
  el.textContent = text;
  el.className = kind || '';
}

function explain(body, status) {
  const code = body && body.error;
  return MESSAGES[code] || (body && body.message) || ('Request failed (HTTP ' + status + ').');
}

async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + session.token };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let json = null;
  try { json = await res.json(); } catch (_) { /* no body */ }
  return { status: res.status, body: json };
}

async function busy(label, work) {
  const buttons = document.querySelectorAll('button');
  buttons.forEach((b) => { b.disabled = true; });
  say(label, 'busy');
  try { await work(); } catch (e) { say('Network error: ' + e.message, 'error'); }
  finally { buttons.forEach((b) => { b.disabled = false; }); }
}

function showBoard(board) {
  const li = document.createElement('li');
  const a = document.createElement('a');
  a.href = board.view_link;
  a.textContent = board.name;
  a.rel = 'noopener noreferrer';
  a.target = '_blank';
  a.className = 'board-link';
  li.appendChild(a);
  $('boards').appendChild(li);
  say('Board "' + board.name + '" created.', 'ok');
}

function showConnection(connection) {
  $('connection').textContent = connection && connection.connected
    ? 'connected (Miro team ' + (connection.team_id || '?') + ')'
    : 'not connected';
}

async function refreshConnection() {
  if (!session.token) { $('connection').textContent = 'unknown'; return; }
  const res = await api('GET', '/miro/connection');
  if (res.status === 200) { showConnection(res.body); return; }
  $('connection').textContent = 'unknown';
  say(explain(res.body, res.status), 'error');
}

function render() {
  const user = session.user;
  if (user) $('user').value = user;
  $('who').textContent = user ? 'Signed in as ' + user : 'Not signed in';
  $('sign-out').hidden = !user;
  $('miro').disabled = !user;
}

function goToMiro(body) {
  say('Redirecting to Miro for consent…', 'busy');
  window.location.assign(body.authorize_url);
}

async function signIn() {
  await busy('Signing in…', async () => {
    const user = $('user').value;
    const res = await fetch('/demo/sign-in', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user }),
    });
    const body = await res.json();
    if (!res.ok) { say(explain(body, res.status), 'error'); return; }
    session.set(body.token, body.user);
    render();
    await refreshConnection();
    say('Signed in as ' + body.user + '.', 'ok');
  });
}

async function connect() {
  await busy('Starting Miro authorization…', async () => {
    const res = await api('POST', '/miro/authorizations', {});
    if (res.status === 201) { goToMiro(res.body); return; }
    say(explain(res.body, res.status), 'error');
  });
}

async function disconnect() {
  await busy('Disconnecting from Miro…', async () => {
    const res = await api('DELETE', '/miro/connection');
    if (res.status === 204) { showConnection(null); say('Disconnected from Miro.', 'ok'); return; }
    say(explain(res.body, res.status), 'error');
  });
}

async function createBoard() {
  await busy('Creating board…', async () => {
    const res = await api('POST', '/boards', { name: $('board-name').value });
    if (res.status === 201) { showBoard(res.body.board); showConnection({ connected: true }); return; }
    if (res.status === 401 && res.body && res.body.error === 'miro_authorization_required') { goToMiro(res.body); return; }
    say(explain(res.body, res.status), 'error');
  });
}

// Back from Miro: finish the authorization (and the board it was started for).
async function finishFromRedirect() {
  const params = new URLSearchParams(window.location.search);
  const completion = params.get('miro_authorization');
  const error = params.get('miro_error');
  if (!completion && !error) return false;
  // Take the one-time values out of the address bar and history at once.
  history.replaceState(null, '', window.location.pathname);
  if (error) { say(MESSAGES[error] || 'Miro authorization failed.', 'error'); await refreshConnection(); return true; }
  if (!session.token) { say('Sign in first, then connect Miro again.', 'error'); return true; }
  await busy('Finishing Miro connection…', async () => {
    const res = await api('POST', '/miro/authorizations/complete', { completion });
    if (res.status !== 200) { say(explain(res.body, res.status), 'error'); await refreshConnection(); return; }
    showConnection(res.body.connection);
    if (res.body.board) { showBoard(res.body.board); return; }
    if (res.body.board_error) { say('Connected, but the board failed: ' + explain(res.body.board_error), 'error'); return; }
    say('Miro connected.', 'ok');
  });
  return true;
}

$('sign-in').addEventListener('click', signIn);
$('sign-out').addEventListener('click', () => { session.clear(); render(); showConnection(null); say('Signed out.'); });
$('disconnect').addEventListener('click', disconnect);
$('connect').addEventListener('click', connect);
$('create-board').addEventListener('click', createBoard);
render();
finishFromRedirect().then((handled) => (handled ? undefined : refreshConnection()));
