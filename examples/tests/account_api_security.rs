//! The account API against a hostile client: brute force of the second factor and of
//! passwords (alone and in parallel), limited keys reaching for the account, input that
//! a database cannot hold, emails that differ only in case or accents, slow clients, and
//! what the answers and files let others read.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use support::{Engine, Server, TestDb};

async fn start(engine: Engine) -> Option<(TestDb, Server)> {
    let db = TestDb::new(engine).await?;
    let server = Server::start(&db.config()).await;
    Some((db, server))
}

async fn sqlite() -> (TestDb, Server) {
    start(Engine::Sqlite).await.unwrap()
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
