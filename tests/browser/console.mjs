// Drives the console in headless Chromium for tests/console.rs. Talks to
// the Rust side over stdin/stdout: it prints `ISSUED <secret>`, `ROTATED
// <secret>` and `REVOKED <id>` and waits for the answer (the Rust side
// checks those over gRPC), `STEP <name>` as it goes, `DONE` at the end.
// Any failure exits non-zero with the reason on stderr.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";
import path from "node:path";

const base = process.env.KEYWARD_URL;
const adminKey = process.env.ADMIN_KEY;
const projectAdminKey = process.env.PROJECT_ADMIN_KEY;
const otherKeyId = process.env.OTHER_KEY_ID;
const shots = process.env.SCREENSHOTS;
const secrets = [adminKey, projectAdminKey];
const visited = [];
// Script errors and console errors (CSP refusals) in any page.
const pageErrors = [];

const reader = createInterface({ input: process.stdin });
const answers = reader[Symbol.asyncIterator]();
async function ask(line) {
  console.log(line);
  const { value, done } = await answers.next();
  if (done) throw new Error(`no answer to ${line.split(" ")[0]}`);
  return value;
}
const step = (name) => console.log(`STEP ${name}`);
function check(ok, what) {
  if (!ok) throw new Error(what);
}
async function until(what, fn, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
const shot = (page, name, options = {}) =>
  page.screenshot({ path: path.join(shots, name), fullPage: true, ...options });

/// No secret in any cookie, storage entry or URL seen so far.
async function noSecretsLeft(context, page) {
  const cookies = await context.cookies();
  const storage = await page.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }]));
  for (const secret of secrets) {
    for (const c of cookies) check(!c.value.includes(secret) && !c.name.includes(secret), `secret in cookie ${c.name}`);
    check(!storage.includes(secret), "secret in web storage");
    for (const url of visited) check(!url.includes(secret), `secret in URL ${url}`);
  }
  const session = cookies.find((c) => c.name === "keyward_session");
  if (session) {
    check(session.httpOnly && session.sameSite === "Strict" && session.path === "/ui", `session cookie flags: ${JSON.stringify(session)}`);
  }
}

function watch(page) {
  page.on("framenavigated", (frame) => visited.push(frame.url()));
  page.on("request", (request) => visited.push(request.url()));
  page.on("dialog", (dialog) => dialog.accept());
  page.on("pageerror", (error) => pageErrors.push(`${page.url()}: ${error.message}`));
  // A CSP refusal (an inline style or script of ours) is a console error.
  page.on("console", (message) => {
    // (Refused pages, 403 and 404, are expected: the test asks for them.)
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      pageErrors.push(`${page.url()}: ${message.text()}`);
    }
  });
}

async function signIn(page, key) {
  await page.goto(`${base}/ui/`);
  await page.getByLabel("Admin key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${base}/ui/projects`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  watch(page);

  await page.goto(`${base}/ui/`);
  await shot(page, "sign-in.png");
  await signIn(page, adminKey);
  // Keyboard: the skip link first, then the navigation, by Tab.
  await page.keyboard.press("Tab");
  check((await page.evaluate(() => document.activeElement.textContent)) === "Skip to content", "skip link first");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  check((await page.evaluate(() => document.activeElement.textContent)) === "Projects", "then the navigation");
  check((await page.content()).includes(">shop</a>"), "shop listed");
  await noSecretsLeft(context, page);
  step("signed in");

  // A POST without the CSRF token, with the session cookie: refused.
  const forged = await context.request.post(`${base}/ui/issue`, {
    form: { project: "shop", label: "forged" },
    maxRedirects: 0,
  });
  check(forged.status() === 403, `forged POST answered ${forged.status()}`);
  step("csrf refused");

  await page.goto(`${base}/ui/project?name=shop`);
  check((await page.locator("ul.unusual").textContent()).includes("mobile-app"), "mobile-app flagged as unusual");
  await shot(page, "overview.png");
  step("overview");

  await page.getByRole("link", { name: "Issue a key" }).first().click();
  await page.getByLabel("Label").fill("checkout-web");
  await page.getByLabel(/^Scopes/).fill("orders:read orders:write");
  await page.getByLabel("Calls", { exact: true }).fill("50");
  await page.getByLabel(/^Per/).fill("1s");
  await page.getByLabel(/^Metadata/).fill("team=payments\nticket=OPS-42");
  await page.getByRole("button", { name: "Issue key" }).click();
  await page.waitForURL(`${base}/ui/issue`);
  const secret = await page.locator("#secret").inputValue();
  check(secret.length > 20, "a secret is shown");
  secrets.push(secret);
  await page.getByRole("button", { name: "Copy" }).click();
  await until("copy feedback", async () => (await page.locator("#copied").textContent()) !== "");
  // The secret is masked in the screenshot, and the key is revoked at the end.
  await shot(page, "issued.png", { mask: [page.locator("#secret")] });
  const keyId = (await ask(`ISSUED ${secret}`)).split(" ")[1];
  step("issued and verified");

  await page.getByRole("link", { name: /Go to the key/ }).click();
  check(!(await page.content()).includes(secret), "the secret is shown once only");
  // The Rust side made one Verify call; it shows after the next usage flush.
  await until("the call in the per-minute chart", async () => {
    await page.reload();
    const caption = await page.locator("figure.chart figcaption").first().textContent();
    return caption.includes("1 allowed");
  });
  await shot(page, "key.png");
  step("call charted");

  await page.getByLabel("Grace period").fill("1h");
  await page.getByRole("button", { name: "Rotate" }).click();
  await page.waitForURL(`${base}/ui/rotate`);
  const rotated = await page.locator("#secret").inputValue();
  check(rotated !== secret, "a new secret");
  secrets.push(rotated);
  const newId = (await ask(`ROTATED ${rotated}`)).split(" ")[1];
  check(newId !== keyId, "a new key id");
  step("rotated");

  await page.getByRole("link", { name: /Go to the key/ }).click();
  await page.getByRole("link", { name: "Revoke…" }).click();
  await page.getByLabel(/^Reason/).fill("replaced in the browser test");
  await page.getByLabel("I want to revoke this key").check();
  await page.getByRole("button", { name: "Revoke key" }).click();
  await page.getByText("The key is revoked.").waitFor();
  check((await ask(`REVOKED ${newId}`)) === "DENIED", "revoked key denied");
  step("revoked");

  await page.getByRole("link", { name: "Audit log" }).first().click();
  await page.getByLabel("Project").fill("shop");
  await page.getByRole("button", { name: "Filter" }).click();
  const audit = await page.locator("table.audit").textContent();
  for (const action of ["issue", "rotate", "revoke"]) check(audit.includes(action), `audit shows ${action}`);
  await shot(page, "audit.png");
  await page.getByLabel("Action").selectOption("rotate");
  await page.getByRole("button", { name: "Filter" }).click();
  check((await page.locator("table.audit tbody tr").count()) === 1, "one rotate event");
  step("audit");

  // Narrow window and 200% zoom (a 1280 px window at 200% is 640 CSS px):
  // nothing wider than the window.
  for (const width of [390, 640]) {
    await page.setViewportSize({ width, height: 844 });
    for (const where of ["/ui/keys?project=shop", `/ui/key?id=${keyId}`, "/ui/project?name=shop", "/ui/audit"]) {
      await page.goto(base + where);
      const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      check(wide <= 1, `${where} is ${wide}px wider than a ${width}px window`);
    }
  }
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/ui/keys?project=shop`);
  await shot(page, "keys-narrow.png");
  await page.goto(`${base}/ui/key?id=${keyId}`);
  await shot(page, "key-narrow.png");
  await page.setViewportSize({ width: 1280, height: 860 });
  await page.goto(`${base}/ui/keys?project=shop`);
  await shot(page, "keys.png");
  step("narrow");

  await noSecretsLeft(context, page);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(`${base}/ui/`);
  await page.goto(`${base}/ui/projects`);
  check(page.url() === `${base}/ui/`, `after sign-out /ui/projects went to ${page.url()}`);
  step("signed out");

  const other = await browser.newContext();
  const admin2 = await other.newPage();
  watch(admin2);
  await signIn(admin2, projectAdminKey);
  const list = await admin2.content();
  check(list.includes(">shop</a>") && !list.includes("billing"), "the project admin sees shop only");
  const refused = await admin2.goto(`${base}/ui/keys?project=billing`);
  check(refused.status() === 403, `billing keys answered ${refused.status()}`);
  check(!(await admin2.content()).includes(otherKeyId), "no billing key shown");
  const key = await admin2.goto(`${base}/ui/key?id=${otherKeyId}`);
  check([403, 404].includes(key.status()), `billing key answered ${key.status()}`);
  await noSecretsLeft(other, admin2);
  step("project admin isolated");
  check(pageErrors.length === 0, `script errors: ${pageErrors.join("; ")}`);
  console.log("DONE");
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await browser.close();
  // stdin would keep node alive; the Rust side reads our exit status.
  reader.close();
  process.exit(process.exitCode ?? 0);
}
