// Headless Chromium for the live tests: playwright-core (tests/live/browser/package.json)
// launches the system chromium given on the command line; no Playwright-downloaded browser.
// Usage: node drive.cjs <chromium executable>
// Reads one JSON command per stdin line; prints one JSON line per thing that happens:
//   {"type":"ready","version"}                       the browser is up
//   {"cmd":"open","page","url","files","permissions"} -> {"type":"opened","page"}
//       a new browser context (its own cookies and storage; `permissions` granted, e.g.
//       "local-network-access") with one page at `url`; every request whose URL is a key of
//       `files` is answered with that file (Playwright's page routing: the page may claim any
//       origin, e.g. the daphne under test).
//       The page calls window.report(object) to print {...object, "page"}; its console
//       messages and uncaught errors print as {"type":"console"|"pageerror","page",...}.
//   {"cmd":"call","page","n","fn","args"}           -> {"type":"result","page","n","value"}
//       awaits window[fn](...args) in the page; a throw prints {"type":"result",...,"error"}.
//   {"cmd":"act","page","n","action","selector","text","path"} -> {"type":"result","page","n","value"}
//       what a user does, through Playwright's input (real key and mouse events):
//       "click" selector; "fill" selector with text; "type" text with the keyboard (into the
//       focused element); "press" the key named text (e.g. "Enter", "Control+End");
//       "text" -> the innerText of selector; "evaluate" the expression text -> its (JSON)
//       value; "screenshot" the page to path.
//   {"cmd":"close","page"}                          -> {"type":"closed","page"}
// Closing stdin closes the browser and ends the script.
"use strict";
const readline = require("node:readline");
const { chromium } = require("playwright-core");

const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const contexts = new Map(); // page name -> { context, page }

async function open({ page: name, url, files, permissions }) {
  const context = await browser.newContext({ permissions: permissions || [] });
  const page = await context.newPage();
  contexts.set(name, { context, page });
  await context.route(
    (address) => Object.hasOwn(files, address.href),
    (route) => route.fulfill({ path: files[route.request().url()] }),
  );
  await context.exposeFunction("report", (line) => say({ ...line, page: name }));
  page.on("console", (message) =>
    say({ type: "console", page: name, level: message.type(), text: message.text() }),
  );
  page.on("pageerror", (error) => say({ type: "pageerror", page: name, message: error.message }));
  await page.goto(url);
  say({ type: "opened", page: name });
}

async function call({ page: name, n, fn, args }) {
  const { page } = contexts.get(name);
  try {
    const value = await page.evaluate(([f, a]) => window[f](...a), [fn, args]);
    say({ type: "result", page: name, n, value: value === undefined ? null : value });
  } catch (error) {
    say({ type: "result", page: name, n, error: error.message });
  }
}

const actions = {
  click: (page, { selector }) => page.click(selector),
  fill: (page, { selector, text }) => page.fill(selector, text),
  type: (page, { text }) => page.keyboard.type(text),
  press: (page, { text }) => page.keyboard.press(text),
  text: (page, { selector }) => page.innerText(selector),
  evaluate: (page, { text }) => page.evaluate(text),
  screenshot: (page, { path }) => page.screenshot({ path }).then(() => path),
};

async function act({ page: name, n, action, ...args }) {
  const { page } = contexts.get(name);
  try {
    const value = await actions[action](page, args);
    say({ type: "result", page: name, n, value: value === undefined ? null : value });
  } catch (error) {
    say({ type: "result", page: name, n, error: error.message });
  }
}

async function close({ page: name }) {
  const entry = contexts.get(name);
  contexts.delete(name);
  if (entry) await entry.context.close();
  say({ type: "closed", page: name });
}

const commands = { open, call, act, close };
let browser;

async function main() {
  browser = await chromium.launch({ executablePath: process.argv[2], headless: true });
  say({ type: "ready", version: browser.version() });
  const lines = readline.createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    const command = JSON.parse(line);
    commands[command.cmd](command).catch((error) =>
      say({ type: "failed", page: command.page, cmd: command.cmd, message: error.message }),
    );
  });
  lines.on("close", async () => {
    await browser.close();
    process.exit(0);
  });
}

main().catch((error) => {
  say({ type: "failed", cmd: "launch", message: error.message });
  process.exit(1);
});
