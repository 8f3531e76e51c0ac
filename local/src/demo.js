// The demo app: its own sign-in (a JWT from /demo/sign-in), and miro-connect's
// browser client (/web/miro-connect.js, the module an app copies) for
// everything Miro. Nothing here ever sees a Miro token.
import { createClient, hasMiroResult, messageFor, MiroConnectError } from '/web/miro-connect.js';

const $ = (id) => document.getElementById(id);
const session = {
  get token() { return sessionStorage.getItem('demo-token'); },
  get user() { return sessionStorage.getItem('demo-user'); },
  set(token, user) { sessionStorage.setItem('demo-token', token); sessionStorage.setItem('demo-user', user); },
  clear() { sessionStorage.removeItem('demo-token'); sessionStorage.removeItem('demo-user'); },
};

function say(text, kind) {
  const el = $('status');
  el.textContent = text;
  el.className = kind || '';
}

const miro = createClient({
  getToken: () => session.token,
  navigate(url) {
    say('Redirecting to Miro for consent…', 'busy');
    window.location.assign(url);
  },
});

// Where the server's own words say more than the friendly text.
const DETAILED = new Set(['invalid_board', 'invalid_parameter', 'invalid_body', 'miro_rejected']);

function explain(error) {
  if (!(error instanceof MiroConnectError)) return 'Unexpected error: ' + (error && error.message);
  if (error.code === 'unauthenticated') return 'Your demo session expired. Please sign in again.';
  return DETAILED.has(error.code) && error.detail ? error.message + ' (' + error.detail + ')' : error.message;
}

async function busy(label, work) {
  const buttons = document.querySelectorAll('button');
  buttons.forEach((b) => { b.disabled = true; });
  say(label, 'busy');
  try { await work(); } catch (e) { say(explain(e), 'error'); }
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
  try {
    showConnection(await miro.status());
  } catch (e) {
    $('connection').textContent = 'unknown';
    say(explain(e), 'error');
  }
}

function render() {
  const user = session.user;
  if (user) $('user').value = user;
  $('who').textContent = user ? 'Signed in as ' + user : 'Not signed in';
  $('sign-out').hidden = !user;
  $('miro').disabled = !user;
}

async function signIn() {
  await busy('Signing in…', async () => {
    const user = $('user').value;
    let res;
    let body = null;
    try {
      res = await fetch('/demo/sign-in', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ user }),
      });
      body = await res.json();
    } catch (_) {
      say(messageFor('network_error'), 'error');
      return;
    }
    if (!res.ok) { say((body && body.message) || messageFor(body && body.error), 'error'); return; }
    session.set(body.token, body.user);
    render();
    await refreshConnection();
    say('Signed in as ' + body.user + '.', 'ok');
  });
}

async function connect() {
  await busy('Starting Miro authorization…', () => miro.startConnect());
}

async function disconnect() {
  await busy('Disconnecting from Miro…', async () => {
    await miro.disconnect();
    showConnection(null);
    say('Disconnected from Miro.', 'ok');
  });
}

async function createBoard() {
  await busy('Creating board…', async () => {
    const board = await miro.createBoard({ name: $('board-name').value });
    if (board === null) return; // on the way to Miro's consent page
    showBoard(board);
    showConnection({ connected: true });
  });
}

// Back from Miro: finish the authorization (and the board it was started for).
async function finishFromRedirect() {
  if (!hasMiroResult(window.location)) return false;
  if (!session.token) {
    // Nothing to present it with: take it out of the address bar all the same.
    history.replaceState(history.state, '', window.location.pathname);
    say('Sign in first, then connect Miro again.', 'error');
    return true;
  }
  await busy('Finishing Miro connection…', async () => {
    let done;
    try {
      done = await miro.completeFromLocation(window.location);
    } catch (e) {
      say(explain(e), 'error');
      await refreshConnection();
      return;
    }
    showConnection(done.connection);
    if (done.board) { showBoard(done.board); return; }
    if (done.boardError) { say('Connected, but the board failed: ' + explain(done.boardError), 'error'); return; }
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
