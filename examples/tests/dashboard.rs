//! The dashboard at `/`: its security headers exactly, and the whole flow in Debian's
//! headless Chromium over WebDriver against the account API on 127.0.0.1:0 with a fresh
//! SQLite database: register, the API page, a key created (shown once, it authenticates),
//! a reload (the key gone from the page), regenerate (old 401, new 200), revoke (401),
//! two-factor on with a code computed here, sign out, sign in through the code step (a
//! TOTP code, then a recovery code); and the errors shown as sentences.
//!
//! Without chromium and chromedriver the browser tests are skipped with a line saying so,
//! except under `CI=true`, where they fail. With `DASHBOARD_SCREENSHOTS=<dir>` (relative
//! to the workspace root, e.g. `docs`), the flow saves the screenshots that README.md
//! shows: `dashboard-sign-in.png`, `dashboard-api-page.png` (desktop, a key just
//! created) and `dashboard-api-page-360.png` (360 px wide).

#![allow(clippy::unwrap_used)]

#[path = "support/browser.rs"]
mod browser;
mod support;

use std::path::PathBuf;

use browser::{Browser, DESKTOP, ENTER, ESCAPE, Page, TAB};
use serde_json::{Value, json};
use sqlx::Connection as _;
use support::{Engine, Server, TestDb, current_step, totp};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Fetches `path` and asserts its status, type, security headers and exact body.
async fn assert_served(server: &Server, path: &str, content_type: &str, cache: &str, body: &str) {
    let response = server
        .client
        .get(format!("{}{path}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let headers = response.headers().clone();
    let header = |name: &str| {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        values.join(" | ")
    };
    assert_eq!(header("content-type"), content_type, "{path}");
    assert_eq!(header("content-security-policy"), CSP, "{path}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
    assert_eq!(header("cache-control"), cache, "{path}");
    assert_eq!(header("set-cookie"), "", "{path}");
    assert_eq!(response.text().await.unwrap(), body, "{path}");
}

#[tokio::test]
async fn the_page_and_its_assets_carry_the_security_headers() {
    let db = TestDb::new(Engine::Sqlite).await.unwrap();
    let server = Server::start(&db.config()).await;
    assert_served(
        &server,
        "/",
        "text/html; charset=utf-8",
        "no-store",
        include_str!("../account_api/dashboard/index.html"),
    )
    .await;
    assert_served(
        &server,
        "/assets/app.css",
        "text/css; charset=utf-8",
        "no-cache",
        include_str!("../account_api/dashboard/app.css"),
    )
    .await;
    assert_served(
        &server,
        "/assets/app.js",
        "text/javascript; charset=utf-8",
        "no-cache",
        include_str!("../account_api/dashboard/app.js"),
    )
    .await;

    // The page loads exactly those two assets, from here.
    let page = include_str!("../account_api/dashboard/index.html");
    assert!(page.contains(r#"<link rel="stylesheet" href="/assets/app.css">"#));
    assert!(page.contains(r#"<script type="module" src="/assets/app.js"></script>"#));
    // The API's answers stay JSON, without the page's headers.
    let reply = server.get("/v1/auth/user", None).await;
    reply.expect(401, r#"{"message":"Unauthenticated."}"#);
    assert!(reply.headers.get("content-security-policy").is_none());
    // Unknown assets are the API's 404.
    server
        .get("/assets/nope.js", None)
        .await
        .expect(404, r#"{"message":"Not Found."}"#);
    server.stop().await;
}

/// Where screenshots go, if asked for: `$DASHBOARD_SCREENSHOTS`, relative to the
/// workspace root.
fn screenshot_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("DASHBOARD_SCREENSHOTS").filter(|d| !d.is_empty())?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let dir = root.join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    Some(dir)
}

/// Saves a screenshot of the whole page at `width` if screenshots are asked for.
async fn save_screenshot(browser: &Page, name: &str, width: u32) {
    let Some(dir) = screenshot_dir() else {
        return;
    };
    browser.resize(width, DESKTOP.1).await;
    // The window as tall as the page, so that the picture shows all of it.
    let height = browser
        .js("return Math.ceil(document.body.getBoundingClientRect().height);")
        .await
        .as_u64()
        .unwrap();
    let chrome = browser
        .js("return window.outerHeight - window.innerHeight;")
        .await
        .as_u64()
        .unwrap();
    let height = u32::try_from(height + chrome).unwrap().clamp(400, 3000);
    browser.resize(width, height).await;
    browser
        .until(&format!("window.innerWidth === {width}"))
        .await;
    let png = browser.screenshot().await;
    std::fs::write(dir.join(name), png).unwrap();
    browser.resize(DESKTOP.0, DESKTOP.1).await;
}

/// Everything the page holds: its markup, its text, and every field's value.
const PAGE_TEXT: &str = "return document.documentElement.outerHTML + '\\n' + document.body.innerText + '\\n' + [...document.querySelectorAll('input, textarea')].map((e) => e.value).join('\\n');";

/// Fields without a label, and whether the page is wider than the window.
async fn assert_usable(browser: &Page) {
    let unlabelled = browser
        .js("return [...document.querySelectorAll('input, textarea, select')].filter((e) => e.type !== 'hidden' && e.labels.length === 0).map((e) => e.id);")
        .await;
    assert_eq!(unlabelled, json!([]), "fields without a label");
    let overflow = browser
        .js("return document.documentElement.scrollWidth - window.innerWidth;")
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page is wider than the window by {overflow} px"
    );
}

/// Signs in with the form, pressing Enter as a keyboard user does.
async fn sign_in(browser: &Page, email: &str, password: &str) {
    browser.fill("#sign-in-email", email).await;
    browser.fill("#sign-in-password", password).await;
    browser.enter("#sign-in-password").await;
}

/// The id of the key whose plain text token is `token`.
fn key_id(token: &str) -> u64 {
    token.split_once('|').unwrap().0.parse().unwrap()
}

async fn user_status(server: &Server, token: &str) -> u16 {
    server
        .get("/v1/auth/user", Some(token))
        .await
        .status
        .as_u16()
}

/// Whether the key `id` is still in the database.
async fn key_exists(db: &TestDb, id: u64) -> bool {
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    let count: i64 = sqlx::query_scalar("select count(*) from personal_access_tokens where id = ?")
        .bind(i64::try_from(id).unwrap())
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    count == 1
}

/// The id of the page's own login token: the row marked "this sign-in".
async fn own_login_key(browser: &Page) -> u64 {
    browser
        .js("return document.querySelector('#keys-body tr:has(.tag)').dataset.keyId;")
        .await
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

const VIEW_SIGN_IN: &str = "!document.getElementById('view-sign-in').hidden";
const VIEW_CODE: &str = "!document.getElementById('view-code').hidden";
const VIEW_API: &str = "!document.getElementById('view-api').hidden && document.querySelectorAll('#keys-body tr').length > 0";

#[tokio::test]
async fn the_whole_flow_in_chromium() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let db = TestDb::new(Engine::Sqlite).await.unwrap();
    let server = Server::start(&db.config()).await;
    // The flow runs in a task so that the browser is closed whatever happens in it.
    let flow = tokio::spawn(whole_flow(browser.page(), db, server));
    let result = flow.await;
    browser.close().await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn whole_flow(page: Page, db: TestDb, server: Server) {
    let browser = &page;
    let (email, password) = ("ada@example.com", "correct horse");

    // The sign-in page: labelled fields, and its screenshot.
    browser
        .client
        .goto(&format!("{}/", server.base))
        .await
        .unwrap();
    browser.until(VIEW_SIGN_IN).await;
    assert_eq!(browser.client.title().await.unwrap(), "Sign in · API keys");
    assert_usable(browser).await;
    save_screenshot(browser, "dashboard-sign-in.png", DESKTOP.0).await;

    // Register.
    browser.fill("#register-name", "Ada Lovelace").await;
    browser.fill("#register-email", email).await;
    browser.fill("#register-password", password).await;
    browser.enter("#register-password").await;
    browser.until(VIEW_API).await;
    assert_eq!(browser.text("#account-email").await, email);
    assert_eq!(
        browser.text("#tfa-state").await,
        "Two-factor sign-in is off."
    );
    assert_usable(browser).await;
    // The one row: this page's own sign-in.
    assert_eq!(
        browser.text("#keys-body").await,
        browser.text("#keys-body tr:has(.tag)").await
    );

    // Create a key; the box it appears in does not move the table below it.
    let table_top = "document.getElementById('keys').getBoundingClientRect().top + window.scrollY";
    let before = browser.js(&format!("return {table_top};")).await;
    browser.fill("#create-name", "CI <deploy>").await;
    browser.enter("#create-name").await;
    browser
        .until("document.getElementById('new-key').value !== '' && document.querySelectorAll('#keys-body tr').length === 2")
        .await;
    let key = browser.value("#new-key").await;
    assert_eq!(
        browser.js(&format!("return {table_top};")).await,
        before,
        "the layout moved"
    );
    assert_eq!(
        browser.text("#key-box-title").await,
        "Your new key “CI <deploy>”"
    );
    assert!(
        browser
            .text("#key-box-full .warning")
            .await
            .contains("it will not be shown again"),
    );
    // From the key, Tab reaches its Copy button, and Enter copies (or says how to).
    assert_eq!(browser.focused().await, "new-key");
    browser.press(TAB).await;
    assert_eq!(browser.focused().await, "copy-key");
    browser.press(ENTER).await;
    browser
        .until("document.getElementById('copy-status').textContent !== ''")
        .await;
    let copied = browser.text("#copy-status").await;
    assert!(
        copied == "Copied to the clipboard."
            || copied.starts_with("Copying failed: select the text and copy it"),
        "{copied}"
    );
    let row = format!("#keys-body tr[data-key-id='{}']", key_id(&key));
    assert_eq!(browser.text(&format!("{row} td.name")).await, "CI <deploy>");
    assert_eq!(browser.text(&format!("{row} td.abilities")).await, "all");
    assert_eq!(
        browser.text(&format!("{row} td:nth-child(4)")).await,
        "never"
    );
    assert_eq!(
        browser.text(&format!("{row} td:nth-child(5)")).await,
        "never"
    );
    save_screenshot(browser, "dashboard-api-page.png", DESKTOP.0).await;
    // 360 px wide: nothing wider than the window, no layout jump either.
    browser.resize(360, 800).await;
    browser.until("window.innerWidth === 360").await;
    assert_usable(browser).await;
    save_screenshot(browser, "dashboard-api-page-360.png", 360).await;

    // The key works.
    assert_eq!(user_status(&server, &key).await, 200);

    browser.assert_no_problems().await;

    // Reloading loses the key (and the sign-in, whose token the page revokes on its way).
    let first_login = own_login_key(browser).await;
    assert!(browser.js(PAGE_TEXT).await.as_str().unwrap().contains(&key));
    browser.client.refresh().await.unwrap();
    browser.until(VIEW_SIGN_IN).await;
    let source = browser.client.source().await.unwrap();
    assert!(!source.contains(&key), "the key is in the page source");
    assert!(!browser.js(PAGE_TEXT).await.as_str().unwrap().contains(&key));
    sign_in(browser, email, password).await;
    browser.until(VIEW_API).await;
    assert!(!browser.js(PAGE_TEXT).await.as_str().unwrap().contains(&key));
    assert!(
        !key_exists(&db, first_login).await,
        "the reload kept its sign-in"
    );
    browser
        .until(&format!("document.querySelector(\"{row}\")"))
        .await;
    assert_eq!(
        browser
            .js("return document.getElementById('new-key').value;")
            .await,
        ""
    );

    // Regenerate asks first: Escape changes nothing.
    browser
        .click(&format!("{row} button[aria-label^='Regenerate']"))
        .await;
    browser
        .until("document.getElementById('confirm').open")
        .await;
    assert_eq!(browser.focused().await, "confirm-cancel");
    browser.press(ESCAPE).await;
    browser
        .until("!document.getElementById('confirm').open")
        .await;
    assert_eq!(user_status(&server, &key).await, 200);
    // Confirmed, the new key is shown once; the old one is refused at once.
    browser
        .click(&format!("{row} button[aria-label^='Regenerate']"))
        .await;
    browser
        .until("document.getElementById('confirm').open")
        .await;
    assert_eq!(
        browser.text("#confirm-title").await,
        "Regenerate “CI <deploy>”?"
    );
    browser.click("#confirm-ok").await;
    browser
        .until("document.getElementById('new-key').value !== ''")
        .await;
    let renewed = browser.value("#new-key").await;
    assert_ne!(renewed, key);
    assert_eq!(key_id(&renewed), key_id(&key));
    assert_eq!(user_status(&server, &key).await, 401);
    assert_eq!(user_status(&server, &renewed).await, 200);

    // Revoke, with the keyboard only: confirm; the row leaves, the key is refused, the
    // box forgets it.
    browser
        .js(&format!(
            "document.querySelector(\"{row} button[aria-label^='Revoke']\").focus();"
        ))
        .await;
    browser.press(ENTER).await;
    browser
        .until("document.getElementById('confirm').open")
        .await;
    assert_eq!(
        browser.text("#confirm-title").await,
        "Revoke “CI <deploy>”?"
    );
    assert_eq!(browser.focused().await, "confirm-cancel");
    browser.press(TAB).await;
    assert_eq!(browser.focused().await, "confirm-ok");
    browser.press(ENTER).await;
    browser
        .until(&format!("!document.querySelector(\"{row}\")"))
        .await;
    assert_eq!(user_status(&server, &renewed).await, 401);
    assert_eq!(
        browser
            .js("return document.getElementById('new-key').value;")
            .await,
        ""
    );

    // Two-factor on: the QR code (an SVG made by the server), the secret, a code.
    browser.click("#tfa-enable").await;
    browser
        .until("!document.getElementById('tfa-setup').hidden && document.getElementById('tfa-qr').complete && document.getElementById('tfa-qr').naturalWidth > 0")
        .await;
    let qr_src = browser
        .js("return document.getElementById('tfa-qr').getAttribute('src');")
        .await;
    assert!(
        qr_src
            .as_str()
            .unwrap()
            .starts_with("data:image/svg+xml;base64,"),
        "{qr_src}"
    );
    let secret = browser.text("#tfa-secret").await;
    assert_eq!(secret.len(), 32, "{secret}");
    assert_usable(browser).await;
    let step = current_step();
    browser.fill("#tfa-code", &totp(&secret, step)).await;
    browser.enter("#tfa-code").await;
    browser
        .until("!document.getElementById('tfa-codes').hidden")
        .await;
    let codes = browser
        .js("return [...document.querySelectorAll('#tfa-codes-list li')].map((li) => li.textContent);")
        .await;
    let codes: Vec<String> = serde_json::from_value(codes).unwrap();
    assert_eq!(codes.len(), 8);
    assert!(
        browser
            .text("#tfa-state")
            .await
            .starts_with("Two-factor sign-in is on")
    );
    assert_eq!(browser.text("#tfa-secret").await, "");

    browser.assert_no_problems().await;

    // Sign out: the page's token is revoked.
    let login = own_login_key(browser).await;
    browser.click("#sign-out").await;
    browser.until(VIEW_SIGN_IN).await;
    assert_eq!(browser.text("#notice").await, "You have signed out.");
    assert!(!key_exists(&db, login).await, "signing out kept the token");
    assert!(
        !browser
            .js(PAGE_TEXT)
            .await
            .as_str()
            .unwrap()
            .contains(&codes[0])
    );

    // Sign in again: the code step, with the code of the next step (the confirmed one
    // cannot be used twice).
    sign_in(browser, email, password).await;
    browser.until(VIEW_CODE).await;
    assert_usable(browser).await;
    browser.fill("#code-input", &totp(&secret, step + 1)).await;
    browser.enter("#code-input").await;
    browser.until(VIEW_API).await;
    assert_eq!(browser.text("#account-email").await, email);

    // And once more with a recovery code.
    browser.click("#sign-out").await;
    browser.until(VIEW_SIGN_IN).await;
    sign_in(browser, email, password).await;
    browser.until(VIEW_CODE).await;
    browser.click("#code-switch").await;
    browser
        .until("document.activeElement === document.getElementById('recovery-input')")
        .await;
    assert_usable(browser).await;
    browser.fill("#recovery-input", &codes[3]).await;
    browser.enter("#recovery-input").await;
    browser.until(VIEW_API).await;
    browser.assert_no_problems().await;

    server.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn errors_are_sentences_in_chromium() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let db = TestDb::new(Engine::Sqlite).await.unwrap();
    let server = Server::start(&db.config()).await;
    let flow = tokio::spawn(errors_flow(browser.page(), db, server));
    let result = flow.await;
    browser.close().await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn errors_flow(page: Page, db: TestDb, server: Server) {
    let browser = &page;
    let (email, password) = ("grace@example.com", "correct horse");
    server.register("Grace", email, password).await;
    browser
        .client
        .goto(&format!("{}/", server.base))
        .await
        .unwrap();
    browser.until(VIEW_SIGN_IN).await;

    // A short password: the field is marked, the sentence shown.
    browser.fill("#register-name", "Someone").await;
    browser.fill("#register-email", "someone@example.com").await;
    browser.fill("#register-password", "short").await;
    browser.enter("#register-password").await;
    browser
        .until("!document.getElementById('register-error').hidden")
        .await;
    assert_eq!(
        browser.text("#register-error").await,
        "The password field must be at least 8 characters."
    );
    assert_eq!(
        browser
            .js("return document.getElementById('register-password').getAttribute('aria-invalid');")
            .await,
        json!("true")
    );

    // Wrong credentials, then the throttle (429), as sentences.
    let error_is = |text: &str| {
        format!(
            "document.getElementById('sign-in-error').textContent === {}",
            Value::from(text)
        )
    };
    for attempt in 1..=5 {
        sign_in(browser, email, &format!("wrong password {attempt}")).await;
        browser
            .until(&error_is("These credentials do not match our records."))
            .await;
        browser
            .js("document.getElementById('sign-in-error').textContent = '';")
            .await;
    }
    sign_in(browser, email, "wrong again").await;
    browser
        .until("document.getElementById('sign-in-error').textContent.startsWith('Too many attempts. Please wait ')")
        .await;
    let throttled = browser.text("#sign-in-error").await;
    assert!(
        throttled.ends_with(" seconds and try again."),
        "{throttled}"
    );

    // A sign-in ended elsewhere: the next action brings the page back to sign-in.
    browser
        .js("document.getElementById('sign-in-error').textContent = '';")
        .await;
    browser.client.refresh().await.unwrap();
    browser.until(VIEW_SIGN_IN).await;
    browser.fill("#register-name", "Hedy").await;
    browser.fill("#register-email", "hedy@example.com").await;
    browser.fill("#register-password", password).await;
    browser.enter("#register-password").await;
    browser.until(VIEW_API).await;
    let page_login = own_login_key(browser).await;
    let (hedy, _) = server.login("hedy@example.com", password).await;
    server
        .delete(
            &format!("/v1/profile/api-keys/{page_login}"),
            Some(&hedy),
            None,
        )
        .await
        .expect_status(204);
    browser.fill("#create-name", "too late").await;
    browser.enter("#create-name").await;
    browser.until(VIEW_SIGN_IN).await;
    assert_eq!(
        browser.text("#notice").await,
        "Your sign-in has ended. Please sign in again."
    );

    // The server gone: a sentence, not a blank page.
    server.stop().await;
    sign_in(browser, "hedy@example.com", password).await;
    browser
        .until(&error_is(
            "The server could not be reached. Check your connection and try again.",
        ))
        .await;
    browser.assert_no_problems().await;
    db.cleanup().await;
}
