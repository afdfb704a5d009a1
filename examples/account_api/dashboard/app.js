// The dashboard: sign in, the API page (keys: create, regenerate, revoke) and two-factor
// sign-in, all through the JSON API under /v1, nothing else.
//
// The login token lives only in the `token` variable of this module: never in web
// storage, a cookie or a URL. Reloading or leaving the page forgets
// it (and revokes it); any 401 from the API brings the page back to sign-in.

const $ = (id) => document.getElementById(id);

/** The login token, its key id (the part before `|`), and the user. */
let token = null;
let tokenId = null;
let user = null;
/** A login token waiting for its second factor. */
let pending = null;
/** The id of the key whose secret the key box shows. */
let shownKeyId = null;

const NETWORK_ERROR =
  "The server could not be reached. Check your connection and try again.";
const SIGNED_OUT = "Your sign-in has ended. Please sign in again.";

class ApiError extends Error {
  constructor(message, status, fields = {}, handled = false) {
    super(message);
    this.status = status;
    this.fields = fields;
    this.handled = handled;
  }
}

/** An error of the API as a plain sentence. */
function describe(response, data) {
  const status = response.status;
  if (status === 429) {
    const wait = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    if (Number.isFinite(wait) && wait > 0) {
      return `Too many attempts. Please wait ${wait} second${wait === 1 ? "" : "s"} and try again.`;
    }
    return "Too many attempts. Please wait a minute and try again.";
  }
  if (status >= 500) {
    return "The service is unavailable right now. Please try again in a moment.";
  }
  if (status === 422 && data && typeof data.errors === "object" && data.errors !== null) {
    const messages = [];
    for (const list of Object.values(data.errors)) {
      for (const message of Array.isArray(list) ? list : []) {
        if (typeof message === "string" && !messages.includes(message)) messages.push(message);
      }
    }
    if (messages.length > 0) return messages.join(" ");
  }
  if (status === 404) return "That no longer exists. The list has been refreshed.";
  if (data && typeof data.message === "string" && data.message !== "") return data.message;
  return `Something went wrong (HTTP ${status}). Please try again.`;
}

/**
 * Calls the API: `body`, if any, as JSON; the login token (or `auth`) as the Bearer
 * token. Resolves to the JSON answer (null when empty); rejects with an ApiError whose
 * message is a sentence for the user.
 */
async function api(method, path, body, auth = token) {
  const headers = { Accept: "application/json" };
  if (auth) headers.Authorization = `Bearer ${auth}`;
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  let text;
  try {
    response = await fetch(path, init);
    text = await response.text();
  } catch {
    throw new ApiError(NETWORK_ERROR, 0);
  }
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (response.ok) return data;
  if (response.status === 401 && auth) {
    signOutHere(SIGNED_OUT);
    throw new ApiError(SIGNED_OUT, 401, {}, true);
  }
  const fields = data && typeof data.errors === "object" && data.errors !== null ? data.errors : {};
  throw new ApiError(describe(response, data), response.status, fields);
}

/** Shows `error` (an ApiError or another failure) in the paragraph `id`. */
function showError(id, error) {
  if (error instanceof ApiError && error.handled) return;
  const element = $(id);
  element.textContent =
    error instanceof ApiError ? error.message : "Something went wrong. Please try again.";
  element.hidden = false;
}

function clearError(id) {
  const element = $(id);
  element.textContent = "";
  element.hidden = true;
}

/** Marks the form's fields that the API refused. */
function markFields(form, error) {
  for (const input of form.querySelectorAll("input")) {
    const refused =
      error instanceof ApiError &&
      Object.keys(error.fields).some((field) => field === input.name || field.startsWith(`${input.name}.`));
    if (refused) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

/** Runs `work` for a form: its buttons disabled meanwhile, its error shown. */
async function submitting(form, errorId, work) {
  clearError(errorId);
  markFields(form, null);
  const buttons = form.querySelectorAll("button");
  for (const button of buttons) button.disabled = true;
  try {
    await work();
  } catch (error) {
    showError(errorId, error);
    if (form.isConnected) markFields(form, error);
  } finally {
    for (const button of buttons) button.disabled = false;
  }
}

// ---- Views ----

const VIEWS = { "sign-in": "Sign in", code: "Two-factor sign-in", api: "API" };

function showView(name) {
  for (const view of Object.keys(VIEWS)) $(`view-${view}`).hidden = view !== name;
  $("account").hidden = name !== "api";
  document.title = `${VIEWS[name]} · API keys`;
}

function notice(message) {
  const element = $("notice");
  element.textContent = message || "";
  element.hidden = !message;
}

/** Forgets the sign-in and everything shown once, and shows the sign-in form. */
function signOutHere(message) {
  token = null;
  tokenId = null;
  user = null;
  pending = null;
  hideKey();
  hideRecoveryCodes();
  hideTwoFactorSetup();
  $("keys-body").replaceChildren();
  for (const form of document.querySelectorAll("form")) form.reset();
  for (const id of ["sign-in-error", "register-error", "code-error", "create-error", "keys-error", "tfa-error"]) {
    clearError(id);
  }
  $("account-email").textContent = "";
  if ($("confirm").open) $("confirm").close("cancel");
  showView("sign-in");
  notice(message);
  $("sign-in-email").focus();
}

async function signedIn(newToken) {
  token = newToken;
  tokenId = Number.parseInt(newToken.split("|")[0], 10);
  pending = null;
  notice("");
  try {
    user = await api("GET", "/v1/auth/user");
  } catch (error) {
    token = null;
    tokenId = null;
    throw error;
  }
  $("account-email").textContent = user.email;
  renderTwoFactor();
  showView("api");
  $("create-name").focus();
  await loadKeys();
}

// ---- Sign in, register, the code step ----

$("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  submitting(form, "sign-in-error", async () => {
    const answer = await api(
      "POST",
      "/v1/auth/login",
      { email: form.email.value, password: form.password.value },
      null,
    );
    form.password.value = "";
    if (answer.requires_2fa) {
      pending = answer.token;
      showCodeStep();
    } else {
      await signedIn(answer.token);
    }
  });
});

$("register-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  submitting(form, "register-error", async () => {
    const answer = await api(
      "POST",
      "/v1/auth/register",
      { name: form.name.value, email: form.email.value, password: form.password.value },
      null,
    );
    form.reset();
    await signedIn(answer.token);
  });
});

let useRecoveryCode = false;

function showCodeStep() {
  useRecoveryCode = false;
  $("code-form").reset();
  clearError("code-error");
  switchCodeField();
  notice("");
  showView("code");
  $("code-input").focus();
}

function switchCodeField() {
  $("code-totp").hidden = useRecoveryCode;
  $("code-recovery").hidden = !useRecoveryCode;
  $("code-switch").textContent = useRecoveryCode
    ? "Use a code from the app instead"
    : "Use a recovery code instead";
}

$("code-switch").addEventListener("click", () => {
  useRecoveryCode = !useRecoveryCode;
  switchCodeField();
  $(useRecoveryCode ? "recovery-input" : "code-input").focus();
});

$("code-cancel").addEventListener("click", () => signOutHere(""));

$("code-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  submitting(form, "code-error", async () => {
    const body = useRecoveryCode
      ? { recovery_code: form.recovery_code.value.trim() }
      : { code: form.code.value.trim() };
    await api("POST", "/v1/auth/two-factor-challenge", body, pending);
    await signedIn(pending);
  });
});

$("sign-out").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  try {
    await api("POST", "/v1/auth/logout");
    signOutHere("You have signed out.");
  } catch (error) {
    if (!(error instanceof ApiError && error.handled)) {
      notice(`Signing out failed: ${error instanceof ApiError ? error.message : "please try again."}`);
    }
  } finally {
    button.disabled = false;
  }
});

// Leaving or reloading the page forgets the sign-in: revoke its token on the way out,
// and wipe what was shown once (in case the page is kept in the back/forward cache).
window.addEventListener("pagehide", () => {
  if (token) {
    fetch("/v1/auth/logout", {
      method: "POST",
      headers: { Accept: "application/json", Authorization: `Bearer ${token}` },
      keepalive: true,
      credentials: "omit",
    }).catch(() => {});
  }
  signOutHere("");
});

// ---- The API page: keys ----

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function when(iso, otherwise) {
  if (!iso) return document.createTextNode(otherwise);
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return document.createTextNode(iso);
  const time = document.createElement("time");
  time.dateTime = iso;
  time.textContent = dateFormat.format(date);
  return time;
}

function cell(label, className, ...content) {
  const td = document.createElement("td");
  td.dataset.label = label;
  if (className) td.className = className;
  const inner = document.createElement("span");
  inner.append(...content);
  td.append(inner);
  return td;
}

function button(text, label, className, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = text;
  element.className = className;
  element.setAttribute("aria-label", label);
  element.addEventListener("click", onClick);
  return element;
}

function keyRow(key) {
  const tr = document.createElement("tr");
  tr.dataset.keyId = String(key.id);
  const name = [key.name];
  const mine = key.id === tokenId;
  if (mine) {
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = "this sign-in";
    name.push(tag);
  }
  const abilities = key.abilities.includes("*") ? "all" : key.abilities.join(", ");
  let actions;
  if (mine) {
    actions = document.createTextNode("Sign out to end it");
  } else {
    actions = document.createElement("span");
    actions.className = "buttons";
    actions.append(
      button("Regenerate", `Regenerate ${key.name}`, "secondary small", () => regenerate(key)),
      button("Revoke", `Revoke ${key.name}`, "danger secondary small", () => revoke(key)),
    );
  }
  tr.append(
    cell("Name", "name", ...name),
    cell("Abilities", "abilities", abilities),
    cell("Created", "", when(key.created_at, "")),
    cell("Last used", "", when(key.last_used_at, "never")),
    cell("Expires", "", when(key.expires_at, "never")),
    cell("Actions", "actions", actions),
  );
  return tr;
}

async function loadKeys() {
  try {
    const keys = await api("GET", "/v1/profile/api-keys");
    clearError("keys-error");
    $("keys-body").replaceChildren(...keys.map(keyRow));
    $("keys-empty").hidden = keys.length > 0;
  } catch (error) {
    showError("keys-error", error);
  }
}

function showKey(title, key) {
  shownKeyId = key.id;
  $("key-box-title").textContent = title;
  const secret = $("new-key");
  secret.value = key.plain_text_token;
  $("copy-status").textContent = "";
  $("key-box-empty").classList.add("gone");
  $("key-box-full").classList.remove("gone");
  $("key-box").classList.add("full");
  secret.focus();
  secret.select();
}

function hideKey() {
  shownKeyId = null;
  $("new-key").value = "";
  $("key-box-title").textContent = "";
  $("copy-status").textContent = "";
  $("key-box-full").classList.add("gone");
  $("key-box-empty").classList.remove("gone");
  $("key-box").classList.remove("full");
}

async function copy(text, fallbackField, statusId) {
  const status = $(statusId);
  try {
    await navigator.clipboard.writeText(text);
    status.textContent = "Copied to the clipboard.";
    return;
  } catch {
    // No clipboard API here (an insecure origin, or permission refused): try the old way.
  }
  if (fallbackField) {
    fallbackField.focus();
    fallbackField.select();
    if (document.execCommand && document.execCommand("copy")) {
      status.textContent = "Copied to the clipboard.";
      return;
    }
  }
  status.textContent = "Copying failed: select the text and copy it with Ctrl+C (⌘C on a Mac).";
}

$("copy-key").addEventListener("click", () => copy($("new-key").value, $("new-key"), "copy-status"));

/** The end of the chosen day, local time, as RFC 3339. */
function endOfDay(value) {
  const [year, month, day] = value.split("-").map((part) => Number.parseInt(part, 10));
  return new Date(year, month - 1, day, 23, 59, 59).toISOString();
}

$("create-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  submitting(form, "create-error", async () => {
    const body = { name: form.name.value };
    const abilities = form.abilities.value
      .split(",")
      .map((ability) => ability.trim())
      .filter((ability) => ability !== "");
    if (abilities.length > 0) body.abilities = abilities;
    if (form.expires_at.value) body.expires_at = endOfDay(form.expires_at.value);
    const key = await api("POST", "/v1/profile/api-keys", body);
    form.reset();
    showKey(`Your new key “${key.name}”`, key);
    await loadKeys();
  });
});

/** Asks in a modal dialog; resolves to whether the user confirmed. */
function confirmAction(title, text, ok) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = ok;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

async function regenerate(key) {
  const yes = await confirmAction(
    `Regenerate “${key.name}”?`,
    "Its current secret stops working at once. The new one is shown once.",
    "Regenerate",
  );
  if (!yes) return;
  clearError("keys-error");
  try {
    const renewed = await api("POST", `/v1/profile/api-keys/${key.id}/regenerate`);
    showKey(`The new secret of “${renewed.name}”`, renewed);
  } catch (error) {
    showError("keys-error", error);
  }
  await loadKeys();
}

async function revoke(key) {
  const yes = await confirmAction(
    `Revoke “${key.name}”?`,
    "It stops working at once, for good.",
    "Revoke",
  );
  if (!yes) return;
  clearError("keys-error");
  try {
    await api("DELETE", `/v1/profile/api-keys/${key.id}`);
    document.querySelector(`#keys-body tr[data-key-id="${key.id}"]`)?.remove();
    if (shownKeyId === key.id) hideKey();
    $("keys-title").focus();
  } catch (error) {
    showError("keys-error", error);
  }
  await loadKeys();
}

// ---- Two-factor ----

function renderTwoFactor() {
  const on = Boolean(user && user.two_factor_enabled);
  $("tfa-state").textContent = on
    ? "Two-factor sign-in is on: signing in asks for a code from your authenticator app."
    : "Two-factor sign-in is off.";
  $("tfa-off").hidden = on || !$("tfa-setup").hidden;
  $("tfa-disable-form").hidden = !on;
}

function hideTwoFactorSetup() {
  $("tfa-setup").hidden = true;
  $("tfa-qr").removeAttribute("src");
  $("tfa-secret").textContent = "";
}

function hideRecoveryCodes() {
  $("tfa-codes").hidden = true;
  $("tfa-codes-list").replaceChildren();
  $("tfa-codes-status").textContent = "";
}

$("tfa-enable").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  clearError("tfa-error");
  try {
    const enabled = await api("POST", "/v1/auth/two-factor/enable");
    const qr = await api("GET", "/v1/auth/two-factor/qr-code");
    $("tfa-qr").src = `data:image/svg+xml;base64,${btoa(qr.svg)}`;
    $("tfa-secret").textContent = enabled.secret;
    hideRecoveryCodes();
    $("tfa-setup").hidden = false;
    renderTwoFactor();
    $("tfa-code").focus();
  } catch (error) {
    showError("tfa-error", error);
    if (error instanceof ApiError && error.status === 409 && token) {
      user = await api("GET", "/v1/auth/user").catch(() => user);
      renderTwoFactor();
    }
  } finally {
    button.disabled = false;
  }
});

$("tfa-confirm-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  submitting(form, "tfa-error", async () => {
    const answer = await api("POST", "/v1/auth/two-factor/confirm", { code: form.code.value.trim() });
    form.reset();
    hideTwoFactorSetup();
    user.two_factor_enabled = true;
    const list = $("tfa-codes-list");
    list.replaceChildren(
      ...answer.recovery_codes.map((code) => {
        const item = document.createElement("li");
        item.textContent = code;
        return item;
      }),
    );
    $("tfa-codes").hidden = false;
    renderTwoFactor();
    $("tfa-codes-copy").focus();
  });
});

$("tfa-codes-copy").addEventListener("click", () => {
  const codes = [...$("tfa-codes-list").children].map((item) => item.textContent);
  copy(codes.join("\n"), null, "tfa-codes-status");
});

$("tfa-disable-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  submitting(form, "tfa-error", async () => {
    await api("DELETE", "/v1/auth/two-factor", { password: form.password.value });
    form.reset();
    user.two_factor_enabled = false;
    hideRecoveryCodes();
    renderTwoFactor();
    $("tfa-enable").focus();
  });
});

// ---- Start ----

$("curl-example").textContent =
  `curl ${window.location.origin}/v1/auth/user \\\n  -H "Authorization: Bearer YOUR_API_KEY" \\\n  -H "Accept: application/json"`;
signOutHere("");
