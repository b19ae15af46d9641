// A stock socket.io-client (tests/live/node/package.json) with its default reconnection, whose
// `auth` is a function that asks the test for a fresh token on every CONNECT (reconnects
// included), for the token renewal live tests (tests/live/test_tokens_live.py).
// Usage: node renew_client.cjs <url> [<json options>] (e.g. {"transports":["polling"]};
// default: socket.io-client's own, polling then the upgrade)
// Prints one JSON line per thing that happens: {"type":"auth","n"} (the callback was called; the
// test answers with one line on stdin, the token), {"type":"connect","id","recovered"},
// {"type":"joined","ack"}, {"type":"disconnect","reason","active"} (`active`: whether the client
// will reconnect), {"type":"event","name","args"}, {"type":"connect_error","message","data"}.
// Runs until killed.
"use strict";
const readline = require("node:readline");
const { io } = require("socket.io-client");

const [url, options] = process.argv.slice(2);
const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const waiting = [];
readline.createInterface({ input: process.stdin }).on("line", (token) => {
  const callback = waiting.shift();
  if (callback) callback({ token });
});
let calls = 0;
const socket = io(url, {
  path: "/ws/socket.io", // reconnection: defaults
  ...JSON.parse(options || "{}"),
  auth: (callback) => {
    calls += 1;
    waiting.push(callback);
    say({ type: "auth", n: calls });
  },
});
let joined = false;

socket.on("connect", () => {
  say({ type: "connect", id: socket.id, recovered: socket.recovered });
  if (!joined) {
    joined = true;
    socket.emit("user-join", {}, (ack) => say({ type: "joined", ack }));
  }
});
socket.on("disconnect", (reason) => say({ type: "disconnect", reason, active: socket.active }));
socket.on("connect_error", (error) =>
  say({ type: "connect_error", message: error.message, data: error.data }),
);
socket.onAny((name, ...args) => say({ type: "event", name, args }));
