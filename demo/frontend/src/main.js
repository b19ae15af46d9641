// Chorus's demo page: log in, chat in a channel, co-edit a note (docs/demo.md).
// The reference client: auth.js (tokens, renewal, tickets), chat.js (socket.io-client),
// note.js (Tiptap + y-websocket), status.js (close and error codes in words).
import "./style.css";
import { Session } from "./auth.js";
import { Chat } from "./chat.js";
import { Note } from "./note.js";
import { errorWords, showState } from "./status.js";

/** What seed_demo creates (accounts/management/commands/seed_demo.py). */
const CHANNEL_NAME = "general";
const NOTE_TITLE = "Welcome";

const $ = (id) => document.getElementById(id);
let session = null;
let chat = null;
let note = null;

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  session = new Session({
    onRenewed: (access) => chat && chat.renewed(access),
    onLost: (code) => end(`Your session ended: ${errorWords(code)}. Log in again.`),
  });
  try {
    await session.login($("username").value, $("password").value);
  } catch (error) {
    $("login-error").textContent = errorWords(error.code, error.message);
    return;
  }
  $("login").hidden = true;
  $("app").hidden = false;
  $("me").textContent = session.user.name;
  $("logout").hidden = false;
  chat = new Chat(session, CHANNEL_NAME, {
    state: $("chat-state"),
    title: $("channel-name"),
    messages: $("messages"),
    typing: $("typing"),
    presence: $("presence"),
    input: $("message"),
    form: $("send"),
  });
  note = new Note(session, NOTE_TITLE, { state: $("note-state"), title: $("note-title"), editor: $("editor") });
  window.demo = { session, chat, note }; // for the console (and the test)
  await Promise.all([
    chat.start().catch((error) => showState($("chat-state"), "refused", errorWords(error.code, error.message))),
    note.start().catch((error) => showState($("note-state"), "refused", errorWords(error.code, error.message))),
  ]);
}

function end(message) {
  if (chat) chat.stop();
  if (note) note.stop();
  chat = note = null;
  $("editor").replaceChildren();
  $("app").hidden = true;
  $("logout").hidden = true;
  $("me").textContent = "";
  $("login").hidden = false;
  $("login-error").textContent = message;
}

async function logout() {
  await session.logout();
  end("");
}

$("login").addEventListener("submit", login);
$("logout").addEventListener("click", logout);
