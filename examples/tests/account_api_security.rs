//! The account API against a hostile client: brute force of the second factor and of
//! passwords (alone and in parallel), limited keys reaching for the account, input that
//! a database cannot hold, emails that differ only in case or accents, slow clients, and
//! what the answers and files let others read.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use support::{Engine, Server, TestDb};

const MISSING_ABILITY: &str = r#"{"message":"Invalid ability provided."}"#;

async fn start(engine: Engine) -> Option<(TestDb, Server)> {
    let db = TestDb::new(engine).await?;
    let server = Server::start(&db.config()).await;
    Some((db, server))
}

async fn sqlite() -> (TestDb, Server) {
    start(Engine::Sqlite).await.unwrap()
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
