// The session: log in with a password, keep the token pair in memory, renew the access token
// before it expires, and get single-use connection tickets. (docs/protocol.md §4, §4.2, §4.3)
//
// Tokens live in this module only (not in localStorage): a reload means logging in again. A
// real app may keep the refresh token in storage it trusts; it never belongs in a URL or a log.

/** Thrown for an HTTP error; `code` is Chorus's error code (docs/protocol.md §10). */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "network_error";
  }
}

/** fetch() a JSON endpoint of the same origin; the parsed body, or throws ApiError. */
export async function api(path, { method = "GET", token, body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { error: { code: "network_error", message: "the server is unreachable" } });
  }
  const parsed = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

/** Renew this many seconds before `exp` (at half the lifetime when that is shorter). */
const RENEW_MARGIN_S = 60;

export class Session {
  /** `onRenewed(access)` runs after each renewal (the chat socket sends `auth:renew`);
   *  `onLost(reason)` when the session cannot go on (the refresh token was refused). */
  constructor({ onRenewed = () => {}, onLost = () => {} } = {}) {
    this.onRenewed = onRenewed;
    this.onLost = onLost;
    this.access = null;
    this.refresh = null;
    this.expiresAt = 0; // ms since the epoch
    this.lifetime = 0; // ms the current access token lived when it was issued
    this.user = null; // {id, name}
    this._timer = null;
    this._renewing = null;
  }

  /** POST /api/auth/token/ → {access, refresh, expires_at, user}. Throws ApiError
   *  (`invalid_credentials`, `rate_limited`, …). */
  async login(username, password) {
    this._adopt(await api("/api/auth/token/", { method: "POST", body: { username, password } }));
    return this.user;
  }

  /** POST /api/auth/logout/: revokes the access and refresh tokens; the server kicks the
   *  sockets opened with them (`error` token_revoked, then a final disconnect). */
  async logout() {
    clearTimeout(this._timer);
    const { access, refresh } = this;
    this.access = this.refresh = null;
    if (access) await api("/api/auth/logout/", { method: "POST", token: access, body: { refresh } }).catch(() => {});
  }

  /** An access token good for at least a few more seconds, renewed first if needed. */
  async freshAccess() {
    if (!this.refresh) throw new ApiError(401, { error: { code: "auth_required", message: "logged out" } });
    if (Date.now() > this.expiresAt - Math.min(5_000, this.lifetime / 4)) await this.renew();
    return this.access;
  }

  /** POST /api/auth/ws-ticket/ → a ticket for ONE WebSocket connection within 30 s (§4.2).
   *  A browser cannot set headers on a WebSocket, and a ticket keeps the JWT out of the URL. */
  async ticket() {
    const token = await this.freshAccess();
    return (await api("/api/auth/ws-ticket/", { method: "POST", token })).ticket;
  }

  /** POST /api/auth/token/refresh/ → a new pair (the old refresh token is spent). One at a
   *  time: concurrent callers share the request. */
  renew() {
    this._renewing ??= (async () => {
      try {
        this._adopt(await api("/api/auth/token/refresh/", { method: "POST", body: { refresh: this.refresh } }));
        this.onRenewed(this.access);
      } catch (error) {
        // The server is down (network_error, 5xx): keep the tokens, try again soon.
        // Refused (401: revoked, expired): the session is over; the user logs in again.
        if (error.status === 401) {
          this.access = this.refresh = null;
          this.onLost(error.code);
        } else {
          this._schedule(5_000);
        }
        throw error;
      } finally {
        this._renewing = null;
      }
    })();
    return this._renewing;
  }

  _adopt({ access, refresh, user }) {
    this.access = access;
    this.refresh = refresh;
    if (user) this.user = user;
    // The token's lifetime from its own claims (exp - iat), counted on this machine's clock:
    // the server's `expires_at` compared with a skewed local clock could be far off.
    const { exp, iat } = JSON.parse(atob(access.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    const lifetime = (this.lifetime = (exp - iat) * 1000);
    this.expiresAt = Date.now() + lifetime;
    this._schedule(Math.max(1_000, lifetime - Math.min(RENEW_MARGIN_S * 1000, lifetime / 2)));
  }

  _schedule(delayMs) {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.renew().catch(() => {}), delayMs);
  }
}
