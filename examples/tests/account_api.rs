//! The account API's whole documented flow over HTTP, on SQLite and, where their servers
//! are configured, PostgreSQL and MariaDB: register, the user, API keys (create, use,
//! list without secrets, regenerate, revoke, another user's id), two-factor (enable,
//! confirm, the pending login, a replayed code, the challenge, recovery codes), the login
//! throttle, logout.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use support::{Engine, Server, TestDb, current_step, digest_hex, totp};

const PENDING_BODY: &str =
    r#"{"message":"Two-factor authentication required.","requires_2fa":true}"#;
const CODE_INVALID: &str = r#"{"message":"The provided two factor authentication code was invalid.","errors":{"code":["The provided two factor authentication code was invalid."]}}"#;
const RECOVERY_INVALID: &str = r#"{"message":"The provided two factor recovery code was invalid.","errors":{"recovery_code":["The provided two factor recovery code was invalid."]}}"#;
const NOT_FOUND: &str = r#"{"message":"Not Found."}"#;

/// A token as Sanctum issues them: `{id}|{40 random}{8 hex of crc32}`.
#[track_caller]
fn assert_sanctum_token(token: &str) {
    let (id, secret) = token.split_once('|').unwrap();
    assert!(
        id.bytes().all(|b| b.is_ascii_digit()) && !id.is_empty(),
        "{token}"
    );
    assert_eq!(secret.len(), 48, "{token}");
    assert!(secret[..40].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(
        secret[40..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
}

/// Whether a Laravel JSON date: `2024-05-01T10:00:00.000000Z`.
fn is_laravel_time(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 27 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.'
    })
}

fn keys_of(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

async fn whole_flow(engine: Engine) {
    let Some(db) = TestDb::new(engine).await else {
        return;
    };
    let server = Server::start(&db.config()).await;

    // Register.
    let reply = server
        .post(
            "/v1/auth/register",
            None,
            json!({"name": "Alice", "email": "alice@example.com", "password": "correct horse"}),
        )
        .await;
    let body = reply.expect_status(201);
    let alice_id = body["user"]["id"].as_u64().unwrap();
    let login = body["token"].as_str().unwrap().to_owned();
    assert_sanctum_token(&login);
    assert_eq!(
        reply.body,
        format!(
            r#"{{"user":{{"id":{alice_id},"name":"Alice","email":"alice@example.com"}},"token":"{login}"}}"#
        )
    );

    // The user; no token, the documented 401.
    let user_body = format!(
        r#"{{"id":{alice_id},"name":"Alice","email":"alice@example.com","two_factor_enabled":false}}"#
    );
    server
        .get("/v1/auth/user", Some(&login))
        .await
        .expect(200, &user_body);
    let anonymous = server.get("/v1/auth/user", None).await;
    anonymous.expect(401, r#"{"message":"Unauthenticated."}"#);
    assert_eq!(anonymous.headers["www-authenticate"], "Bearer");

    // Create a key and use it. (MySQL's TIMESTAMP ends in 2038: a later expiry is refused
    // there, never stored wrong.)
    let far = server
        .post(
            "/v1/profile/api-keys",
            Some(&login),
            json!({"name": "CI", "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    if engine == Engine::MySql {
        far.expect(422, r#"{"message":"The expires at field must be a date before 2038-01-19 03:14:08.","errors":{"expires_at":["The expires at field must be a date before 2038-01-19 03:14:08."]}}"#);
    } else {
        let far = far.expect_status(201);
        assert_eq!(far["expires_at"], "2099-01-01T00:00:00.000000Z");
        server
            .delete(
                &format!("/v1/profile/api-keys/{}", far["id"]),
                Some(&login),
                None,
            )
            .await;
    }
    let reply = server
        .post(
            "/v1/profile/api-keys",
            Some(&login),
            json!({"name": "CI", "abilities": ["servers:read"], "expires_at": "2037-12-31T23:59:59Z"}),
        )
        .await;
    let created = reply.expect_status(201);
    assert_eq!(
        keys_of(&created),
        [
            "abilities",
            "created_at",
            "expires_at",
            "id",
            "name",
            "plain_text_token"
        ]
    );
    assert_eq!(created["name"], "CI");
    assert_eq!(created["abilities"], json!(["servers:read"]));
    assert_eq!(created["expires_at"], "2037-12-31T23:59:59.000000Z");
    assert!(is_laravel_time(&created["created_at"]), "{created}");
    let key_id = created["id"].as_u64().unwrap();
    let key = created["plain_text_token"].as_str().unwrap().to_owned();
    assert_sanctum_token(&key);
    assert!(key.starts_with(&format!("{key_id}|")));
    server
        .get("/v1/auth/user", Some(&key))
        .await
        .expect(200, &user_body);

    // List: the fields, never a secret or a digest.
    let reply = server.get("/v1/profile/api-keys", Some(&login)).await;
    let list = reply.expect_status(200);
    let items = list.as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    for item in items {
        assert_eq!(
            keys_of(item),
            [
                "abilities",
                "created_at",
                "expires_at",
                "id",
                "last_used_at",
                "name"
            ]
        );
    }
    let ci = items.iter().find(|k| k["id"] == key_id).unwrap();
    assert_eq!(ci["name"], "CI");
    assert_eq!(ci["abilities"], json!(["servers:read"]));
    for token in [&login, &key] {
        let secret = token.split_once('|').unwrap().1;
        assert!(!reply.body.contains(secret), "{}", reply.body);
        assert!(!reply.body.contains(&digest_hex(token)), "{}", reply.body);
    }

    // Regenerate: the old token is refused at once, the new one works.
    let reply = server
        .post_empty(
            &format!("/v1/profile/api-keys/{key_id}/regenerate"),
            Some(&login),
        )
        .await;
    let regenerated = reply.expect_status(200);
    assert_eq!(regenerated["id"], key_id);
    assert_eq!(regenerated["name"], "CI");
    assert_eq!(regenerated["abilities"], json!(["servers:read"]));
    let new_key = regenerated["plain_text_token"].as_str().unwrap().to_owned();
    assert_sanctum_token(&new_key);
    assert_ne!(new_key, key);
    server
        .get("/v1/auth/user", Some(&key))
        .await
        .expect_unauthenticated();
    server
        .get("/v1/auth/user", Some(&new_key))
        .await
        .expect(200, &user_body);

    // Revoke: refused.
    let reply = server
        .delete(
            &format!("/v1/profile/api-keys/{key_id}"),
            Some(&login),
            None,
        )
        .await;
    assert_eq!(reply.status, 204);
    assert_eq!(reply.body, "");
    server
        .get("/v1/auth/user", Some(&new_key))
        .await
        .expect_unauthenticated();
    server
        .delete(
            &format!("/v1/profile/api-keys/{key_id}"),
            Some(&login),
            None,
        )
        .await
        .expect(404, NOT_FOUND);

    // Another user's key id answers as an unknown one.
    let alice_key = server
        .post(
            "/v1/profile/api-keys",
            Some(&login),
            json!({"name": "deploy"}),
        )
        .await
        .expect_status(201);
    let alice_key_id = alice_key["id"].as_u64().unwrap();
    let alice_key_token = alice_key["plain_text_token"].as_str().unwrap().to_owned();
    let (_, bob) = server
        .register("Bob", "bob@example.com", "hunter2hunter2")
        .await;
    for path in [
        format!("/v1/profile/api-keys/{alice_key_id}/regenerate"),
        "/v1/profile/api-keys/999999/regenerate".to_owned(),
        "/v1/profile/api-keys/not-a-number/regenerate".to_owned(),
    ] {
        server
            .post_empty(&path, Some(&bob))
            .await
            .expect(404, NOT_FOUND);
    }
    for id in [alice_key_id.to_string(), "999999".to_owned()] {
        server
            .delete(&format!("/v1/profile/api-keys/{id}"), Some(&bob), None)
            .await
            .expect(404, NOT_FOUND);
    }
    let bobs = server
        .get("/v1/profile/api-keys", Some(&bob))
        .await
        .expect_status(200);
    assert_eq!(bobs.as_array().unwrap().len(), 1, "{bobs}");
    server
        .get("/v1/auth/user", Some(&alice_key_token))
        .await
        .expect(200, &user_body);

    // Two-factor: enable, a wrong code, confirm with the right one.
    let enabled = server
        .post_empty("/v1/auth/two-factor/enable", Some(&login))
        .await
        .expect_status(200);
    assert_eq!(keys_of(&enabled), ["otpauth_url", "secret"]);
    let secret = enabled["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        enabled["otpauth_url"],
        format!(
            "otpauth://totp/account_api:alice%40example.com?secret={secret}&issuer=account_api"
        )
    );
    let step = current_step();
    let wrong = if totp(&secret, step) == "000000" {
        "000001"
    } else {
        "000000"
    };
    let wrong = if (step - 1..=step + 1).any(|s| totp(&secret, s) == wrong) {
        "999999"
    } else {
        wrong
    };
    server
        .post(
            "/v1/auth/two-factor/confirm",
            Some(&login),
            json!({"code": wrong}),
        )
        .await
        .expect(422, CODE_INVALID);
    let confirm_code = totp(&secret, step);
    let confirmed = server
        .post(
            "/v1/auth/two-factor/confirm",
            Some(&login),
            json!({"code": confirm_code}),
        )
        .await
        .expect_status(200);
    assert_eq!(keys_of(&confirmed), ["recovery_codes"]);
    let recovery: Vec<String> =
        serde_json::from_value(confirmed["recovery_codes"].clone()).unwrap();
    assert_eq!(recovery.len(), 8);
    server.get("/v1/auth/user", Some(&login)).await.expect(
        200,
        &user_body.replace(
            r#""two_factor_enabled":false"#,
            r#""two_factor_enabled":true"#,
        ),
    );

    // Log in again: pending, the 403 body everywhere but the challenge.
    let (pending, requires_2fa) = server.login("alice@example.com", "correct horse").await;
    assert!(requires_2fa);
    assert_sanctum_token(&pending);
    server
        .get("/v1/auth/user", Some(&pending))
        .await
        .expect(403, PENDING_BODY);
    server
        .get("/v1/profile/api-keys", Some(&pending))
        .await
        .expect(403, PENDING_BODY);
    server
        .post("/v1/profile/api-keys", Some(&pending), json!({"name": "x"}))
        .await
        .expect(403, PENDING_BODY);
    server
        .post_empty("/v1/auth/logout", Some(&pending))
        .await
        .expect(403, PENDING_BODY);
    server
        .post_empty("/v1/auth/two-factor/enable", Some(&pending))
        .await
        .expect(403, PENDING_BODY);

    // A replayed code: 422. The next step's code: 200, and the token is no longer pending.
    server
        .post(
            "/v1/auth/two-factor-challenge",
            Some(&pending),
            json!({"code": confirm_code}),
        )
        .await
        .expect(422, CODE_INVALID);
    server
        .post(
            "/v1/auth/two-factor-challenge",
            Some(&pending),
            json!({"code": totp(&secret, step + 1)}),
        )
        .await
        .expect(200, r#"{"requires_2fa":false}"#);
    let passed = pending;
    server
        .get("/v1/auth/user", Some(&passed))
        .await
        .expect(200, &user_body.replace("false", "true"));
    server
        .post(
            "/v1/auth/two-factor-challenge",
            Some(&passed),
            json!({"code": "123456"}),
        )
        .await
        .expect(
            409,
            r#"{"message":"This token is not waiting for a second factor."}"#,
        );

    // A recovery code works once.
    let (pending, _) = server.login("alice@example.com", "correct horse").await;
    server
        .post(
            "/v1/auth/two-factor-challenge",
            Some(&pending),
            json!({"recovery_code": recovery[0]}),
        )
        .await
        .expect(200, r#"{"requires_2fa":false}"#);
    let (pending, _) = server.login("alice@example.com", "correct horse").await;
    server
        .post(
            "/v1/auth/two-factor-challenge",
            Some(&pending),
            json!({"recovery_code": recovery[0]}),
        )
        .await
        .expect(422, RECOVERY_INVALID);
    server
        .post(
            "/v1/auth/two-factor-challenge",
            Some(&pending),
            json!({"recovery_code": recovery[1]}),
        )
        .await
        .expect(200, r#"{"requires_2fa":false}"#);

    // The login throttle: 5 failures for one email and address, then 429 even with the
    // right password.
    let failed = r#"{"message":"These credentials do not match our records.","errors":{"email":["These credentials do not match our records."]}}"#;
    for _ in 0..5 {
        server
            .post(
                "/v1/auth/login",
                None,
                json!({"email": "alice@example.com", "password": "wrong"}),
            )
            .await
            .expect(422, failed);
    }
    let throttled = server
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "alice@example.com", "password": "correct horse"}),
        )
        .await;
    throttled.expect(429, r#"{"message":"Too Many Attempts."}"#);
    let retry_after: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Another email from the same address is not throttled.
    server.login("bob@example.com", "hunter2hunter2").await;

    // Logout: the token used is refused after.
    let reply = server.post_empty("/v1/auth/logout", Some(&login)).await;
    assert_eq!(reply.status, 204);
    server
        .get("/v1/auth/user", Some(&login))
        .await
        .expect_unauthenticated();
    // Other tokens of the user still work.
    server
        .get("/v1/auth/user", Some(&passed))
        .await
        .expect_status(200);

    server.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn whole_flow_on_sqlite() {
    whole_flow(Engine::Sqlite).await;
}

#[tokio::test]
async fn whole_flow_on_postgres() {
    whole_flow(Engine::Postgres).await;
}

#[tokio::test]
async fn whole_flow_on_mariadb() {
    whole_flow(Engine::MySql).await;
}
