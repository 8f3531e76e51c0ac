// miro-connect's browser client: connect a signed-in user of your app to
// Miro and create boards, through the miro-connect API. One ES module, no
// dependencies, no build step: copy it into your app or import it.
//
//   import { createClient } from './miro-connect.js';
//   const miro = createClient({ baseUrl: 'https://api.example.com', getToken: () => myJwt() });
//   const result = await miro.completeFromLocation();  // on the page Miro's flow returns to
//   const board = await miro.createBoard({ name: 'Sprint 12' }); // null: off to Miro's consent
//
// Starting a flow hands this tab a flow secret. It is kept in this tab's
// sessionStorage and sent back only in the body of the completion request, so
// that a completion link opened anywhere else (another tab, another browser,
// another user) completes nothing. It never goes in a URL. See README.md.

/**
 * The query parameters Miro's flow returns with.
 * `miro_authorization` carries a single-use completion id; `miro_error` a code.
 */
const RESULT_PARAMS = ['miro_authorization', 'miro_error'];

/** The `miro_error` codes the callback may return with. */
const CALLBACK_ERRORS = ['access_denied', 'expired', 'authorization_failed'];

/**
 * A friendly text for every error code this client can report: the API's
 * codes, the callback's `miro_error` codes, and the client's own
 * (`network_error`, `unexpected_response`).
 * @type {Readonly<Record<string, string>>}
 */
export const MESSAGES = Object.freeze({
  // Back from Miro (`?miro_error=`).
  access_denied: 'You declined access in Miro. No connection was made.',
  expired: 'The Miro sign-in took too long and expired. Please try again.',
  authorization_failed: 'Miro did not complete the authorization. Please try again.',
  // Completing a connection.
  invalid_completion: 'This Miro authorization was already used or has expired. Please connect again.',
  completion_forbidden: 'This Miro authorization was started by another user, or in another tab or browser. Nothing was connected. Please connect again from this page.',
  miro_authorization_required: 'Please connect your Miro account first.',
  not_connected: 'You are not connected to that Miro team.',
  // The request.
  unauthenticated: 'Your session has expired. Please sign in again.',
  method_not_allowed: 'The request was not understood (method not allowed).',
  not_found: 'The request was not understood (no such route).',
  unsupported_media_type: 'The request was not understood (it must be JSON).',
  payload_too_large: 'The request was too large.',
  malformed_json: 'The request was not understood (malformed JSON).',
  invalid_body: 'The request was not understood (invalid body).',
  invalid_board: 'Miro would not accept this board. Please check its name and settings.',
  invalid_item: 'Miro would not accept one of the items for this board. Nothing was created.',
  board_not_found: 'That board does not exist, or you cannot see it in this Miro team.',
  template_not_found: 'That template board does not exist, or you cannot see it in Miro.',
  invalid_parameter: 'A setting of this request is not valid.',
  return_to_not_allowed: 'This page is not allowed to receive the Miro connection.',
  idempotency_key_reused: 'This request was already made with different details.',
  idempotency_in_progress: 'This board is already being created. Please wait a moment.',
  // Miro and the service.
  miro_rejected: 'Miro refused the request.',
  miro_rate_limited: 'Miro is busy (rate limit). Please wait a moment and try again.',
  miro_unavailable: 'Miro is unavailable right now. Please try again shortly.',
  miro_outcome_unknown: 'Miro did not confirm whether the board was created. Check your Miro boards before trying again.',
  storage_unavailable: 'The service is unavailable right now. Please try again shortly.',
  internal_error: 'Something went wrong on our side. Please try again.',
  // This client.
  too_many_authorizations: 'Too many Miro sign-ins are waiting to be finished. Please wait a few minutes and try again.',
  request_timeout: 'The service took too long to answer. Please try again.',
  network_error: 'Could not reach the service. Check your connection and try again.',
  unexpected_response: 'The service gave an unexpected answer. Please try again.',
});

/**
 * A friendly, user-facing text for an error code.
 * @param {string} code an error code (`error` of an API answer, or `miro_error` of a redirect)
 * @returns {string} the text for that code, or a generic one for a code it does not know
 */
export function messageFor(code) {
  if (Object.prototype.hasOwnProperty.call(MESSAGES, code)) return MESSAGES[code];
  return 'Something went wrong (' + String(code) + '). Please try again.';
}

/**
 * What every method of the client throws: `code` is the API's error code (or
 * the callback's `miro_error` code, or `network_error` / `unexpected_response`),
 * `message` is {@link messageFor}`(code)`, fit to show to the user.
 */
export class MiroConnectError extends Error {
  /**
   * @param {string} code the error code
   * @param {object} [details]
   * @param {number} [details.status] the HTTP status, when there was an answer
   * @param {string} [details.detail] the server's own message (technical, English)
   * @param {number} [details.retryAfter] seconds to wait, from `Retry-After`
   * @param {string} [details.field] with `invalid_item`, the request's field at fault (`items[3].color`)
   * @param {unknown} [details.cause] the underlying error
   */
  constructor(code, { status, detail, retryAfter, field, cause } = {}) {
    super(messageFor(code), cause === undefined ? undefined : { cause });
    this.name = 'MiroConnectError';
    /** @type {string} */
    this.code = code;
    /** @type {number | undefined} */
    this.status = status;
    /** @type {string | undefined} */
    this.detail = detail;
    /** @type {number | undefined} */
    this.retryAfter = retryAfter;
    /** @type {string | undefined} */
    this.field = field;
  }
}

/**
 * True when `location` carries the result of a Miro flow (`miro_authorization`
 * or `miro_error` in its query), i.e. {@link Client.completeFromLocation} has
 * something to do.
 * @param {{ href: string }} [location] defaults to `window.location`
 * @returns {boolean}
 */
export function hasMiroResult(location = globalThis.location) {
  const params = new URL(location.href).searchParams;
  return RESULT_PARAMS.some((name) => params.has(name));
}

/**
 * @typedef {object} Board
 * @property {string} id
 * @property {string} name
 * @property {string} [view_link] Miro's link to the board (left out unless https)
 * @property {object} [team]
 * @property {string} [created_at]
 */

/**
 * One Miro connection: the user's consent in one Miro team.
 * @typedef {object} Connection
 * @property {string} team_id the team Miro named (the one picked on Miro's page)
 * @property {string} [team_name]
 * @property {string} [miro_user_id]
 * @property {string[]} scopes
 * @property {string} connected_at
 * @property {string} [expires_at] when it lapses unless used
 * @property {boolean} default boards without a `team_id` go to this one
 */

/**
 * What became of a request's items and connectors.
 * @typedef {object} ContentResult
 * @property {number} created items and connectors the request made
 * @property {Record<string, string>} refs each `ref` of the request: its Miro item id
 * @property {string[]} [unknown] refs whose creation could not be confirmed (look at the board before adding them again)
 */

/**
 * @typedef {object} Completed
 * @property {Connection} connection the user's connection, now made
 * @property {Board | null} board the board the flow was started for, if any
 * @property {ContentResult | null} items what became of that board's items, if it asked for any
 * @property {{ invited: string[], failed: { email: string, reason: string }[] } | null} invitations what became of its invitations, if it asked for members
 * @property {MiroConnectError | null} boardError why that board could not be created, if it could not
 */

/**
 * @typedef {object} Client
 * @property {(options?: { returnTo?: string, teamId?: string }) => Promise<{ authorizeUrl: string, expiresAt: string }>} startConnect
 * @property {(board?: object, options?: { idempotencyKey?: string, details?: boolean }) => Promise<Board | object | null>} createBoard
 * @property {(boardId: string, content: { items: object[], connectors?: object[] }, options?: { teamId?: string, idempotencyKey?: string }) => Promise<{ board: { id: string }, items: ContentResult } | null>} addItems
 * @property {(location?: { href: string }) => Promise<Completed | null>} completeFromLocation
 * @property {() => Promise<Connection[]>} connections
 * @property {(teamId: string) => Promise<Connection[]>} chooseDefault
 * @property {(teamId?: string) => Promise<void>} disconnect
 * @property {(code: string) => string} messageFor
 */

/**
 * Makes a client for one miro-connect API.
 *
 * @param {object} options
 * @param {string} [options.baseUrl] the API's base URL (`ApiUrl` of the
 *   deployment); empty for the page's own origin
 * @param {() => (string | null | undefined | Promise<string | null | undefined>)} options.getToken
 *   your app's JWT for the signed-in user (sent as `Authorization: Bearer`)
 * @param {Storage} [options.storage] where this tab keeps the flow secret;
 *   `sessionStorage` (this tab only) unless you have a reason
 * @param {string} [options.storageKey] the key it is kept under
 * @param {(url: string) => void} [options.navigate] how to send the browser
 *   to Miro's consent page; `window.location.assign` by default
 * @param {typeof fetch} [options.fetch] the `fetch` to use
 * @param {History} [options.history] the `History` whose current entry is
 *   cleaned of the flow's result; `window.history` by default
 * @returns {Client}
 */
export function createClient({
  baseUrl = '',
  getToken,
  storage = globalThis.sessionStorage,
  storageKey = 'miro-connect.flow-secret',
  navigate = (url) => globalThis.location.assign(url),
  fetch: fetchImpl = globalThis.fetch.bind(globalThis),
  history = globalThis.history,
} = {}) {
  if (typeof getToken !== 'function') throw new TypeError('createClient: getToken must be a function');
  const base = String(baseUrl).replace(/\/+$/, '');

  const keep = (secret) => {
    if (typeof secret === 'string' && secret) storage.setItem(storageKey, secret);
    else storage.removeItem(storageKey);
  };
  const take = () => {
    const secret = storage.getItem(storageKey);
    storage.removeItem(storageKey);
    return secret;
  };

  /** Presents a completion; on a retryable answer keeps the secret for a retry. */
  async function complete(completion, flowSecret) {
    const body = { completion };
    if (flowSecret) body.flow_secret = flowSecret;
    const retryable = (err) => {
      keep(flowSecret);
      err.completion = completion;
      return err;
    };
    let res;
    try {
      res = await call('POST', '/miro/authorizations/complete', { body });
    } catch (e) {
      throw e instanceof MiroConnectError ? retryable(e) : e;
    }
    if (res.status === 429 || res.status === 503) throw retryable(failure(res));
    if (res.status !== 200 || !res.body || !res.body.connection) throw failure(res);
    const boardError = res.body.board_error;
    return {
      connection: res.body.connection,
      board: res.body.board || null,
      items: res.body.items || null,
      invitations: res.body.invitations || null,
      boardError: boardError
        ? new MiroConnectError(String(boardError.error || 'unexpected_response'), {
          detail: typeof boardError.message === 'string' ? boardError.message : undefined,
          field: typeof boardError.field === 'string' ? boardError.field : undefined,
        })
        : null,
    };
  }

  async function call(method, path, { body, headers = {} } = {}) {
    const token = await getToken();
    if (!token) throw new MiroConnectError('unauthenticated');
    const init = {
      method,
      headers: { ...headers, Authorization: 'Bearer ' + token },
      credentials: 'omit',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetchImpl(base + path, init);
    } catch (cause) {
      throw new MiroConnectError('network_error', { cause });
    }
    let json = null;
    if (res.status !== 204) {
      try { json = await res.json(); } catch (_) { /* no JSON body */ }
    }
    return { status: res.status, headers: res.headers, body: json };
  }

  function failure(res) {
    const body = res.body && typeof res.body === 'object' ? res.body : {};
    const code = typeof body.error === 'string' ? body.error : 'unexpected_response';
    const retry = Number.parseInt(res.headers.get('Retry-After') || '', 10);
    return new MiroConnectError(code, {
      status: res.status,
      detail: typeof body.message === 'string' ? body.message : undefined,
      retryAfter: Number.isFinite(retry) ? retry : undefined,
      field: typeof body.field === 'string' ? body.field : undefined,
    });
  }

  // Keeps the flow secret in this tab, then leaves for Miro's consent page.
  function goToMiro(body) {
    if (!body || typeof body.authorize_url !== 'string') {
      throw new MiroConnectError('unexpected_response');
    }
    keep(body.flow_secret);
    navigate(body.authorize_url);
  }

  return {
    /**
     * Starts connecting the signed-in user to Miro (`POST /miro/authorizations`):
     * keeps the flow secret in this tab and navigates to Miro's consent page.
     * @param {{ returnTo?: string, teamId?: string }} [options] `returnTo`:
     *   the page of your app the flow returns to (one of the deployment's
     *   allowed origins; default: the deployment's `DefaultReturnTo`);
     *   `teamId`: the Miro team to preselect
     * @returns {Promise<{ authorizeUrl: string, expiresAt: string }>} once navigating
     * @throws {MiroConnectError}
     */
    async startConnect({ returnTo, teamId } = {}) {
      const body = {};
      if (returnTo !== undefined) body.return_to = String(returnTo);
      if (teamId !== undefined) body.team_id = String(teamId);
      const res = await call('POST', '/miro/authorizations', { body });
      if (res.status !== 201) throw failure(res);
      goToMiro(res.body);
      return { authorizeUrl: res.body.authorize_url, expiresAt: res.body.expires_at };
    },

    /**
     * Creates a board (`POST /boards`). When the user is not connected yet
     * the service keeps the board as the flow's intent: this keeps the flow
     * secret, navigates to Miro's consent page and resolves to `null`; the
     * board then comes back from {@link Client.completeFromLocation}.
     * @param {{ name?: string, description?: string, team_id?: string, project_id?: string, policy?: object,
     *   template_board_id?: string, members?: { email: string, role: string }[], invitation_message?: string,
     *   items?: object[], connectors?: object[] }} [board] `items` and `connectors`: the app's
     *   own content for the board (sticky notes, texts, shapes, cards, frames; lines between
     *   them), plain text that is never read as markup
     * @param {{ idempotencyKey?: string, details?: boolean }} [options] `idempotencyKey`: sent as
     *   `Idempotency-Key`, so that a repeat creates no second board or item (and a
     *   retry finishes what a failure left undone; the key is kept through a
     *   consent, too); `details`: resolve to the whole answer,
     *   `{board, items?, invitations?}`, rather than the board
     * @returns {Promise<Board | { board: Board, items?: ContentResult, invitations?: { invited: string[], failed: { email: string, reason: string }[] } } | null>}
     *   the board, or `null` when off to Miro
     * @throws {MiroConnectError}
     */
    async createBoard(board = {}, { idempotencyKey, details = false } = {}) {
      const headers = {};
      if (idempotencyKey !== undefined) headers['Idempotency-Key'] = String(idempotencyKey);
      const res = await call('POST', '/boards', { body: board, headers });
      if (res.status === 201 && res.body && res.body.board) return details ? res.body : res.body.board;
      if (res.status === 401 && res.body && res.body.error === 'miro_authorization_required'
          && typeof res.body.authorize_url === 'string') {
        goToMiro(res.body);
        return null;
      }
      throw failure(res);
    },

    /**
     * Puts items and connectors on an existing board
     * (`POST /boards/{board_id}/items`), through the connection of `teamId`
     * (else the default one). When that connection is missing, this goes to
     * Miro's consent page like {@link Client.createBoard} and resolves to
     * `null`; send the same request again once connected.
     * @param {string} boardId the Miro board's id
     * @param {{ items: object[], connectors?: object[] }} content
     * @param {{ teamId?: string, idempotencyKey?: string }} [options] `idempotencyKey`:
     *   sent as `Idempotency-Key`, so that a repeat makes nothing twice
     * @returns {Promise<{ board: { id: string }, items: ContentResult } | null>}
     * @throws {MiroConnectError} `board_not_found`, `invalid_item` (its `field` names the item), …
     */
    async addItems(boardId, content, { teamId, idempotencyKey } = {}) {
      const headers = {};
      if (idempotencyKey !== undefined) headers['Idempotency-Key'] = String(idempotencyKey);
      const body = { ...content };
      if (teamId !== undefined) body.team_id = String(teamId);
      const res = await call('POST', '/boards/' + encodeURIComponent(boardId) + '/items', { body, headers });
      if (res.status === 200 && res.body && res.body.items) return res.body;
      if (res.status === 401 && res.body && res.body.error === 'miro_authorization_required'
          && typeof res.body.authorize_url === 'string') {
        goToMiro(res.body);
        return null;
      }
      throw failure(res);
    },

    /**
     * Finishes a flow on the page it returned to. Reads `miro_authorization`
     * or `miro_error` from the query and removes both from the address bar
     * at once (`history.replaceState`); then presents the completion with the
     * flow secret this tab kept (`POST /miro/authorizations/complete`) and
     * forgets the secret. It presents the completion even when this tab kept
     * no secret: the service then refuses it and destroys it, so a
     * completion link planted on the user (or opened in another tab) can
     * never be used by anyone.
     * @param {{ href: string }} [location] defaults to `window.location`
     * @returns {Promise<Completed | null>} `null` when the location carries no result
     * @throws {MiroConnectError} `access_denied`, `expired`, `authorization_failed`
     *   (from Miro's side), `completion_forbidden`, `invalid_completion`, …
     */
    async completeFromLocation(location = globalThis.location) {
      const url = new URL(location.href);
      const completion = url.searchParams.get('miro_authorization');
      const error = url.searchParams.get('miro_error');
      if (completion === null && error === null) return null;
      for (const name of RESULT_PARAMS) url.searchParams.delete(name);
      if (history && typeof history.replaceState === 'function') {
        history.replaceState(history.state, '', url.pathname + url.search + url.hash);
      }
      const flowSecret = take();
      // A completion id is always presented, even beside a `miro_error`.
      if (!completion) {
        throw new MiroConnectError(CALLBACK_ERRORS.includes(error) ? error : 'authorization_failed');
      }
      return complete(completion, flowSecret);
    },

    /**
     * Presents a completion again after a retryable failure of
     * {@link completeFromLocation} (its error carries `completion`): the
     * service kept the code, and this tab kept the flow secret.
     * @param {string} completion the error's `completion`
     * @returns {Promise<Completed>}
     * @throws {MiroConnectError}
     */
    async retryCompletion(completion) {
      return complete(completion, take());
    },

    /**
     * The signed-in user's Miro connections, one per Miro team, oldest first
     * (`GET /miro/connections`). Never a token.
     * @returns {Promise<Connection[]>}
     * @throws {MiroConnectError}
     */
    async connections() {
      const res = await call('GET', '/miro/connections');
      if (res.status !== 200 || !res.body) throw failure(res);
      return res.body.connections;
    },

    /**
     * Boards asked for without a `team_id` go to `teamId` from now on
     * (`PUT /miro/connections/{team_id}/default`).
     * @param {string} teamId a team the user is connected in
     * @returns {Promise<Connection[]>} the connections, this one the default
     * @throws {MiroConnectError} `not_connected`, …
     */
    async chooseDefault(teamId) {
      const res = await call('PUT', '/miro/connections/' + encodeURIComponent(teamId) + '/default');
      if (res.status !== 200 || !res.body) throw failure(res);
      return res.body.connections;
    },

    /**
     * Disconnects the signed-in user from one Miro team, or from every team
     * when `teamId` is left out (`DELETE /miro/connections[/{team_id}]`):
     * forgotten at once, then revoked at Miro. Idempotent.
     * @param {string} [teamId]
     * @returns {Promise<void>}
     * @throws {MiroConnectError}
     */
    async disconnect(teamId) {
      const path = teamId === undefined
        ? '/miro/connections'
        : '/miro/connections/' + encodeURIComponent(teamId);
      const res = await call('DELETE', path);
      if (res.status !== 204) throw failure(res);
    },

    /** {@link messageFor}, for convenience. */
    messageFor,
  };
}
