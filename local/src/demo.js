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
const DETAILED = new Set(['invalid_board', 'invalid_item', 'invalid_parameter', 'invalid_body', 'miro_rejected']);

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
  if (board.view_link) a.href = board.view_link; // locally: the emulator's drawing of the board
  a.textContent = board.name;
  a.rel = 'noopener noreferrer';
  a.target = '_blank';
  a.className = 'board-link';
  li.appendChild(a);
  if (board.team && board.team.id) {
    li.dataset.team = board.team.id;
    li.append(' in ' + (board.team.name || 'team') + ' (' + board.team.id + ')');
  }
  $('boards').appendChild(li);
  say('Board "' + board.name + '" created.', 'ok');
}

function teamLabel(c) {
  return (c.team_name || 'Miro team') + ' (' + c.team_id + ')';
}

// One line a connection (one per Miro team), with its own buttons.
function showConnections(connections) {
  const list = connections || [];
  $('connection').textContent = list.length
    ? 'connected (' + list.map((c) => teamLabel(c) + (c.default ? ', default' : '')).join('; ') + ')'
    : 'not connected';
  const ul = $('connections');
  const ids = $('team-ids');
  ul.replaceChildren();
  ids.replaceChildren();
  for (const c of list) {
    const li = document.createElement('li');
    li.className = 'team';
    li.dataset.team = c.team_id;
    li.append(teamLabel(c) + (c.default ? ' (default) ' : ' '));
    if (!c.default) {
      const make = document.createElement('button');
      make.textContent = 'Make default';
      make.className = 'make-default';
      make.addEventListener('click', () => chooseDefault(c.team_id));
      li.append(make, ' ');
    }
    const drop = document.createElement('button');
    drop.textContent = 'Disconnect';
    drop.className = 'disconnect-team';
    drop.addEventListener('click', () => disconnect(c.team_id));
    li.append(drop);
    ul.append(li);
    const option = document.createElement('option');
    option.value = c.team_id;
    option.label = teamLabel(c);
    ids.append(option);
  }
}

async function refreshConnection() {
  if (!session.token) { $('connection').textContent = 'unknown'; return; }
  try {
    showConnections(await miro.connections());
  } catch (e) {
    $('connection').textContent = 'unknown';
    say(explain(e), 'error');
  }
}

async function chooseDefault(teamId) {
  await busy('Choosing the default team…', async () => {
    showConnections(await miro.chooseDefault(teamId));
    say('Boards now go to team ' + teamId + ' by default.', 'ok');
  });
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

// One team, or every team when `teamId` is left out.
async function disconnect(teamId) {
  await busy('Disconnecting from Miro…', async () => {
    await miro.disconnect(teamId);
    await refreshConnection();
    say(teamId ? 'Disconnected from Miro team ' + teamId + '.' : 'Disconnected from Miro.', 'ok');
  });
}

// "ann@example.com:editor, bo@example.com" → [{email, role}], commenter by default.
function parseMembers(text) {
  return text.split(',').map((s) => s.trim()).filter(Boolean).map((entry) => {
    const [email, role] = entry.split(':').map((s) => s.trim());
    return { email, role: role || 'commenter' };
  });
}

function invitationSummary(invitations) {
  if (!invitations) return '';
  const failed = invitations.failed.map((f) => f.email + ' (' + f.reason + ')');
  return ' Invited ' + invitations.invited.length + (failed.length ? '; not invited: ' + failed.join(', ') : '') + '.';
}

async function createBoard() {
  await busy('Creating board…', async () => {
    const request = { name: $('board-name').value };
    const team = $('board-team').value.trim();
    if (team) request.team_id = team;
    const template = $('board-template').value;
    if (template) request.template_board_id = template;
    const members = parseMembers($('board-members').value);
    if (members.length) request.members = members;
    const created = await miro.createBoard(request, { details: true });
    if (created === null) return; // on the way to Miro's consent page
    showBoard(created.board);
    await refreshConnection();
    say('Board "' + created.board.name + '" created.' + invitationSummary(created.invitations), 'ok');
  });
}

// The app's own content for a board: plain text (never markup) in frames
// the backend lays out as columns, and a line from a problem to its action.
function retro(name) {
  const note = (frame, color, text, ref) => ({ type: 'sticky_note', frame, color, text, ...(ref ? { ref } : {}) });
  return {
    name,
    items: [
      { type: 'frame', ref: 'well', title: 'Went well' },
      { type: 'frame', ref: 'improve', title: 'To improve' },
      { type: 'frame', ref: 'actions', title: 'Actions' },
      note('well', 'light_green', 'Shipped the importer on time'),
      note('well', 'green', 'Pairing on reviews'),
      note('improve', 'orange', 'Flaky CI, again', 'flaky-ci'),
      note('improve', 'light_pink', 'Reviews waited > 2 days & blocked us'),
      note('actions', 'light_blue', 'Quarantine flaky tests', 'quarantine'),
      note('actions', 'yellow', 'A review slot every morning'),
    ],
    connectors: [{ from: 'flaky-ci', to: 'quarantine', caption: 'fixed by' }],
  };
}

function contentSummary(items) {
  if (!items) return '';
  const unknown = items.unknown && items.unknown.length
    ? '; not confirmed: ' + items.unknown.join(', ') + ' (look at the board before adding them again)'
    : '';
  return ' ' + items.created + ' items and connectors made' + unknown + '.';
}

// The same one-click path as "Create board", with content: not connected
// yet, the board (content and key included) waits for the consent. The key
// makes a repeat of this click's request answer the same board.
async function createContentBoard() {
  await busy('Creating a board with content…', async () => {
    const request = retro($('board-name').value);
    const team = $('board-team').value.trim();
    if (team) request.team_id = team;
    const key = globalThis.crypto && crypto.randomUUID ? { idempotencyKey: crypto.randomUUID() } : {};
    const created = await miro.createBoard(request, { details: true, ...key });
    if (created === null) return; // on the way to Miro's consent page
    showBoard(created.board);
    await refreshConnection();
    say('Board "' + created.board.name + '" created.' + contentSummary(created.items), 'ok');
  });
}

async function loadTemplates() {
  try {
    const res = await fetch('/demo/templates');
    if (!res.ok) return; // real Miro: no demo templates
    for (const t of await res.json()) {
      const option = document.createElement('option');
      option.value = t.id;
      option.textContent = t.name + ' (team ' + t.team_id + ')';
      option.dataset.team = t.team_id;
      $('board-template').append(option);
    }
  } catch (_) { /* the demo works without them */ }
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
    await refreshConnection();
    if (done.board) {
      showBoard(done.board);
      say('Board "' + done.board.name + '" created.' + contentSummary(done.items) + invitationSummary(done.invitations), 'ok');
      return;
    }
    if (done.boardError) { say('Connected, but the board failed: ' + explain(done.boardError), 'error'); return; }
    say('Miro connected.', 'ok');
  });
  return true;
}

$('sign-in').addEventListener('click', signIn);
$('sign-out').addEventListener('click', () => { session.clear(); render(); showConnections(null); say('Signed out.'); });
$('disconnect').addEventListener('click', () => disconnect());
$('connect').addEventListener('click', connect);
$('create-board').addEventListener('click', createBoard);
$('create-content-board').addEventListener('click', createContentBoard);
render();
loadTemplates();
finishFromRedirect().then((handled) => (handled ? undefined : refreshConnection()));
