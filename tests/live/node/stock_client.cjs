// A stock socket.io-client (tests/live/node/package.json) in its DEFAULT configuration, plus
// whatever options the test passes (e.g. transports: ["polling"]).
// Usage: node stock_client.cjs <url> <json options>
// Prints one JSON line per thing that happens:
//   {"type":"open","transport"} (Engine.IO open), {"type":"upgrade","transport"},
//   {"type":"connect","id","transport"},
//   {"type":"disconnect","reason"}, {"type":"connect_error","message"},
//   {"type":"event","name","args"}, {"type":"ack","n","args"}.
// Reads one JSON command per stdin line: {"n", "emit", "args"} emits `emit` with `args` and an
// ack callback (printed as {"type":"ack","n",...}). Runs until killed.
"use strict";
const readline = require("node:readline");
const { io } = require("socket.io-client");

const [url, options] = process.argv.slice(2);
const socket = io(url, JSON.parse(options));
const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");

socket.io.on("open", () => {
  const engine = socket.io.engine;
  say({ type: "open", transport: engine.transport.name });
  engine.once("upgrade", (transport) => say({ type: "upgrade", transport: transport.name }));
});
socket.on("connect", () => {
  say({ type: "connect", id: socket.id, transport: socket.io.engine.transport.name });
});
socket.on("disconnect", (reason) => say({ type: "disconnect", reason }));
socket.on("connect_error", (error) => say({ type: "connect_error", message: error.message }));
socket.onAny((name, ...args) => say({ type: "event", name, args }));

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  socket.emit(command.emit, ...command.args, (...args) => say({ type: "ack", n: command.n, args }));
});
