//! Debian's headless Chromium driven over WebDriver (`chromedriver`, with fantoccini):
//! each [`Browser`] starts its own chromedriver on a free port and its own Chromium with a
//! fresh profile, and ends both when dropped.
//!
//! The binaries are `$CHROMIUM` and `$CHROMEDRIVER`, by default `/usr/bin/chromium` and
//! `/usr/bin/chromedriver` (Debian's `chromium` and `chromium-driver`). When one is
//! missing, [`Browser::start`] answers `None` and the test is skipped with a line saying
//! so, except under `CI=true`, where it fails.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::{
    future::Future,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::{Value, json};

/// The flags Chromium runs with: headless, nothing fetched from the network on its own.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// WebDriver's keys.
pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";
pub const ESCAPE: &str = "\u{E00C}";

/// The desktop window the tests and screenshots use.
pub const DESKTOP: (u32, u32) = (1280, 900);

/// Run in every page before its own scripts: records what the page would otherwise only
/// log, so that tests can require there is none: a Content-Security-Policy violation (an
/// inline script or style, something from elsewhere), an uncaught exception, an unhandled
/// promise rejection.
const WATCH_PAGE: &str = r#"
window.__problems = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__problems.push(`CSP ${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`));
window.addEventListener("error", (e) => window.__problems.push(`error: ${e.message} (${e.filename}:${e.lineno})`));
window.addEventListener("unhandledrejection", (e) => window.__problems.push(`unhandled rejection: ${e.reason}`));
"#;

/// How long a wait lasts before the test fails.
const WAIT: Duration = Duration::from_secs(15);

fn binary(var: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from);
    path.is_file().then_some(path)
}

/// A chromedriver and the Chromium it drives.
pub struct Browser {
    client: Client,
    driver: Child,
    profile: tempfile::TempDir,
}

/// The page of a [`Browser`]'s window, with the few things a test does with it.
#[derive(Clone)]
pub struct Page {
    pub client: Client,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile, or `None` (the
    /// test skipped) when either is not installed.
    pub async fn start() -> Option<Self> {
        let chromium = binary("CHROMIUM", "/usr/bin/chromium");
        let chromedriver = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
        let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "chromium or chromedriver is missing: CI must run the dashboard's browser \
                 tests (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "skipped: chromium or chromedriver is missing \
                 (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let profile = tempfile::tempdir().unwrap();
        let (driver, url) = start_driver(&chromedriver, profile.path()).await;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!(
            "--user-data-dir={}",
            profile.path().join("chromium").display()
        ));
        args.push(format!("--window-size={},{}", DESKTOP.0, DESKTOP.1));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": args,
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = match ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&url)
            .await
        {
            Ok(client) => client,
            Err(e) => {
                let mut driver = driver;
                let _ = driver.kill();
                let _ = driver.wait();
                kill_processes_with_arg(&profile.path().join("chromium"));
                panic!("no WebDriver session: {e}");
            }
        };
        let browser = Self {
            client,
            driver,
            profile,
        };
        browser
            .cdp(
                &url,
                "Page.addScriptToEvaluateOnNewDocument",
                json!({"source": WATCH_PAGE}),
            )
            .await;
        browser.page().resize(DESKTOP.0, DESKTOP.1).await;
        Some(browser)
    }

    /// Sends a DevTools command through chromedriver (`goog/cdp/execute`).
    async fn cdp(&self, driver_url: &str, cmd: &str, params: Value) {
        let session = self.client.session_id().await.unwrap().unwrap();
        let response = reqwest::Client::new()
            .post(format!("{driver_url}/session/{session}/goog/cdp/execute"))
            .header("Content-Type", "application/json")
            .body(json!({"cmd": cmd, "params": params}).to_string())
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status.is_success(),
            "{cmd}: {status} {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// Its window's page.
    pub fn page(&self) -> Page {
        Page {
            client: self.client.clone(),
        }
    }

    /// Ends the browser session (Chromium quits), then chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.end_processes();
    }

    fn end_processes(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // A Chromium whose session could not be closed: end it too, found by its own
        // profile directory (only the processes this browser started have it).
        kill_processes_with_arg(&self.profile.path().join("chromium"));
    }
}

impl Page {
    /// Sets the window's size.
    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Runs `script` with one argument.
    pub async fn js_with(&self, script: &str, arg: Value) -> Value {
        self.client
            .execute(script, vec![arg])
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Waits until the JavaScript expression `condition` is true.
    #[track_caller]
    pub fn until<'a>(&'a self, condition: &'a str) -> impl Future<Output = ()> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            let script = format!("return Boolean({condition});");
            let start = Instant::now();
            loop {
                if self.js(&script).await == Value::Bool(true) {
                    return;
                }
                assert!(
                    start.elapsed() < WAIT,
                    "{caller}: still false after {WAIT:?}: {condition}\npage text:\n{}",
                    self.text("body").await
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The element `css`.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    /// The text of the element `css`, as rendered.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// The `value` of the form field `css`.
    pub async fn value(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Types `text` into the field `css`, replacing what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks the element `css`.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Presses Enter in the field `css` (submits its form, as a keyboard user does).
    pub async fn enter(&self, css: &str) {
        self.find(css).await.send_keys(ENTER).await.unwrap();
    }

    /// What the page reported since it loaded: CSP violations, uncaught errors.
    pub async fn problems(&self) -> Vec<String> {
        let problems = self
            .js("return window.__problems || ['the page watch is missing'];")
            .await;
        serde_json::from_value(problems).unwrap()
    }

    /// Asserts that the page reported no problem since it loaded.
    #[track_caller]
    pub fn assert_no_problems(&self) -> impl Future<Output = ()> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            let problems = self.problems().await;
            assert!(problems.is_empty(), "{caller}: {problems:#?}");
        }
    }

    /// Presses `keys` in the element that has the focus.
    pub async fn press(&self, keys: &str) {
        self.client
            .active_element()
            .await
            .unwrap()
            .send_keys(keys)
            .await
            .unwrap();
    }

    /// The `id` of the element that has the focus.
    pub async fn focused(&self) -> String {
        self.js("return document.activeElement ? document.activeElement.id : '';")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.end_processes();
    }
}

/// A port free right now on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts chromedriver on a free port and waits until it answers: the child and its URL.
async fn start_driver(chromedriver: &Path, dir: &Path) -> (Child, String) {
    for _ in 0..5 {
        let port = free_port();
        let mut child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", chromedriver.display()));
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while start.elapsed() < WAIT {
            if child.try_wait().unwrap().is_some() {
                break; // The port was taken meanwhile: try another.
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return (child, url);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("chromedriver did not start");
}

/// Ends the processes (on Linux) one of whose arguments names `path`.
fn kill_processes_with_arg(path: &Path) {
    let needle = path.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
