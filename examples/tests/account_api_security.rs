//! The account API against a hostile client: brute force of the second factor and of
//! passwords (alone and in parallel), limited keys reaching for the account, input that
//! a database cannot hold, emails that differ only in case or accents, slow clients, and
//! what the answers and files let others read.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Engine, Server, TestDb, sqlite, start, totp, two_factor_user};

const MISSING_ABILITY: &str = r#"{"message":"Invalid ability provided."}"#;
const TOO_MANY: &str = r#"{"message":"Too Many Attempts."}"#;
const CODE_INVALID: &str = r#"{"message":"The provided two factor authentication code was invalid.","errors":{"code":["The provided two factor authentication code was invalid."]}}"#;
const CREDENTIALS_FAILED: &str = r#"{"message":"These credentials do not match our records.","errors":{"email":["These credentials do not match our records."]}}"#;

/// A code that is wrong around `step`.
fn wrong_code(secret: &str, step: u64) -> &'static str {
    ["000000", "111111", "222222", "333333", "444444", "555555"]
        .into_iter()
        .find(|c| (step - 1..=step + 3).all(|s| totp(secret, s) != *c))
        .unwrap()
}

async fn challenge(server: &Server, token: &str, code: &str) -> support::Reply {
    server
        .post(
            "/v1/auth/two-factor-challenge",
            Some(token),
            json!({"code": code}),
        )
        .await
}

/// Failures count per user, whichever pending token they came with (each login
/// makes a new one), and a token that failed 5 times is revoked.
#[tokio::test]
async fn the_challenge_is_throttled_per_user_and_a_token_revoked_after_5_failures() {
    let (_db, server) = sqlite().await;

    // Spread over three logins, five failures still stop the user.
    let (secret, step) = two_factor_user(&server, "ada@example.com").await;
    let bad = wrong_code(&secret, step);
    let (a, _) = server.login("ada@example.com", "correct horse").await;
    let (b, _) = server.login("ada@example.com", "correct horse").await;
    for token in [&a, &b, &a, &b] {
        challenge(&server, token, bad)
            .await
            .expect(422, CODE_INVALID);
    }
    let (c, _) = server.login("ada@example.com", "correct horse").await;
    challenge(&server, &c, bad).await.expect(422, CODE_INVALID);
    for token in [&a, &b, &c] {
        let reply = challenge(&server, token, &totp(&secret, step + 1)).await;
        reply.expect(429, TOO_MANY);
        let retry: u64 = reply.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
    }
    let (d, _) = server.login("ada@example.com", "correct horse").await;
    challenge(&server, &d, &totp(&secret, step + 1))
        .await
        .expect(429, TOO_MANY);

    // Five failures with one token: that token is gone.
    let (secret, step) = two_factor_user(&server, "bo@example.com").await;
    let bad = wrong_code(&secret, step);
    let (e, _) = server.login("bo@example.com", "correct horse").await;
    for _ in 0..5 {
        challenge(&server, &e, bad).await.expect(422, CODE_INVALID);
    }
    challenge(&server, &e, &totp(&secret, step + 1))
        .await
        .expect_unauthenticated();
}

/// A key limited to some abilities uses the API, but cannot manage the account: not
/// two-factor, not the keys (its own siblings, the login token, new keys); it can log
/// itself out.
#[tokio::test]
async fn a_limited_key_cannot_manage_the_account() {
    let (_db, server) = sqlite().await;
    let (_, login) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let login_id = login.split_once('|').unwrap().0.to_owned();
    let created = server
        .post(
            "/v1/profile/api-keys",
            Some(&login),
            json!({"name": "ro", "abilities": ["servers:read"]}),
        )
        .await
        .expect_status(201);
    let key = created["plain_text_token"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_u64().unwrap();
    let k = Some(key.as_str());

    server
        .post_empty("/v1/auth/two-factor/enable", k)
        .await
        .expect(403, MISSING_ABILITY);
    server
        .post("/v1/auth/two-factor/confirm", k, json!({"code": "123456"}))
        .await
        .expect(403, MISSING_ABILITY);
    server
        .get("/v1/auth/two-factor/qr-code", k)
        .await
        .expect(403, MISSING_ABILITY);
    server
        .delete(
            "/v1/auth/two-factor",
            k,
            Some(json!({"password": "correct horse"})),
        )
        .await
        .expect(403, MISSING_ABILITY);
    server
        .get("/v1/profile/api-keys", k)
        .await
        .expect(403, MISSING_ABILITY);
    for body in [
        json!({"name": "child", "abilities": ["servers:read"]}),
        json!({"name": "child", "abilities": ["servers:read"], "expires_at": "2030-01-01T00:00:00Z"}),
    ] {
        server
            .post("/v1/profile/api-keys", k, body)
            .await
            .expect(403, MISSING_ABILITY);
    }
    for id in [login_id.clone(), key_id.to_string()] {
        server
            .post_empty(&format!("/v1/profile/api-keys/{id}/regenerate"), k)
            .await
            .expect(403, MISSING_ABILITY);
        server
            .delete(&format!("/v1/profile/api-keys/{id}"), k, None)
            .await
            .expect(403, MISSING_ABILITY);
    }
    // Nothing changed: two-factor off, the login token and the key work, no new key.
    let user = server.get("/v1/auth/user", k).await.expect_status(200);
    assert_eq!(user["two_factor_enabled"], false);
    let keys = server
        .get("/v1/profile/api-keys", Some(&login))
        .await
        .expect_status(200);
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");

    // Logging out revokes the key used, whatever its abilities, and only it.
    let reply = server.post_empty("/v1/auth/logout", k).await;
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (204, ""));
    server
        .get("/v1/auth/user", k)
        .await
        .expect_unauthenticated();
    server
        .get("/v1/auth/user", Some(&login))
        .await
        .expect_status(200);
}

/// A key made with an expiring key expires no later than it.
#[tokio::test]
async fn a_key_made_by_an_expiring_key_expires_no_later_than_it() {
    let (_db, server) = sqlite().await;
    let (_, login) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let parent = server
        .post(
            "/v1/profile/api-keys",
            Some(&login),
            json!({"name": "deploy", "expires_at": "2031-01-01T00:00:00Z"}),
        )
        .await
        .expect_status(201);
    let parent = parent["plain_text_token"].as_str().unwrap().to_owned();
    for (body, expires_at) in [
        (json!({"name": "never"}), "2031-01-01T00:00:00.000000Z"),
        (
            json!({"name": "later", "expires_at": "2035-06-01T00:00:00Z"}),
            "2031-01-01T00:00:00.000000Z",
        ),
        (
            json!({"name": "sooner", "expires_at": "2030-06-01T00:00:00Z"}),
            "2030-06-01T00:00:00.000000Z",
        ),
    ] {
        let child = server
            .post("/v1/profile/api-keys", Some(&parent), body)
            .await
            .expect_status(201);
        assert_eq!(child["expires_at"], expires_at, "{child}");
    }
    // A login token does not expire: its keys may live as long as asked.
    let child = server
        .post(
            "/v1/profile/api-keys",
            Some(&login),
            json!({"name": "long", "expires_at": "2035-06-01T00:00:00Z"}),
        )
        .await
        .expect_status(201);
    assert_eq!(child["expires_at"], "2035-06-01T00:00:00.000000Z");
}

/// An expiry past 9999-12-31T23:59:59Z is refused, and the list of keys still
/// answers afterwards; the last second of 9999 is kept and listed.
#[tokio::test]
async fn an_expiry_past_the_year_9999_is_refused_and_keys_still_list() {
    let (_db, server) = sqlite().await;
    let (_, login) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let t = Some(login.as_str());
    server
        .post(
            "/v1/profile/api-keys",
            t,
            json!({"name": "x", "expires_at": "9999-12-31T23:59:59-01:00"}),
        )
        .await
        .expect(422, r#"{"message":"The expires at field must be a date before 10000-01-01 00:00:00.","errors":{"expires_at":["The expires at field must be a date before 10000-01-01 00:00:00."]}}"#);
    let last = server
        .post(
            "/v1/profile/api-keys",
            t,
            json!({"name": "last", "expires_at": "9999-12-31T23:59:59Z"}),
        )
        .await
        .expect_status(201);
    assert_eq!(last["expires_at"], "9999-12-31T23:59:59.000000Z");
    let keys = server
        .get("/v1/profile/api-keys", t)
        .await
        .expect_status(200);
    let names: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["login", "last"]);
}

/// Sends each of `bodies` to `path`, from as many clients at once; the replies, in no
/// order.
async fn in_parallel(server: &Server, path: &str, bodies: Vec<Value>) -> Vec<support::Reply> {
    let mut tasks = tokio::task::JoinSet::new();
    for body in bodies {
        let client = reqwest::Client::new();
        let url = format!("{}{path}", server.base);
        tasks.spawn(async move {
            let response = client
                .post(url)
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            support::Reply {
                status: response.status(),
                headers: response.headers().clone(),
                body: response.text().await.unwrap(),
            }
        });
    }
    let mut replies = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        replies.push(reply.unwrap());
    }
    replies
}

/// Wrong passwords sent in parallel get 5 tries, not one each.
#[tokio::test]
async fn parallel_wrong_logins_get_5_tries() {
    // Not about the bcrypt slots: however slow this machine, none answers 503 here.
    let (_db, server) = start_with(|l| l.password_wait = Duration::from_secs(120)).await;
    server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let bodies = (0..15)
        .map(|i| json!({"email": "ada@example.com", "password": format!("wrong {i}")}))
        .collect();
    let replies = in_parallel(&server, "/v1/auth/login", bodies).await;
    let mut failed = 0;
    let mut throttled = 0;
    for reply in &replies {
        match reply.status.as_u16() {
            422 => {
                reply.expect(422, CREDENTIALS_FAILED);
                failed += 1;
            }
            _ => {
                reply.expect(429, TOO_MANY);
                throttled += 1;
            }
        }
    }
    assert_eq!((failed, throttled), (5, 10));
    // The right password is refused too until the minute ends.
    server
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "ada@example.com", "password": "correct horse"}),
        )
        .await
        .expect(429, TOO_MANY);
}

/// On MySQL/MariaDB, whose collation finds `ada@…` for `ÁDÁ@…`, spelling the email
/// another way does not give a new budget of failures.
#[tokio::test]
async fn an_email_spelled_another_way_shares_the_login_throttle_on_mariadb() {
    let Some((db, server)) = start(Engine::MySql).await else {
        return;
    };
    server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    // The database finds Ada under these spellings.
    for email in ["ádá@example.com", "ADA@example.com"] {
        server.login(email, "correct horse").await;
    }
    for _ in 0..5 {
        server
            .post(
                "/v1/auth/login",
                None,
                json!({"email": "ada@example.com", "password": "wrong"}),
            )
            .await
            .expect(422, CREDENTIALS_FAILED);
    }
    for email in [
        "ádá@example.com",
        "ÁDÁ@EXAMPLE.COM",
        "ada@example.com",
        "Ada@Example.com",
    ] {
        server
            .post(
                "/v1/auth/login",
                None,
                json!({"email": email, "password": "correct horse"}),
            )
            .await
            .expect(429, TOO_MANY);
    }
    server.stop().await;
    db.cleanup().await;
}

/// On SQLite, where `ádá@…` is another (unknown) email, it is throttled as `ada@…`
/// is: a known and an unknown email answer alike.
#[tokio::test]
async fn an_email_spelled_another_way_shares_the_login_throttle_on_sqlite() {
    let (_db, server) = sqlite().await;
    server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    for (known, accented) in [
        ("ada@example.com", "ádá@example.com"),
        ("nobody@example.com", "nóbody@example.com"),
    ] {
        for _ in 0..5 {
            server
                .post(
                    "/v1/auth/login",
                    None,
                    json!({"email": known, "password": "wrong"}),
                )
                .await
                .expect(422, CREDENTIALS_FAILED);
        }
        server
            .post(
                "/v1/auth/login",
                None,
                json!({"email": accented, "password": "correct horse"}),
            )
            .await
            .expect(429, TOO_MANY);
    }
}

/// A NUL character (which PostgreSQL's text cannot hold) is a 422, not a 503.
#[tokio::test]
async fn nul_characters_are_refused_on_postgres() {
    let Some((db, server)) = start(Engine::Postgres).await else {
        return;
    };
    server
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "a\u{0}da@example.com", "password": "correct horse"}),
        )
        .await
        .expect(422, r#"{"message":"The email field must not contain null characters.","errors":{"email":["The email field must not contain null characters."]}}"#);
    server
        .post(
            "/v1/auth/register",
            None,
            json!({"name": "A\u{0}da", "email": "ada@example.com", "password": "correct horse"}),
        )
        .await
        .expect(422, r#"{"message":"The name field must not contain null characters.","errors":{"name":["The name field must not contain null characters."]}}"#);
    let (_, login) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    server
        .post(
            "/v1/profile/api-keys",
            Some(&login),
            json!({"name": "k\u{0}", "abilities": ["a\u{0}"]}),
        )
        .await
        .expect(422, r#"{"message":"The name field must not contain null characters. (and 1 more error)","errors":{"name":["The name field must not contain null characters."],"abilities.0":["The abilities.0 field must not contain null characters."]}}"#);
    server.stop().await;
    db.cleanup().await;
}

/// Abilities whose JSON (non-ASCII written as `\uXXXX`, as Laravel writes it) would
/// not fit MySQL's TEXT column are a 422, not a 503.
#[tokio::test]
async fn abilities_too_large_to_store_are_refused_on_mariadb() {
    let Some((db, server)) = start(Engine::MySql).await else {
        return;
    };
    let (_, login) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let abilities = vec!["é".repeat(255); 100];
    server
        .post(
            "/v1/profile/api-keys",
            Some(&login),
            json!({"name": "k", "abilities": abilities}),
        )
        .await
        .expect(422, r#"{"message":"The abilities field must not be greater than 16384 bytes as JSON.","errors":{"abilities":["The abilities field must not be greater than 16384 bytes as JSON."]}}"#);
    // What fits is kept as it was sent.
    let abilities = vec!["é".repeat(255); 10];
    let created = server
        .post(
            "/v1/profile/api-keys",
            Some(&login),
            json!({"name": "k", "abilities": abilities}),
        )
        .await
        .expect_status(201);
    assert_eq!(created["abilities"], json!(abilities));
    server.stop().await;
    db.cleanup().await;
}

/// Registering, and apart from it logging in, is throttled per client address: 20 a
/// minute, whatever the requests hold.
#[tokio::test]
async fn register_and_login_are_throttled_per_address() {
    let (_db, server) = sqlite().await;
    for i in 0..20 {
        server
            .post(
                "/v1/auth/register",
                None,
                json!({"name": "x", "email": format!("user{i}@example.com")}),
            )
            .await
            .expect(422, r#"{"message":"The password field is required.","errors":{"password":["The password field is required."]}}"#);
    }
    let reply = server
        .post(
            "/v1/auth/register",
            None,
            json!({"name": "x", "email": "new@example.com", "password": "correct horse"}),
        )
        .await;
    reply.expect(429, TOO_MANY);
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");

    // Logging in has its own count, per address too.
    for i in 0..20 {
        server
            .post(
                "/v1/auth/login",
                None,
                json!({"email": format!("user{i}@example.com")}),
            )
            .await
            .expect(422, r#"{"message":"The password field is required.","errors":{"password":["The password field is required."]}}"#);
    }
    server
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "user0@example.com", "password": "correct horse"}),
        )
        .await
        .expect(429, TOO_MANY);
}

/// Emails are kept lowercased and compared without case, on every engine.
async fn emails_ignore_case(engine: Engine) {
    let Some((db, server)) = start(engine).await else {
        return;
    };
    let reply = server
        .post(
            "/v1/auth/register",
            None,
            json!({"name": "Ada", "email": " Ada@Example.COM ", "password": "correct horse"}),
        )
        .await;
    let body = reply.expect_status(201);
    assert_eq!(body["user"]["email"], "ada@example.com");
    server
        .post(
            "/v1/auth/register",
            None,
            json!({"name": "Ada", "email": "ada@example.com", "password": "correct horse"}),
        )
        .await
        .expect(422, r#"{"message":"The email has already been taken.","errors":{"email":["The email has already been taken."]}}"#);
    for email in ["ada@example.com", "ADA@example.com", "Ada@Example.Com"] {
        server.login(email, "correct horse").await;
    }
    server.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn emails_ignore_case_on_sqlite() {
    emails_ignore_case(Engine::Sqlite).await;
}

#[tokio::test]
async fn emails_ignore_case_on_postgres() {
    emails_ignore_case(Engine::Postgres).await;
}

#[tokio::test]
async fn emails_ignore_case_on_mariadb() {
    emails_ignore_case(Engine::MySql).await;
}

/// A user row a Laravel app wrote with capitals signs in with any case, and its
/// email is taken in any case.
#[tokio::test]
async fn a_laravel_row_with_capitals_signs_in_in_any_case() {
    let (db, server) = sqlite().await;
    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    let hash = account_api::users::hash_password("correct horse").unwrap();
    sqlx::query(
        "insert into users (name, email, password, created_at, updated_at) \
         values ('Grace', 'Grace@Example.com', ?, '2024-05-01 10:00:00', '2024-05-01 10:00:00')",
    )
    .bind(hash)
    .execute(&pool)
    .await
    .unwrap();
    server.login("grace@example.com", "correct horse").await;
    server
        .post(
            "/v1/auth/register",
            None,
            json!({"name": "G", "email": "grace@example.com", "password": "correct horse"}),
        )
        .await
        .expect(422, r#"{"message":"The email has already been taken.","errors":{"email":["The email has already been taken."]}}"#);
}

/// API answers (tokens, secrets, recovery codes) are never stored by a cache, nor
/// sniffed as another type; the dashboard's assets keep their own caching.
#[tokio::test]
async fn api_answers_are_not_cached_or_sniffed() {
    let (_db, server) = sqlite().await;
    let registered = server
        .post(
            "/v1/auth/register",
            None,
            json!({"name": "Ada", "email": "ada@example.com", "password": "correct horse"}),
        )
        .await;
    let token = registered.expect_status(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let replies = [
        registered,
        server
            .post_empty("/v1/auth/two-factor/enable", Some(&token))
            .await,
        server.get("/v1/profile/api-keys", Some(&token)).await,
        server.get("/v1/auth/user", None).await,
        server.get("/v1/auth/user", Some("1|wrong")).await,
        server.get("/v1/openapi.json", None).await,
        server.get("/nothing", None).await,
        server.get("/", None).await,
    ];
    for reply in &replies {
        assert_eq!(reply.headers["cache-control"], "no-store", "{reply:?}");
        assert_eq!(
            reply.headers["x-content-type-options"], "nosniff",
            "{reply:?}"
        );
    }
    let css = server.get("/assets/app.css", None).await;
    assert_eq!(css.headers["cache-control"], "no-cache");
    assert_eq!(css.headers["x-content-type-options"], "nosniff");
    assert_eq!(css.status, StatusCode::OK);
}

/// The SQLite database and its `-wal` and `-shm` files are readable by their owner
/// only.
#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;

    let (db, server) = sqlite().await;
    server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let dir = db.dir().unwrap();
    for name in [
        "app.sqlite3",
        "app.sqlite3-wal",
        "app.sqlite3-shm",
        "app.sqlite3.key",
    ] {
        let mode = std::fs::metadata(dir.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}: {:o}", mode & 0o777);
    }
    server.stop().await;
}

async fn start_with(limits: impl FnOnce(&mut account_api::Limits)) -> (TestDb, Server) {
    let db = TestDb::new(Engine::Sqlite).await.unwrap();
    let mut config = db.config();
    limits(&mut config.limits);
    let server = Server::start(&config).await;
    (db, server)
}

/// A pending token lives 10 minutes from its login (5 s here): later, the challenge
/// refuses it (401) even with the right code, and it is revoked.
#[tokio::test]
async fn a_pending_token_expires() {
    let (db, server) = start_with(|l| l.pending_token_ttl = Duration::from_secs(5)).await;
    let (secret, step) = two_factor_user(&server, "ada@example.com").await;
    let (old, _) = server.login("ada@example.com", "correct horse").await;
    tokio::time::sleep(Duration::from_millis(6100)).await;
    challenge(&server, &old, &totp(&secret, step + 1))
        .await
        .expect_unauthenticated();
    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    let id: i64 = old.split_once('|').unwrap().0.parse().unwrap();
    let rows: i64 = sqlx::query_scalar("select count(*) from personal_access_tokens where id = ?")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    // A fresh login passes with that code.
    let (fresh, _) = server.login("ada@example.com", "correct horse").await;
    challenge(&server, &fresh, &totp(&secret, step + 1))
        .await
        .expect(200, r#"{"requires_2fa":false}"#);
}

#[test]
fn pending_tokens_live_10_minutes_by_default() {
    assert_eq!(
        account_api::Limits::default().pending_token_ttl,
        Duration::from_secs(600)
    );
}

/// Bcrypt runs in a bounded number of slots; a request that waits too long for one
/// gets 503 with `Retry-After`, not an ever longer queue.
#[tokio::test]
async fn password_hashing_is_bounded_and_503_when_saturated() {
    let (_db, server) = start_with(|l| {
        l.password_jobs = 1;
        l.password_wait = Duration::from_millis(50);
    })
    .await;
    let bodies = (0..4)
        .map(|i| json!({"email": format!("user{i}@example.com"), "password": "wrong password"}))
        .collect();
    let replies = in_parallel(&server, "/v1/auth/login", bodies).await;
    let mut busy = 0;
    for reply in &replies {
        if reply.status == 503 {
            reply.expect(503, r#"{"message":"Service Unavailable."}"#);
            assert_eq!(reply.headers["retry-after"], "1");
            busy += 1;
        } else {
            reply.expect(422, CREDENTIALS_FAILED);
        }
    }
    assert!((1..4).contains(&busy), "{replies:?}");
    // A 503 did not count as a failed login: the slot free, the user signs in.
    server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    server.login("ada@example.com", "correct horse").await;
}

/// Connects to the server and sends `bytes`.
async fn send_raw(server: &Server, bytes: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt as _;
    let addr = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads until the server closes the connection (or `within` passes: `None`).
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt as _;
    let mut out = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0_u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&out).into_owned())
}

/// A client that sends its headers slowly (slowloris) is cut off, as is an idle
/// kept-alive connection.
#[tokio::test]
async fn a_client_slow_to_send_its_headers_is_cut_off() {
    let (_db, server) = start_with(|l| l.header_timeout = Duration::from_secs(1)).await;
    let started = std::time::Instant::now();
    let mut slow = send_raw(&server, b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\n").await;
    let mut idle = send_raw(&server, b"").await;
    for stream in [&mut slow, &mut idle] {
        let answer = read_until_closed(stream, Duration::from_secs(5))
            .await
            .expect("still open 5 s after the 1 s header timeout");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408 "),
            "{answer}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(4));
    // The server still answers others.
    server
        .get("/nothing", None)
        .await
        .expect(404, r#"{"message":"Not Found."}"#);
}

/// A client that never sends the body its `Content-Length` promised gets 408 and is
/// disconnected.
#[tokio::test]
async fn a_client_slow_to_send_its_body_gets_408() {
    let (_db, server) = start_with(|l| l.request_timeout = Duration::from_secs(1)).await;
    let mut stream = send_raw(
        &server,
        b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{",
    )
    .await;
    let answer = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("still open 5 s after the 1 s request timeout");
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    let lower = answer.to_ascii_lowercase();
    for header in [
        "content-type: application/json\r\n",
        "connection: close\r\n",
        "cache-control: no-store\r\n",
    ] {
        assert!(lower.contains(header), "{answer}");
    }
    assert!(
        answer.ends_with("\r\n\r\n{\"message\":\"Request Timeout.\"}"),
        "{answer}"
    );
}

/// After the shutdown signal, a client stuck mid-request does not keep the service
/// running past the grace period, and `last_used_at` is still written.
#[tokio::test]
async fn a_shutdown_with_a_stuck_client_ends_after_the_grace_and_flushes() {
    let db = TestDb::new(Engine::Sqlite).await.unwrap();
    let mut config = db.config();
    config.limits.shutdown_grace = Duration::from_secs(1);
    config.limits.request_timeout = Duration::from_secs(120);
    config.limits.header_timeout = Duration::from_secs(120);
    let app = account_api::App::start(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app.serve(listener, async move {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::new();
    let registered = client
        .post(format!("{base}/v1/auth/register"))
        .header("Content-Type", "application/json")
        .body(
            json!({"name": "Ada", "email": "ada@example.com", "password": "correct horse"})
                .to_string(),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let registered: Value = serde_json::from_str(&registered).unwrap();
    let token = registered["token"].as_str().unwrap().to_owned();
    let user = client
        .get(format!("{base}/v1/auth/user"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), 200);

    // Stuck: a body that never comes, and headers that never end.
    let addr = base.trim_start_matches("http://");
    let mut stuck = Vec::new();
    for bytes in [
        &b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{"[..],
        &b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\n"[..],
    ] {
        use tokio::io::AsyncWriteExt as _;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        stuck.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = std::time::Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("still serving 10 s after the signal, with a 1 s grace")
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );

    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    let id: i64 = token.split_once('|').unwrap().0.parse().unwrap();
    let last_used: Option<String> =
        sqlx::query_scalar("select last_used_at from personal_access_tokens where id = ?")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(last_used.is_some(), "last_used_at was not flushed");
    drop(stuck);
}

/// The OpenAPI document tells the answers that come from around the handlers: the two
/// 403 bodies where both occur, the 401 challenge header, the body's 400/413/415, 408,
/// 503, and the throttles' 429.
#[tokio::test]
async fn the_openapi_document_tells_every_answer() {
    let (_db, server) = sqlite().await;
    let doc = server
        .get("/v1/openapi.json", None)
        .await
        .expect_status(200);
    let op = |path: &str, method: &str| doc["paths"][path][method].clone();
    let refs =
        |response: &Value| -> Value { response["content"]["application/json"]["schema"].clone() };
    let either = json!({"oneOf": [
        {"$ref": "#/components/schemas/SecondFactorBody"},
        {"$ref": "#/components/schemas/AbilityBody"}
    ]});
    for (path, method) in [
        ("/v1/auth/two-factor/enable", "post"),
        ("/v1/auth/two-factor/confirm", "post"),
        ("/v1/auth/two-factor/qr-code", "get"),
        ("/v1/auth/two-factor", "delete"),
        ("/v1/profile/api-keys", "get"),
        ("/v1/profile/api-keys", "post"),
        ("/v1/profile/api-keys/{id}/regenerate", "post"),
        ("/v1/profile/api-keys/{id}", "delete"),
    ] {
        assert_eq!(
            refs(&op(path, method)["responses"]["403"]),
            either,
            "{method} {path}"
        );
    }
    for (path, method) in [("/v1/auth/user", "get"), ("/v1/auth/logout", "post")] {
        assert_eq!(
            refs(&op(path, method)["responses"]["403"]),
            json!({"$ref": "#/components/schemas/SecondFactorBody"}),
            "{method} {path}"
        );
    }
    assert_eq!(
        doc["components"]["schemas"]["AbilityBody"]["properties"]["message"]["example"],
        json!("Invalid ability provided.")
    );
    let user = op("/v1/auth/user", "get");
    assert_eq!(
        user["responses"]["401"]["headers"]["WWW-Authenticate"]["schema"],
        json!({"type": "string"})
    );
    for (path, method) in [
        ("/v1/auth/register", "post"),
        ("/v1/auth/login", "post"),
        ("/v1/auth/two-factor-challenge", "post"),
        ("/v1/auth/two-factor/confirm", "post"),
        ("/v1/auth/two-factor", "delete"),
        ("/v1/profile/api-keys", "post"),
    ] {
        let responses = op(path, method)["responses"].clone();
        for status in ["400", "408", "413", "415", "422", "503"] {
            assert!(responses[status].is_object(), "{method} {path} {status}");
        }
    }
    for (path, method) in [("/v1/auth/user", "get"), ("/v1/profile/api-keys", "get")] {
        let responses = op(path, method)["responses"].clone();
        assert!(responses["400"].is_null() && responses["415"].is_null());
        assert!(responses["503"].is_object() && responses["408"].is_object());
    }
    for path in ["/v1/auth/register", "/v1/auth/login"] {
        let throttled = &op(path, "post")["responses"]["429"];
        assert!(throttled["headers"]["Retry-After"].is_object(), "{path}");
    }
}
