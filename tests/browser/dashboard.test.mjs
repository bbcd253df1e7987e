// Browser tests of the /ui dashboard: the real `anycloud demo` (gateway, emulated
// clouds, its trickle of traffic) driven through Debian's Chromium with playwright-core.
// Screenshots of every page and panel go to test-artifacts/screenshots/.
//
//   ANYCLOUD_BIN   the binary (default: ../../target/debug/anycloud)
//   CHROMIUM       the browser (default: /usr/bin/chromium)
//   ANYCLOUD_UI_WARMUP_SECS  let the demo's trickle run this long before the full-page
//                  dashboard screenshot (default 0; README's docs/dashboard.png used 150)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const BIN = process.env.ANYCLOUD_BIN || path.join(root, "target/debug/anycloud");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOTS = path.join(process.env.TEST_LOG_DIR || path.join(root, "test-artifacts"), "screenshots");
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run"];

let demo, demoOut = "", base, key, adminToken, azureEmulator, browser, context, page;

/** Starts `anycloud demo --port 0` and reads its URL, key, admin token and Azure emulator. */
function startDemo() {
  return new Promise((resolve, reject) => {
    demo = spawn(BIN, ["demo", "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
    const timer = setTimeout(() => reject(new Error("demo did not start in 60 s:\n" + demoOut)), 60_000);
    demo.on("error", reject);
    demo.on("exit", (code) => reject(new Error(`demo exited early (${code}):\n${demoOut}`)));
    demo.stderr.on("data", () => {});
    demo.stdout.on("data", (chunk) => {
      demoOut += chunk;
      const url = demoOut.match(/anycloud demo is running at (http:\/\/\S+)/);
      const k = demoOut.match(/demo key: (\S+)/);
      const t = demoOut.match(/admin token: (\S+)/);
      const az = demoOut.match(/azure-us \(Azure OpenAI\) (http:\/\/\S+?),/);
      if (url && k && t && az && demoOut.includes("Ctrl-C to stop")) {
        clearTimeout(timer);
        demo.removeAllListeners("exit");
        [base, key, adminToken, azureEmulator] = [url[1], k[1], t[1], az[1]];
        resolve();
      }
    });
  });
}

/** One chat completion through the gateway as the demo tenant; returns the routing headers. */
async function chat(model = "gpt-4o") {
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "browser test" }] }),
  });
  await res.text();
  return { status: res.status, cloud: res.headers.get("x-anycloud-cloud"), route: res.headers.get("x-anycloud-route") };
}

async function shot(name, target = page) {
  await target.screenshot({ path: path.join(SHOTS, `${name}.png`), ...(target === page ? { fullPage: true } : {}) });
}

async function login() {
  await page.goto(`${base}/ui/login`);
  await page.fill("#token", adminToken);
  await Promise.all([page.waitForURL(`${base}/ui`), page.click("button[type=submit]")]);
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  await startDemo();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
  context = await browser.newContext({ viewport: { width: 1366, height: 768 }, acceptDownloads: true });
  page = await context.newPage();
});

after(async () => {
  await browser?.close();
  if (demo && demo.exitCode === null) {
    const exited = new Promise((r) => demo.once("exit", r));
    demo.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (demo.exitCode === null) demo.kill("SIGKILL");
  }
});

test("without a session every page goes to the login form; a wrong token is refused", async () => {
  for (const p of ["/ui", "/ui/audit", "/ui/ledger", "/ui/risk", "/ui/panel/traffic"]) {
    await page.goto(base + p);
    assert.equal(new URL(page.url()).pathname, "/ui/login", `${p} redirects to login`);
  }
  await page.fill("#token", "not-the-admin-token");
  await page.click("button[type=submit]");
  await page.waitForSelector(".error[role=alert]");
  assert.match(await page.textContent(".error"), /not the admin token/);
  assert.equal(new URL(page.url()).pathname, "/ui/login");
  await shot("login-wrong-token");
});

test("login sets an HttpOnly, SameSite=Strict session cookie that is not the token", async () => {
  await login();
  const cookies = await context.cookies(`${base}/ui`);
  const session = cookies.find((c) => c.name === "anycloud_ui");
  assert.ok(session, "session cookie set");
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, "Strict");
  assert.ok(!session.value.includes(adminToken) && session.value.length === 64);
  assert.ok(!(await page.content()).includes(adminToken), "the token is not in the page");
});

test("every panel is populated after traffic", async () => {
  // A failure on the primary, so the errors chart and the route ring have one for sure
  // (the demo's own trickle injects some too, but at random).
  await fetch(`${azureEmulator}/_emulator/faults`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ fail_next: { count: 1, status: 503 } }),
  });
  const failover = await chat();
  assert.equal(failover.status, 200);
  assert.match(failover.route, /azure-us:failed\(upstream_503\)/);
  for (let i = 0; i < 5; i++) await chat();
  await page.reload();
  // The page script refreshes panels every 5 s; wait until each shows data.
  const populated = {
    traffic: "#panel-traffic svg :is(path, circle)",
    errors: "#panel-errors svg :is(path, circle)",
    latency: "#panel-latency svg :is(path, circle)",
    clouds: "#panel-clouds tr[data-cloud='azure-us'] button",
    scorecard: "#panel-scorecard table.scorecard td",
    decisions: "#panel-decisions td.route",
    spend: "#panel-spend .meter",
  };
  for (const [name, sel] of Object.entries(populated)) {
    await page.waitForSelector(sel, { timeout: 20_000, state: "attached" });
    await shot(`panel-${name}`, page.locator(`#panel-${name}`));
  }
  // The charts plot real values: traffic, the injected failure, latencies.
  for (const name of ["traffic", "errors", "latency"]) {
    const max = Number(await page.getAttribute(`#panel-${name} svg.chart`, "data-max"));
    assert.ok(max > 0, `${name} chart has data (max ${max})`);
  }
  const routes = await page.locator("#panel-decisions td.route").allTextContents();
  assert.ok(routes.some((r) => /:ok/.test(r)), "route decisions listed");
  const scorecard = await page.textContent("#panel-scorecard");
  for (const needle of ["azure-us", "local-openai", "gpt-4o: 2.50 / 10.00", "latency p99", "us · eastus"]) {
    assert.ok(scorecard.includes(needle), `scorecard shows ${needle}`);
  }
  const spend = await page.textContent("#panel-spend");
  for (const needle of ["payments", "research", "per month", "per day", "azure-us"]) {
    assert.ok(spend.includes(needle), `spend panel shows ${needle}`);
  }
  // Panels refresh on their own: the stamp in the header changes.
  await page.waitForFunction(() => /updated/.test(document.getElementById("updated").textContent));
  const warmup = Number(process.env.ANYCLOUD_UI_WARMUP_SECS || 0);
  if (warmup > 0) {
    await new Promise((r) => setTimeout(r, warmup * 1000));
    await page.reload();
  }
  await shot("dashboard");
});

test("draining a cloud in the UI moves traffic; restoring brings it back", async () => {
  const row = "#panel-clouds tr[data-cloud='azure-us']";
  await Promise.all([page.waitForURL(/\/ui/), page.click(`${row} button:has-text("Drain")`)]);
  await page.waitForSelector(`${row} .badge.bad:has-text("drained")`);
  const moved = await chat();
  assert.equal(moved.status, 200);
  assert.notEqual(moved.cloud, "azure-us", "gpt-4o left the drained cloud");
  assert.match(moved.route, /azure-us:declined\(drained\)/);
  // The decisions panel shows the decline within a refresh.
  await page.waitForSelector("#panel-decisions td.route:has-text('azure-us:declined(drained)')", { timeout: 15_000 });
  await shot("drained");
  await Promise.all([page.waitForURL(/\/ui/), page.click(`${row} button:has-text("Restore")`)]);
  await page.waitForSelector(`${row} .badge:has-text("serving")`);
  const back = await chat();
  assert.equal(back.status, 200);
  assert.doesNotMatch(back.route, /declined\(drained\)/);
});

test("a drain without the session's CSRF token is refused", async () => {
  const res = await page.request.post(`${base}/ui/clouds/azure-us/drain`, {
    form: { csrf: "forged" }, maxRedirects: 0,
  });
  assert.equal(res.status(), 403);
  const admin = await fetch(`${base}/admin/v1/clouds`, { headers: { authorization: `Bearer ${adminToken}` } });
  const clouds = (await admin.json()).data;
  assert.equal(clouds.find((c) => c.name === "azure-us").drained, false);
});

test("the audit viewer shows the drain and restore and an intact chain", async () => {
  await page.click("nav a:has-text('Audit trail')");
  await page.waitForSelector("#chain-status");
  assert.match(await page.textContent("#chain-status"), /intact/);
  await page.fill("input[name=action]", "admin.cloud.drain");
  await Promise.all([page.waitForURL(/action=admin.cloud.drain/), page.click("button:has-text('Filter')")]);
  const rows = await page.locator("#audit-table tbody tr").allTextContents();
  assert.equal(rows.length, 1, "exactly one drain (the forged one was refused)");
  assert.match(rows[0], /admin\.cloud\.drain/);
  assert.match(rows[0], /"drained":true/);
  await shot("audit-drain");
  await page.goto(`${base}/ui/audit`);
  const all = await page.textContent("#audit-table");
  assert.match(all, /admin\.cloud\.restore/);
  assert.match(all, /ai\.chat_completions/);
  await shot("audit");
});

test("the ledger report renders and downloads as CSV", async () => {
  await page.click("nav a:has-text('Ledger report')");
  await page.waitForSelector("#ledger table");
  assert.match(await page.textContent("#ledger"), /Per cloud[\s\S]*azure-us[\s\S]*total/);
  await shot("ledger");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#csv-download")]);
  const file = path.join(SHOTS, "..", download.suggestedFilename());
  await download.saveAs(file);
  const csv = readFileSync(file, "utf8");
  assert.match(download.suggestedFilename(), /^anycloud-ledger-\d{4}-\d{2}-\d{2}-to-\d{4}-\d{2}-\d{2}\.csv$/);
  assert.match(csv.split("\n")[0], /,/);
  assert.match(csv, /azure-us/);
  assert.match(csv, /local-openai/);
});

test("the Risk page shows concentration, single points of failure and the outage drill", async () => {
  await page.click("nav a:has-text('Risk')");
  await page.waitForSelector("#risk #outage");
  const text = await page.textContent("#risk");
  // The demo's traffic ran through azure-us (Azure) and local-openai (other), both `us`.
  assert.match(text, /Per cloud — HHI \d+ (unconcentrated|moderate|high)/);
  assert.match(text, /Per provider[\s\S]*Azure/);
  assert.match(text, /Per jurisdiction[\s\S]*us/);
  const outage = await page.$$eval("#outage tbody tr td:first-child", (tds) => tds.map((t) => t.textContent));
  assert.ok(outage.includes("azure-us") && outage.includes("local-openai"), outage.join(","));
  assert.equal(await page.getAttribute("nav a:has-text('Risk')", "aria-current"), "page");
  await shot("risk");
});

test("logout ends the session", async () => {
  await page.goto(`${base}/ui`);
  await Promise.all([page.waitForURL(/\/ui\/login/), page.click("header button:has-text('Log out')")]);
  await page.goto(`${base}/ui`);
  assert.equal(new URL(page.url()).pathname, "/ui/login");
});
