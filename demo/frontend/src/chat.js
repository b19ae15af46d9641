// The chat: one stock socket.io-client socket, a channel's messages, typing and presence.
// (docs/protocol.md §2.1, §3, §4.1, §4.3, §6, §7; docs/channels.md "Reconnect recipe")
//
// - Default transports: HTTP long-polling first, then the upgrade to WebSocket — what gets
//   through any proxy. `path` is Chorus's.
// - The token travels in the CONNECT packet (`auth`), never in a URL: socket.io-client calls the
//   `auth` callback for every CONNECT, reconnects included, so each one carries a fresh token.
//   (A connection ticket is for WebSocket URLs — see note.js; socket.io needs none.)
// - Renewal in band: after the session renews its token the page sends `auth:renew`, so the
//   socket's expiry moves and it is never cut at `exp`.
// - Reconnects: socket.io-client's Manager retries by itself after any cut (server restart,
//   network, the `token_expired` close). A resumed session (`socket.recovered`) gets back its
//   rooms and missed events; otherwise the page runs the reconnect recipe: `user-join` first,
//   then fetch what it missed over REST, deduplicating by message id.
import { io } from "socket.io-client";
import { api } from "./auth.js";
import { errorWords, showState } from "./status.js";

/** Stop showing someone as typing when no update came for this long (they may have left). */
const TYPING_SHOW_MS = 6_000;
/** Tell the others "still typing" at most this often; "stopped" after this long idle. */
const TYPING_SEND_MS = 2_000;

export class Chat {
  constructor(session, channelName, ui) {
    this.session = session;
    this.channelName = channelName;
    this.ui = ui; // {state, messages, typing, presence, input, form}
    this.channel = null;
    this.messages = new Map(); // id -> message (the dedup of the reconnect recipe)
    this.typing = new Map(); // user id -> {name, timer}
    this.online = new Map(); // user id -> name
    this.socket = null;
    this._typingSentAt = 0;
    this._typingStop = null;
    this._why = null; // why the socket is not connected, in words
  }

  async start() {
    const token = await this.session.freshAccess();
    const channels = await api("/api/channels/?joined=true", { token });
    this.channel = channels.find((c) => c.name === this.channelName) || channels[0];
    if (!this.channel) return showState(this.ui.state, "refused", "you are in no channel");
    this.ui.title.textContent = `# ${this.channel.name}`;

    this.socket = io({
      path: "/ws/socket.io",
      // a function: called for each CONNECT, so a reconnect never sends an expired token
      auth: (cb) =>
        this.session.freshAccess().then(
          (token) => cb({ token }),
          () => cb({}), // no token: the server answers auth_required, shown as "refused"
        ),
    });
    const s = this.socket;
    s.on("connect", () =>
      // a cut during the catch-up: the next connect runs it again
      this._connected().catch((error) => console.warn("catch-up failed:", error.message)),
    );
    s.on("disconnect", (reason) => this._disconnected(reason));
    s.on("connect_error", (error) => {
      const code = error.data && error.data.code;
      if (!code) {
        // not a refusal (the server is down): the Manager retries by itself
        this._why = "the server is unreachable";
        return showState(this.ui.state, "reconnecting", this._why);
      }
      // A refused CONNECT (CONNECT_ERROR) is final in socket.io-client. A token that expired
      // on the way is worth one more try with a renewed one; anything else needs the user.
      if (code === "token_expired" && this.session.refresh) {
        showState(this.ui.state, "reconnecting", errorWords(code));
        this.session.renew().then(() => this.socket.connect(), () => {}); // a refused renewal ends the session
        return;
      }
      showState(this.ui.state, "refused", errorWords(code));
    });
    // Sent to this socket only, before a kick or the close at the token's expiry.
    s.on("error", (error) => {
      this._why = errorWords(error.code, error.message);
      showState(this.ui.state, "reconnecting", this._why);
    });
    s.on("events:channel", (event) => this._event(event));
    s.io.on("reconnect_attempt", (n) => showState(this.ui.state, "reconnecting", `${this._why} (attempt ${n})`));

    this.ui.input.addEventListener("input", () => this._typed());
    this.ui.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.send().catch((error) => this._flash(error));
    });
  }

  /** After the session renewed its tokens: move this socket's expiry (§4.3, `auth:renew`). */
  async renewed(access) {
    if (!this.socket || !this.socket.connected) return; // the next CONNECT takes the new token
    const ack = await this.socket.emitWithAck("auth:renew", { token: access });
    if (ack.error) console.warn("auth:renew refused:", ack.error.code); // the old expiry still holds
  }

  async send() {
    const content = this.ui.input.value.trim();
    if (!content) return;
    const token = await this.session.freshAccess();
    // REST stores the message and the server emits `events:channel` `message` to the room.
    const message = await api(`/api/channels/${this.channel.id}/messages/`, {
      method: "POST",
      token,
      body: { content },
    });
    this.ui.input.value = "";
    this._addMessage(message);
    this._sendTyping(false);
  }

  stop() {
    if (this.socket) this.socket.disconnect();
  }

  // --- connection --------------------------------------------------------------------------

  async _connected() {
    this._why = null;
    showState(this.ui.state, "connected", this.socket.recovered ? "session resumed" : "");
    if (this.socket.recovered) return; // rooms and missed events came back with the session
    // The reconnect recipe (docs/channels.md): subscribe first, then fetch, then merge.
    await this.socket.emitWithAck("user-join", {});
    const token = await this.session.freshAccess();
    const last = this._sorted().pop()?.id;
    const query = last ? `?after=${last}&limit=200` : "?limit=50";
    const page = await api(`/api/channels/${this.channel.id}/messages/${query}`, { token });
    page.messages.forEach((m) => this._addMessage(m));
    const presence = await api(`/api/channels/${this.channel.id}/presence/`, { token });
    this.online = new Map(presence.online.map((u) => [u.id, u.name]));
    this._renderPresence();
  }

  _disconnected(reason) {
    // "io server disconnect": a kick (logout, revoke-all; its `error` said why): final,
    // socket.active is false. Anything else: the Manager reconnects by itself.
    if (!this.socket.active) {
      showState(this.ui.state, "refused", this._why || "disconnected by the server");
    } else {
      this._why ??= reason === "transport close" ? "the connection was cut" : reason;
      showState(this.ui.state, "reconnecting", this._why);
    }
    this.typing.forEach(({ timer }) => clearTimeout(timer));
    this.typing.clear();
    this._renderTyping();
  }

  // --- events ------------------------------------------------------------------------------

  _event(event) {
    if (event.channel_id !== this.channel.id) return;
    const { type, data } = event.data;
    if (type === "message" && !data.parent_id) this._addMessage(data);
    else if (type === "message:update" || type === "message:delete") this._addMessage(data);
    else if (type === "typing") this._someoneTyping(event.user, data.typing);
    else if (type === "presence") {
      if (data.status === "online") this.online.set(data.user_id, event.user.name);
      else this.online.delete(data.user_id);
      this._renderPresence();
    }
    // other types (reactions, members, channel changes) are not shown by this demo
  }

  _addMessage(message) {
    const isNew = !this.messages.has(message.id);
    this.messages.set(message.id, message);
    if (isNew && message.author) this._someoneTyping(message.author, false); // sent: no longer typing
    this._renderMessages();
  }

  _someoneTyping(user, typing) {
    const before = this.typing.get(user.id);
    if (before) clearTimeout(before.timer);
    this.typing.delete(user.id);
    if (typing) {
      const timer = setTimeout(() => this._someoneTyping(user, false), TYPING_SHOW_MS);
      this.typing.set(user.id, { name: user.name, timer });
    }
    this._renderTyping();
  }

  /** Typing: `events:channel` `{type: "typing", data: {typing}}`, relayed to the others only. */
  _typed() {
    clearTimeout(this._typingStop);
    this._typingStop = setTimeout(() => this._sendTyping(false), TYPING_SEND_MS);
    if (Date.now() - this._typingSentAt > TYPING_SEND_MS) this._sendTyping(true);
  }

  _sendTyping(typing) {
    if (!this.socket || !this.socket.connected) return;
    this._typingSentAt = typing ? Date.now() : 0;
    if (!typing) clearTimeout(this._typingStop);
    this.socket.emit("events:channel", {
      channel_id: this.channel.id,
      data: { type: "typing", data: { typing } },
    });
  }

  // --- rendering ---------------------------------------------------------------------------

  _renderMessages() {
    this.ui.messages.replaceChildren(
      ...this._sorted().map((m) => {
        const li = document.createElement("li");
        const who = document.createElement("b");
        who.textContent = m.author ? m.author.name : "?";
        li.append(who, " ", m.deleted_at ? "(deleted)" : m.content);
        return li;
      }),
    );
    this.ui.messages.scrollTop = this.ui.messages.scrollHeight;
  }

  /** Messages in the API's order: (created_at, id). */
  _sorted() {
    const key = (m) => `${m.created_at} ${m.id}`;
    return [...this.messages.values()].sort((a, b) => key(a).localeCompare(key(b)));
  }

  _renderTyping() {
    const names = [...this.typing.values()].map((t) => t.name);
    this.ui.typing.textContent = names.length ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…` : "";
  }

  _renderPresence() {
    this.ui.presence.replaceChildren(
      ...[...this.online.values()].sort().map((name) => {
        const li = document.createElement("li");
        li.textContent = name;
        return li;
      }),
    );
  }

  _flash(error) {
    this.ui.typing.textContent = `not sent: ${errorWords(error.code, error.message)}`;
  }
}
