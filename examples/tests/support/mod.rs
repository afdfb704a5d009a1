//! Starts the account API on 127.0.0.1:0 over a fresh database of each engine, and talks
//! to it over HTTP.
//!
//! SQLite: a file in a temporary directory, always. PostgreSQL and MariaDB: a schema or a
//! database of its own per test (tests run in parallel) on the servers named by
//! `BEARER_AUTH_POSTGRES_URL` and `BEARER_AUTH_MYSQL_URL`; unset, the test is skipped with
//! a line saying so, except under `CI=true`, where it fails.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use account_api::{App, Config};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::Value;
use sqlx::Connection as _;
use tokio::{sync::oneshot, task::JoinHandle};

/// A database engine the tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
    MySql,
}

/// A fresh, empty database for one test.
pub struct TestDb {
    pub url: String,
    pub engine: Engine,
    /// The SQLite file's directory (removed when dropped).
    dir: Option<tempfile::TempDir>,
    /// The schema or database to drop at the end, and the server URL to drop it from.
    drop: Option<(String, String)>,
}

fn random_name() -> String {
    let mut bytes = [0_u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("account_api_{hex}")
}

fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{var} is unset: CI must run the account API's tests on this engine"
            );
            eprintln!("skipped: {var} is unset");
            None
        }
    }
}

impl TestDb {
    /// A fresh database on `engine`, or `None` (skipped) if its server is not configured.
    pub async fn new(engine: Engine) -> Option<Self> {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("app.sqlite3").display());
                Some(Self {
                    url,
                    engine,
                    dir: Some(dir),
                    drop: None,
                })
            }
            Engine::Postgres => {
                let server = server_url("BEARER_AUTH_POSTGRES_URL")?;
                let schema = random_name();
                let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
                sqlx::query(&format!("create schema {schema}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                let sep = if server.contains('?') { '&' } else { '?' };
                let url = format!("{server}{sep}options=-c%20search_path%3D{schema}");
                Some(Self {
                    url,
                    engine,
                    dir: None,
                    drop: Some((server, format!("drop schema {schema} cascade"))),
                })
            }
            Engine::MySql => {
                let server = server_url("BEARER_AUTH_MYSQL_URL")?;
                let database = random_name();
                let mut conn = sqlx::MySqlConnection::connect(&server).await.unwrap();
                sqlx::query(&format!("create database {database}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                let (base, query) = match server.split_once('?') {
                    Some((base, query)) => (base, format!("?{query}")),
                    None => (server.as_str(), String::new()),
                };
                let authority_end = base
                    .find("://")
                    .map(|i| i + 3)
                    .and_then(|start| base[start..].find('/').map(|j| start + j))
                    .unwrap_or(base.len());
                let url = format!("{}/{database}{query}", &base[..authority_end]);
                Some(Self {
                    url,
                    engine,
                    dir: None,
                    drop: Some((server, format!("drop database {database}"))),
                })
            }
        }
    }

    /// The directory of the SQLite file.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(tempfile::TempDir::path)
    }

    /// The service's configuration on this database, with a fixed `APP_KEY` on servers
    /// (on SQLite the key file beside the database is used).
    pub fn config(&self) -> Config {
        let mut config = Config::with_database(&self.url);
        if self.engine != Engine::Sqlite {
            config.app_key = Some(APP_KEY.to_owned());
        }
        config
    }

    /// Drops the schema or database.
    pub async fn cleanup(self) {
        if let Some((server, statement)) = &self.drop {
            let result = match self.engine {
                Engine::Postgres => match sqlx::PgConnection::connect(server).await {
                    Ok(mut conn) => sqlx::query(statement).execute(&mut conn).await.map(|_| ()),
                    Err(e) => Err(e),
                },
                Engine::MySql => match sqlx::MySqlConnection::connect(server).await {
                    Ok(mut conn) => sqlx::query(statement).execute(&mut conn).await.map(|_| ()),
                    Err(e) => Err(e),
                },
                Engine::Sqlite => Ok(()),
            };
            if let Err(e) = result {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// The `APP_KEY` of the Fortify test row (`account_api/testdata/fortify_row.json`).
pub const APP_KEY: &str = "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A running service.
pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// A response: status, headers, body text.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// Asserts the status and the exact body, and `Content-Type: application/json`.
    #[track_caller]
    pub fn expect(&self, status: u16, body: &str) {
        assert_eq!(
            (self.status.as_u16(), self.body.as_str()),
            (status, body),
            "{self:?}"
        );
        self.expect_json_type();
    }

    /// Asserts the status and `Content-Type: application/json`, and returns the JSON.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        self.expect_json_type();
        if self.body.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    #[track_caller]
    fn expect_json_type(&self) {
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{self:?}"
        );
    }

    /// The documented 401 with its challenge.
    #[track_caller]
    pub fn expect_unauthenticated(&self) {
        self.expect(401, r#"{"message":"Unauthenticated."}"#);
        assert_eq!(
            self.headers["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
    }

    /// The documented 403 for a pending second factor.
    #[track_caller]
    pub fn expect_second_factor_required(&self) {
        self.expect(
            403,
            r#"{"message":"Two-factor authentication required.","requires_2fa":true}"#,
        );
    }
}

impl Server {
    /// Starts the service with `config` on 127.0.0.1:0.
    pub async fn start(config: &Config) -> Self {
        Self::serve(App::start(config).await.unwrap()).await
    }

    /// Serves `app` on 127.0.0.1:0.
    pub async fn serve(app: App) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            base,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the service gracefully and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Sends a request: `body`, if any, as JSON.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(Method::POST, path, token, Some(body)).await
    }

    pub async fn post_empty(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::POST, path, token, None).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.send(Method::DELETE, path, token, body).await
    }

    /// Registers a user: `(id, token)`.
    pub async fn register(&self, name: &str, email: &str, password: &str) -> (u64, String) {
        let reply = self
            .post(
                "/v1/auth/register",
                None,
                serde_json::json!({"name": name, "email": email, "password": password}),
            )
            .await;
        let body = reply.expect_status(201);
        (
            body["user"]["id"].as_u64().unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates an API key with `token` (`body` as `POST /v1/profile/api-keys` takes it),
    /// expecting 201; its `plain_text_token`.
    pub async fn create_key(&self, token: &str, body: Value) -> String {
        self.post("/v1/profile/api-keys", Some(token), body)
            .await
            .expect_status(201)["plain_text_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Logs in: `(token, requires_2fa)`.
    pub async fn login(&self, email: &str, password: &str) -> (String, bool) {
        let reply = self
            .post(
                "/v1/auth/login",
                None,
                serde_json::json!({"email": email, "password": password}),
            )
            .await;
        let body = reply.expect_status(200);
        (
            body["token"].as_str().unwrap().to_owned(),
            body["requires_2fa"].as_bool().unwrap(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// RFC 4648 base32 (no padding) to bytes.
pub fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0_u64;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let value = ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_uppercase())
            .unwrap_or_else(|| panic!("not base32: {text}"));
        bits = (bits << 5) | value as u64;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

/// RFC 6238 TOTP (HOTP of the time step, RFC 4226): SHA-1, 6 digits, written here
/// apart from the service's own.
pub fn totp(secret_base32: &str, step: u64) -> String {
    let key = base32_decode(secret_base32);
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).unwrap();
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let number = u32::from_be_bytes(digest[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", number % 1_000_000)
}

/// The current TOTP time step (30 s).
pub fn current_step() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}

/// The SHA-256 of the part of a token after `|`, in hex: what the store keeps.
pub fn digest_hex(token: &str) -> String {
    use sha2::Digest as _;
    let secret = token.split_once('|').map_or(token, |(_, s)| s);
    sha2::Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A path in a directory.
pub fn path_in(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// A service on a fresh database of `engine`; `None` when that server is not configured.
pub async fn start(engine: Engine) -> Option<(TestDb, Server)> {
    let db = TestDb::new(engine).await?;
    let server = Server::start(&db.config()).await;
    Some((db, server))
}

/// A service on a fresh SQLite database.
pub async fn sqlite() -> (TestDb, Server) {
    start(Engine::Sqlite).await.unwrap()
}

/// Sends `body` as it is, with `content_type` if any.
pub async fn raw(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Reply {
    let mut request = server
        .client
        .request(method, format!("{}{path}", server.base))
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    Reply {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

/// Turns two-factor on for a new user; `(secret, the step of the code used)`.
pub async fn two_factor_user(server: &Server, email: &str) -> (String, u64) {
    let (_, token) = server.register("Ada", email, "correct horse").await;
    let enabled = server
        .post_empty("/v1/auth/two-factor/enable", Some(&token))
        .await
        .expect_status(200);
    let secret = enabled["secret"].as_str().unwrap().to_owned();
    let step = current_step();
    server
        .post(
            "/v1/auth/two-factor/confirm",
            Some(&token),
            serde_json::json!({"code": totp(&secret, step)}),
        )
        .await
        .expect_status(200);
    (secret, step)
}
