// The collaborative note: a Tiptap editor bound to a Yjs document that y-websocket's
// WebsocketProvider syncs with Chorus's `/ws/yjs/<document_id>` (docs/protocol.md §8, §9).
//
// - The Yjs fragment is `prosemirror` (Tiptap's Collaboration `field`): the one the server
//   renders into the note's content and seeds from it (docs/notes.md).
// - Live carets with names: CollaborationCaret (Tiptap 3's name for collaboration-cursor) shares
//   `{user: {name, color}}` and the selection through y-websocket awareness.
// - Credentials: a browser cannot set WebSocket headers, so the URL carries `?ticket=`, a
//   single-use ticket (POST /api/auth/ws-ticket/, §4.2). The provider's own retry would reuse
//   the spent ticket, so it is switched off (`shouldReconnect: () => false`) and every
//   reconnect here takes a new ticket first (§4.3's recipe).
// - Read-only: the note's `access` (REST) is "read" → the editor is not editable. The server
//   drops a reader's changes anyway and says so once with the y-protocols auth message
//   ("permission denied"), which this page shows as the state's reason.
// - Nothing typed is lost across a cut: the Yjs document stays in the page, and the sync
//   step 1 / step 2 exchange on reconnect sends each side what the other lacks (§9).
import { Editor } from "@tiptap/core";
import Collaboration from "@tiptap/extension-collaboration";
import CollaborationCaret from "@tiptap/extension-collaboration-caret";
import StarterKit from "@tiptap/starter-kit";
import { WebsocketProvider, messageAuth } from "y-websocket";
import * as authProtocol from "y-protocols/auth";
import * as Y from "yjs";
import { api } from "./auth.js";
import { closeWords, errorWords, showState } from "./status.js";

/** Reconnect backoff: first retry after RETRY_MIN_MS, doubling up to RETRY_MAX_MS. */
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 5_000;
const COLORS = ["#d9480f", "#1971c2", "#2f9e44", "#9c36b5", "#c2255c", "#0c8599"];

export class Note {
  constructor(session, noteTitle, ui) {
    this.session = session;
    this.noteTitle = noteTitle;
    this.ui = ui; // {state, title, editor}
    this.retryMs = RETRY_MIN_MS;
    this.stopped = false;
  }

  async start() {
    const token = await this.session.freshAccess();
    const notes = await api("/api/notes/", { token });
    this.note = notes.find((n) => n.title === this.noteTitle) || notes[0];
    if (!this.note) return showState(this.ui.state, "refused", "no note is shared with you");
    this.readOnly = this.note.access !== "write";
    this.ui.title.textContent = this.note.title;

    this.ydoc = new Y.Doc();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.provider = new WebsocketProvider(`${scheme}://${location.host}/ws/yjs`, this.note.document_id, this.ydoc, {
      connect: false, // first a ticket (below)
      disableBc: true, // the server is the only way between pages (no cross-tab shortcut)
      shouldReconnect: () => false, // every reconnect takes a new ticket: see _closed
    });
    this.provider.on("status", ({ status }) => this._status(status));
    this.provider.on("closed", ({ code, reason }) => this._closed(code, reason));
    // The server's answer to a reader's change (§8): y-websocket only logs it; show it.
    this.provider.messageHandlers[messageAuth] = (_encoder, decoder) =>
      authProtocol.readAuthMessage(decoder, this.ydoc, (_doc, reason) =>
        showState(this.ui.state, "read-only", reason),
      );

    const user = this.session.user;
    this.editor = new Editor({
      element: this.ui.editor,
      editable: !this.readOnly,
      extensions: [
        StarterKit.configure({ undoRedo: false }), // Yjs has its own undo; StarterKit's would fight it
        Collaboration.configure({ document: this.ydoc, field: "prosemirror" }),
        CollaborationCaret.configure({
          provider: this.provider,
          user: { name: user.name, color: COLORS[parseInt(user.id.slice(-2), 16) % COLORS.length] },
        }),
      ],
    });
    await this._connect();
  }

  stop() {
    this.stopped = true;
    if (this.provider) this.provider.destroy();
    if (this.editor) this.editor.destroy();
  }

  /** Plain text of the editor (what the test and a reader see). */
  text() {
    return this.editor ? this.editor.getText() : "";
  }

  async _connect() {
    if (this.stopped) return;
    try {
      this.provider.params = { ticket: await this.session.ticket() };
    } catch (error) {
      if (error.status === 401) return showState(this.ui.state, "refused", errorWords(error.code));
      return this._retry(errorWords(error.code, error.message)); // the server is down: try again
    }
    this.provider.connect();
  }

  _retry(why) {
    showState(this.ui.state, "reconnecting", why);
    setTimeout(() => this._connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
  }

  _status(status) {
    if (status === "connected") {
      this.retryMs = RETRY_MIN_MS;
      if (this.readOnly) showState(this.ui.state, "read-only", "you may read this note, not edit it");
      else showState(this.ui.state, "connected");
    } else if (status === "connecting") {
      showState(this.ui.state, "connecting");
    }
  }

  /** The server (or the network) closed the connection: decide from the close code. */
  _closed(code, reason) {
    if (this.stopped) return;
    const why = closeWords(code, reason);
    if (code === 4403) return showState(this.ui.state, "refused", why); // no access: retrying cannot help
    // 4401 (ticket spent, token expired or revoked): a new ticket from a fresh token — if the
    // session itself was revoked, getting one fails with 401 and the state says "refused".
    // 1001 (restart), 1006 (cut), 1011, 4429 …: try again with backoff and a new ticket.
    this._retry(why);
  }
}
