// Close codes and error codes in words (docs/protocol.md §3, §4, §8). Browsers see the close
// code of a WebSocket, and Chorus's `error` events and CONNECT_ERROR codes; these are the words
// the page shows beside its connection state.

export const CLOSE_REASONS = {
  1000: "closed by the server",
  1001: "the server is restarting",
  1006: "the connection was lost (network or server down)",
  1009: "a message was too large",
  1011: "the server failed",
  4400: "the server did not understand the client",
  4401: "the login expired or was revoked",
  4403: "no access (or the account is disabled)",
  4408: "the connection timed out",
  4413: "the page did not keep up with the server",
  4429: "too many connections or too many messages",
};

export const ERROR_CODES = {
  auth_required: "not logged in",
  invalid_token: "the login is not valid",
  token_expired: "the login expired",
  token_revoked: "logged out (or the password changed)",
  ticket_invalid: "the connection ticket was already used or expired",
  forbidden: "no access",
  too_many_connections: "too many open connections for this user",
  rate_limited: "too many messages too fast",
  network_error: "the server is unreachable",
  invalid_credentials: "wrong username or password",
};

/** Words for a WebSocket close: Chorus's reason when the browser got one, else the code's. */
export function closeWords(code, reason) {
  const words = ERROR_CODES[reason] || CLOSE_REASONS[code] || "the connection closed";
  return `${words} (${code})`;
}

export function errorWords(code, fallback = "") {
  return ERROR_CODES[code] || fallback || code;
}

/** Show a connection state: `kind` is connected | connecting | reconnecting | read-only |
 *  refused | offline; `why` the reason in words. */
export function showState(element, kind, why = "") {
  element.dataset.state = kind;
  element.textContent = why ? `${kind}: ${why}` : kind;
}
