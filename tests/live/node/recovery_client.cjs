// A stock socket.io-client (tests/live/node/package.json) for the recovery live tests.
// Usage: node recovery_client.cjs <url> <json auth>
// Connects (websocket only, quick reconnection), sends user-join once, and prints one JSON
// line per thing that happens: {"type":"connect","id","recovered","pid"}, {"type":"joined"},
// {"type":"disconnect","reason"}, {"type":"event","name","args"}, {"type":"connect_error"}.
// Runs until killed.
"use strict";
const { io } = require("socket.io-client");

const [url, auth] = process.argv.slice(2);
const socket = io(url, {
  path: "/ws/socket.io",
  transports: ["websocket"],
  auth: JSON.parse(auth),
  reconnectionDelay: 100,
  reconnectionDelayMax: 300,
  randomizationFactor: 0,
});
const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");
let joined = false;

socket.on("connect", () => {
  // socket._pid: what the client will send back to resume (read here only to test with it)
  say({ type: "connect", id: socket.id, recovered: socket.recovered, pid: socket._pid });
  if (!joined) {
    joined = true;
    socket.emit("user-join", {}, (ack) => say({ type: "joined", ack }));
  }
});
socket.on("disconnect", (reason) => say({ type: "disconnect", reason }));
socket.on("connect_error", (error) => say({ type: "connect_error", message: error.message }));
socket.onAny((name, ...args) => say({ type: "event", name, args }));
