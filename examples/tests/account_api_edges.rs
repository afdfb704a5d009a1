//! The account API's edges, on SQLite: bodies that are not what a route reads (always a
//! 4xx with a JSON `message`), validation in Laravel's shape, the two-factor challenge's
//! throttle, the OpenAPI document, a user row written by Laravel Fortify, and a restart
//! on the same database file.

#![allow(clippy::unwrap_used)]

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{APP_KEY, Engine, Server, TestDb, current_step, raw, sqlite, totp, two_factor_user};

const JSON: Option<&str> = Some("application/json");
const NOT_JSON: &str = r#"{"message":"The request body is not valid JSON."}"#;
const NOT_OBJECT: &str = r#"{"message":"The request body must be a JSON object."}"#;
const WRONG_TYPE: &str =
    r#"{"message":"The request body must be JSON (Content-Type: application/json)."}"#;
const TOO_LARGE: &str = r#"{"message":"The request body is too large."}"#;

#[tokio::test]
async fn bodies_that_are_not_json_objects_are_4xx_with_a_message() {
    let (_db, server) = sqlite().await;
    let (_, token) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let post = Method::POST;
    for (path, auth) in [
        ("/v1/auth/register", None),
        ("/v1/auth/login", None),
        ("/v1/profile/api-keys", Some(token.as_str())),
        ("/v1/auth/two-factor/confirm", Some(token.as_str())),
    ] {
        for (content_type, body, status, expected) in [
            (JSON, "{nope", 400, NOT_JSON),
            (JSON, "", 400, NOT_JSON),
            (JSON, "[]", 400, NOT_OBJECT),
            (JSON, "\"text\"", 400, NOT_OBJECT),
            (JSON, "null", 400, NOT_OBJECT),
            (None, "{}", 415, WRONG_TYPE),
            (Some("text/plain"), "{}", 415, WRONG_TYPE),
            (
                Some("application/x-www-form-urlencoded"),
                "a=b",
                415,
                WRONG_TYPE,
            ),
        ] {
            raw(&server, post.clone(), path, auth, content_type, body)
                .await
                .expect(status, expected);
        }
        let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(70 * 1024));
        raw(&server, post.clone(), path, auth, JSON, big)
            .await
            .expect(413, TOO_LARGE);
        // Charset and `+json` are JSON too.
        let reply = raw(
            &server,
            post.clone(),
            path,
            auth,
            Some("application/json; charset=utf-8"),
            "{}",
        )
        .await;
        assert_eq!(reply.status, 422, "{reply:?}");
    }
    raw(
        &server,
        Method::DELETE,
        "/v1/auth/two-factor",
        Some(&token),
        JSON,
        "{",
    )
    .await
    .expect(400, NOT_JSON);
}

#[tokio::test]
async fn missing_and_mistyped_fields_get_laravels_validation_shape() {
    let (_db, server) = sqlite().await;
    server
        .post("/v1/auth/register", None, json!({}))
        .await
        .expect(422, r#"{"message":"The name field is required. (and 2 more errors)","errors":{"name":["The name field is required."],"email":["The email field is required."],"password":["The password field is required."]}}"#);
    server
        .post("/v1/auth/register", None, json!({"name": 5, "email": true, "password": ["x"]}))
        .await
        .expect(422, r#"{"message":"The name field must be a string. (and 2 more errors)","errors":{"name":["The name field must be a string."],"email":["The email field must be a string."],"password":["The password field must be a string."]}}"#);
    server
        .post("/v1/auth/register", None, json!({"name": "Ada", "email": "not-an-email", "password": "short"}))
        .await
        .expect(422, r#"{"message":"The email field must be a valid email address. (and 1 more error)","errors":{"email":["The email field must be a valid email address."],"password":["The password field must be at least 8 characters."]}}"#);
    server
        .post("/v1/auth/register", None, json!({"name": "x".repeat(256), "email": "ada@example.com", "password": "correct horse"}))
        .await
        .expect(422, r#"{"message":"The name field must not be greater than 255 characters.","errors":{"name":["The name field must not be greater than 255 characters."]}}"#);

    let (_, token) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    // Laravel's TrimStrings: the same email with spaces is taken.
    server
        .post("/v1/auth/register", None, json!({"name": "Ada", "email": " ada@example.com ", "password": "correct horse"}))
        .await
        .expect(422, r#"{"message":"The email has already been taken.","errors":{"email":["The email has already been taken."]}}"#);
    server
        .post("/v1/auth/login", None, json!({"email": "ada@example.com"}))
        .await
        .expect(422, r#"{"message":"The password field is required.","errors":{"password":["The password field is required."]}}"#);
    // An unknown email and a wrong password answer alike.
    let failed = r#"{"message":"These credentials do not match our records.","errors":{"email":["These credentials do not match our records."]}}"#;
    server
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "nobody@example.com", "password": "correct horse"}),
        )
        .await
        .expect(422, failed);
    server
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "ada@example.com", "password": "correct horsE"}),
        )
        .await
        .expect(422, failed);

    let keys = "/v1/profile/api-keys";
    let t = Some(token.as_str());
    server
        .post(keys, t, json!({"abilities": "all"}))
        .await
        .expect(422, r#"{"message":"The name field is required. (and 1 more error)","errors":{"name":["The name field is required."],"abilities":["The abilities field must be an array."]}}"#);
    server
        .post(keys, t, json!({"name": "k", "abilities": ["a", 7]}))
        .await
        .expect(422, r#"{"message":"The abilities.1 field must be a string.","errors":{"abilities.1":["The abilities.1 field must be a string."]}}"#);
    server
        .post(keys, t, json!({"name": "k", "expires_at": "2001-01-01T00:00:00Z"}))
        .await
        .expect(422, r#"{"message":"The expires at field must be a date after now.","errors":{"expires_at":["The expires at field must be a date after now."]}}"#);
    server
        .post(keys, t, json!({"name": "k", "expires_at": "soon"}))
        .await
        .expect(422, r#"{"message":"The expires at field must be a valid date.","errors":{"expires_at":["The expires at field must be a valid date."]}}"#);
    server
        .post("/v1/auth/two-factor/confirm", t, json!({}))
        .await
        .expect(422, r#"{"message":"The code field is required.","errors":{"code":["The code field is required."]}}"#);
    server
        .delete("/v1/auth/two-factor", t, Some(json!({"password": "wrong"})))
        .await
        .expect(422, r#"{"message":"The password is incorrect.","errors":{"password":["The password is incorrect."]}}"#);
    server
        .post("/v1/auth/two-factor/confirm", t, json!({"code": "123456"}))
        .await
        .expect(422, r#"{"message":"The provided two factor authentication code was invalid.","errors":{"code":["The provided two factor authentication code was invalid."]}}"#);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let (_db, server) = sqlite().await;
    server
        .get("/nothing", None)
        .await
        .expect(404, r#"{"message":"Not Found."}"#);
    server
        .get("/v1/auth/login", None)
        .await
        .expect(405, r#"{"message":"Method Not Allowed."}"#);
    // Protected routes check the token first.
    server
        .get("/v1/profile/api-keys/1", None)
        .await
        .expect(405, r#"{"message":"Method Not Allowed."}"#);
    let reply = server
        .post(
            "/v1/profile/api-keys",
            Some("1|wrong"),
            json!({"name": "x"}),
        )
        .await;
    reply.expect_unauthenticated();
}

#[tokio::test]
async fn abilities_a_token_lacks_cannot_be_given() {
    let (_db, server) = sqlite().await;
    let (_, token) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let reader = server
        .create_key(&token, json!({"name": "r", "abilities": ["read"]}))
        .await;
    let missing = r#"{"message":"Invalid ability provided."}"#;
    for body in [
        json!({"name": "w", "abilities": ["read", "write"]}),
        json!({"name": "all"}),
    ] {
        server
            .post("/v1/profile/api-keys", Some(&reader), body)
            .await
            .expect(403, missing);
    }
    let login_key = server
        .get("/v1/profile/api-keys", Some(&token))
        .await
        .expect_status(200)[0]["id"]
        .as_u64()
        .unwrap();
    server
        .post_empty(
            &format!("/v1/profile/api-keys/{login_key}/regenerate"),
            Some(&reader),
        )
        .await
        .expect(403, missing);
    // Nor those it has: making keys is managing the account, which takes `*`.
    server
        .post(
            "/v1/profile/api-keys",
            Some(&reader),
            json!({"name": "r2", "abilities": ["read"]}),
        )
        .await
        .expect(403, missing);
}

#[tokio::test]
async fn the_challenge_is_throttled_per_user() {
    let (_db, server) = sqlite().await;
    let (secret, step) = two_factor_user(&server, "ada@example.com").await;
    let (pending, _) = server.login("ada@example.com", "correct horse").await;
    let good = totp(&secret, step + 1);
    let bad = ["000000", "111111", "222222", "333333", "444444", "555555"]
        .into_iter()
        .find(|c| (step - 1..=step + 2).all(|s| totp(&secret, s) != *c))
        .unwrap();
    for _ in 0..5 {
        server
            .post(
                "/v1/auth/two-factor-challenge",
                Some(&pending),
                json!({"code": bad}),
            )
            .await
            .expect_status(422);
    }
    // That token failed 5 times: revoked.
    server
        .post(
            "/v1/auth/two-factor-challenge",
            Some(&pending),
            json!({"code": good}),
        )
        .await
        .expect_unauthenticated();
    // Another login of the same user shares the user's count.
    let (other, _) = server.login("ada@example.com", "correct horse").await;
    let throttled = server
        .post(
            "/v1/auth/two-factor-challenge",
            Some(&other),
            json!({"code": good}),
        )
        .await;
    throttled.expect(429, r#"{"message":"Too Many Attempts."}"#);
    let retry: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    server
        .get("/v1/auth/user", Some(&other))
        .await
        .expect_second_factor_required();
}

#[tokio::test]
async fn two_factor_off_with_the_password_and_on_again() {
    let (_db, server) = sqlite().await;
    let (_, token) = server
        .register("Bo", "bo@example.com", "correct horse")
        .await;
    // Enabling again before confirming draws a new secret.
    let first = server
        .post_empty("/v1/auth/two-factor/enable", Some(&token))
        .await
        .expect_status(200);
    let enabled = server
        .post_empty("/v1/auth/two-factor/enable", Some(&token))
        .await
        .expect_status(200);
    let secret = enabled["secret"].as_str().unwrap().to_owned();
    assert_ne!(first["secret"], enabled["secret"]);
    server
        .post(
            "/v1/auth/two-factor/confirm",
            Some(&token),
            json!({"code": totp(&secret, current_step())}),
        )
        .await
        .expect_status(200);
    let (_, requires) = server.login("bo@example.com", "correct horse").await;
    assert!(requires);
    server
        .post_empty("/v1/auth/two-factor/enable", Some(&token))
        .await
        .expect(
            409,
            r#"{"message":"Two-factor authentication is already enabled."}"#,
        );
    let reply = server
        .delete(
            "/v1/auth/two-factor",
            Some(&token),
            Some(json!({"password": "correct horse"})),
        )
        .await;
    assert_eq!(reply.status, 204, "{reply:?}");
    let (_, requires) = server.login("bo@example.com", "correct horse").await;
    assert!(!requires);
    let user = server
        .get("/v1/auth/user", Some(&token))
        .await
        .expect_status(200);
    assert_eq!(user["two_factor_enabled"], false);
}

#[tokio::test]
async fn the_qr_code_of_the_secret_being_turned_on() {
    let (_db, server) = sqlite().await;
    const PATH: &str = "/v1/auth/two-factor/qr-code";
    server
        .get(PATH, None)
        .await
        .expect(401, r#"{"message":"Unauthenticated."}"#);
    let (_, token) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    server.get(PATH, Some(&token)).await.expect(
        409,
        r#"{"message":"Two-factor authentication is not being enabled: call POST /v1/auth/two-factor/enable first."}"#,
    );

    let enabled = server
        .post_empty("/v1/auth/two-factor/enable", Some(&token))
        .await
        .expect_status(200);
    let reply = server.get(PATH, Some(&token)).await;
    let qr = reply.expect_status(200);
    let mut fields: Vec<&str> = qr.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["svg", "url"]);
    assert_eq!(qr["url"], enabled["otpauth_url"]);
    let svg = qr["svg"].as_str().unwrap();
    assert!(
        svg.starts_with(
            r#"<?xml version="1.0" standalone="yes"?><svg xmlns="http://www.w3.org/2000/svg""#
        ) && svg.ends_with("</svg>"),
        "{svg}"
    );

    // Confirmed, the secret is not shown again.
    let secret = enabled["secret"].as_str().unwrap();
    server
        .post(
            "/v1/auth/two-factor/confirm",
            Some(&token),
            json!({"code": totp(secret, current_step())}),
        )
        .await
        .expect_status(200);
    server.get(PATH, Some(&token)).await.expect(
        409,
        r#"{"message":"Two-factor authentication is already enabled."}"#,
    );
    // A login waiting for its code gets the documented 403.
    let (pending, requires_2fa) = server.login("ada@example.com", "correct horse").await;
    assert!(requires_2fa);
    server
        .get(PATH, Some(&pending))
        .await
        .expect_second_factor_required();
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let (_db, server) = sqlite().await;
    let reply = server.get("/v1/openapi.json", None).await;
    let doc = reply.expect_status(200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut routes: Vec<String> = paths
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            "DELETE /v1/auth/two-factor",
            "DELETE /v1/profile/api-keys/{id}",
            "GET /v1/auth/two-factor/qr-code",
            "GET /v1/auth/user",
            "GET /v1/profile/api-keys",
            "POST /v1/auth/login",
            "POST /v1/auth/logout",
            "POST /v1/auth/register",
            "POST /v1/auth/two-factor-challenge",
            "POST /v1/auth/two-factor/confirm",
            "POST /v1/auth/two-factor/enable",
            "POST /v1/profile/api-keys",
            "POST /v1/profile/api-keys/{id}/regenerate",
        ]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer"})
    );
    // Protected routes name the scheme; register and login do not.
    assert_eq!(
        paths["/v1/auth/user"]["get"]["security"],
        json!([{"bearer": []}])
    );
    assert_eq!(paths["/v1/auth/register"]["post"]["security"], Value::Null);
    let created = &paths["/v1/profile/api-keys"]["post"]["responses"]["201"];
    assert_eq!(
        created["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/NewKeyResponse"
    );
}

/// A `users` row as a Laravel app with Fortify wrote it (password hashed and two-factor
/// columns encrypted by PHP: `account_api/testdata/fortify_row.php`) signs in here with
/// the same `APP_KEY`.
#[tokio::test]
async fn a_laravel_fortify_row_signs_in() {
    let row: Value =
        serde_json::from_str(include_str!("../account_api/testdata/fortify_row.json")).unwrap();
    let db = TestDb::new(Engine::Sqlite).await.unwrap();
    let mut config = db.config();
    config.app_key = Some(APP_KEY.to_owned());
    assert_eq!(row["app_key"], APP_KEY);
    let server = Server::start(&config).await;

    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    sqlx::query(
        "insert into users (name, email, password, two_factor_secret, two_factor_recovery_codes, \
         two_factor_confirmed_at, created_at, updated_at) \
         values ('Taylor', 'taylor@laravel.com', ?, ?, ?, '2024-05-01 10:00:00', \
         '2024-05-01 10:00:00', '2024-05-01 10:00:00')",
    )
    .bind(row["password"].as_str().unwrap())
    .bind(row["two_factor_secret"].as_str().unwrap())
    .bind(row["two_factor_recovery_codes"].as_str().unwrap())
    .execute(&pool)
    .await
    .unwrap();

    let (pending, requires) = server.login("taylor@laravel.com", "secret-password").await;
    assert!(requires);
    server
        .post(
            "/v1/auth/two-factor-challenge",
            Some(&pending),
            json!({"code": totp("JBSWY3DPEHPK3PXP", current_step())}),
        )
        .await
        .expect(200, r#"{"requires_2fa":false}"#);
    let user = server
        .get("/v1/auth/user", Some(&pending))
        .await
        .expect_status(200);
    assert_eq!(user["two_factor_enabled"], true);

    let (pending, _) = server.login("taylor@laravel.com", "secret-password").await;
    server
        .post(
            "/v1/auth/two-factor-challenge",
            Some(&pending),
            json!({"recovery_code": "aB3dE5gH7j-Kl9Mn0Pq2"}),
        )
        .await
        .expect(200, r#"{"requires_2fa":false}"#);
    // The codes left are written back in Laravel's format, with the code spent.
    let codes: String = sqlx::query_scalar(
        "select two_factor_recovery_codes from users where email = 'taylor@laravel.com'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let left = account_api::crypto::Encrypter::from_app_key(APP_KEY)
        .unwrap()
        .decrypt(&codes)
        .unwrap();
    let left: Vec<String> = serde_json::from_str(&left).unwrap();
    assert_eq!(left.len(), 7);
    assert!(!left.contains(&"aB3dE5gH7j-Kl9Mn0Pq2".to_owned()));
    server.stop().await;
}

#[tokio::test]
async fn a_restart_on_the_same_sqlite_file_keeps_users_keys_and_two_factor() {
    let db = TestDb::new(Engine::Sqlite).await.unwrap();
    let config = db.config();
    let server = Server::start(&config).await;
    let (_, token) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let key = server
        .post("/v1/profile/api-keys", Some(&token), json!({"name": "CI"}))
        .await
        .expect_status(201);
    let key = key["plain_text_token"].as_str().unwrap().to_owned();
    server
        .get("/v1/auth/user", Some(&key))
        .await
        .expect_status(200);
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
            json!({"code": totp(&secret, step)}),
        )
        .await
        .expect_status(200);
    server.stop().await;

    // The key file beside the database, owner-only.
    let key_file = db.dir().unwrap().join("app.sqlite3.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let server = Server::start(&config).await;
    server
        .get("/v1/auth/user", Some(&key))
        .await
        .expect_status(200);
    let keys = server
        .get("/v1/profile/api-keys", Some(&token))
        .await
        .expect_status(200);
    let ci = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "CI")
        .unwrap();
    assert!(ci["last_used_at"].is_string(), "{keys}");
    // The secret decrypts after the restart, and the code used before it is still used.
    let (pending, requires) = server.login("ada@example.com", "correct horse").await;
    assert!(requires);
    server
        .post(
            "/v1/auth/two-factor-challenge",
            Some(&pending),
            json!({"code": totp(&secret, step)}),
        )
        .await
        .expect_status(422);
    server
        .post(
            "/v1/auth/two-factor-challenge",
            Some(&pending),
            json!({"code": totp(&secret, step + 1)}),
        )
        .await
        .expect(200, r#"{"requires_2fa":false}"#);
    server.stop().await;
}

/// A Laravel app's database: `users` as Laravel's migration makes it (without Fortify's
/// columns) and `personal_access_tokens` as Sanctum's makes it, with a user and a token
/// Laravel issued. The service uses both as they are, adds only Fortify's nullable
/// two-factor columns, and the Laravel token and password work here.
#[tokio::test]
async fn a_laravel_database_is_used_as_it_is() {
    let row: Value =
        serde_json::from_str(include_str!("../account_api/testdata/fortify_row.json")).unwrap();
    let db = TestDb::new(Engine::Sqlite).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("{}?mode=rwc", db.url))
        .await
        .unwrap();
    for statement in [
        r#"create table "users" ("id" integer primary key autoincrement not null, "name" varchar not null, "email" varchar not null, "email_verified_at" datetime, "password" varchar not null, "remember_token" varchar, "created_at" datetime, "updated_at" datetime)"#,
        r#"create unique index "users_email_unique" on "users" ("email")"#,
        r#"create table "personal_access_tokens" ("id" integer primary key autoincrement not null, "tokenable_type" varchar not null, "tokenable_id" integer not null, "name" text not null, "token" varchar not null, "abilities" text, "last_used_at" datetime, "expires_at" datetime, "created_at" datetime, "updated_at" datetime)"#,
        r#"create index "personal_access_tokens_tokenable_type_tokenable_id_index" on "personal_access_tokens" ("tokenable_type", "tokenable_id")"#,
        r#"create unique index "personal_access_tokens_token_unique" on "personal_access_tokens" ("token")"#,
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    sqlx::query(
        "insert into users (name, email, password, created_at, updated_at) \
         values ('Taylor', 'taylor@laravel.com', ?, '2024-05-01 10:00:00', '2024-05-01 10:00:00')",
    )
    .bind(row["password"].as_str().unwrap())
    .execute(&pool)
    .await
    .unwrap();
    let laravel_token = "1|LaravelSanctumTokenLaravelSanctumToken12abcdef01";
    sqlx::query(
        "insert into personal_access_tokens (tokenable_type, tokenable_id, name, token, abilities, \
         created_at, updated_at) values ('App\\Models\\User', 1, 'laravel', ?, '[\"*\"]', \
         '2024-05-01 10:00:00', '2024-05-01 10:00:00')",
    )
    .bind(support::digest_hex(laravel_token))
    .execute(&pool)
    .await
    .unwrap();

    let server = Server::start(&db.config()).await;
    server
        .get("/v1/auth/user", Some(laravel_token))
        .await
        .expect(
            200,
            r#"{"id":1,"name":"Taylor","email":"taylor@laravel.com","two_factor_enabled":false}"#,
        );
    let (token, requires) = server.login("taylor@laravel.com", "secret-password").await;
    assert!(!requires);
    let keys = server
        .get("/v1/profile/api-keys", Some(&token))
        .await
        .expect_status(200);
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
    assert_eq!(keys[0]["name"], "laravel");
    assert_eq!(keys[0]["created_at"], "2024-05-01T10:00:00.000000Z");

    let columns: Vec<String> = sqlx::query_scalar("select name from pragma_table_info('users')")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        columns,
        [
            "id",
            "name",
            "email",
            "email_verified_at",
            "password",
            "remember_token",
            "created_at",
            "updated_at",
            "two_factor_secret",
            "two_factor_recovery_codes",
            "two_factor_confirmed_at",
        ]
    );
    // The user row written here is in Laravel's form.
    let (id, password, created): (i64, String, String) =
        sqlx::query_as("select id, password, created_at from users where id = 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (id, password.as_str()),
        (1, row["password"].as_str().unwrap())
    );
    assert_eq!(created, "2024-05-01 10:00:00");
    server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let (password, created): (String, String) =
        sqlx::query_as("select password, created_at from users where email = 'ada@example.com'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        password.starts_with("$2y$12$") && password.len() == 60,
        "{password}"
    );
    assert_eq!(created.len(), 19, "{created}");
    assert_eq!(&created[10..11], " ");
    server.stop().await;
}

/// The database gone: 503 `{"message":"Service Unavailable."}` from the handlers and from
/// the middleware, never a 401 or a 422.
#[tokio::test]
async fn a_failing_database_is_503() {
    let db = TestDb::new(Engine::Sqlite).await.unwrap();
    let app = account_api::App::start(&db.config()).await.unwrap();
    let pool = app.db().clone();
    let server = Server::serve(app).await;
    let (_, token) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    pool.close().await;
    let unavailable = r#"{"message":"Service Unavailable."}"#;
    server
        .post(
            "/v1/auth/register",
            None,
            json!({"name": "Bo", "email": "bo@example.com", "password": "correct horse"}),
        )
        .await
        .expect(503, unavailable);
    server
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "ada@example.com", "password": "correct horse"}),
        )
        .await
        .expect(503, unavailable);
    server
        .get("/v1/auth/user", Some(&token))
        .await
        .expect(503, unavailable);
    server
        .get("/v1/profile/api-keys", Some(&token))
        .await
        .expect(503, unavailable);
}

/// Two instances on one PostgreSQL database: a key regenerated or a token logged out on
/// one is refused by the other within a second with `KEYS_NOTIFY`, though the other had
/// it cached (for 5 s); on the instance that made the change, at once.
#[tokio::test]
async fn two_instances_with_keys_notify_follow_each_other_within_a_second() {
    let Some(db) = TestDb::new(Engine::Postgres).await else {
        return;
    };
    let mut config = db.config();
    config.keys_notify = true;
    let (one, two) = (Server::start(&config).await, Server::start(&config).await);
    let (_, token) = one
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let created = one
        .post("/v1/profile/api-keys", Some(&token), json!({"name": "ci"}))
        .await
        .expect_status(201);
    let (id, key) = (
        created["id"].as_u64().unwrap(),
        created["plain_text_token"].as_str().unwrap().to_owned(),
    );
    // Both cached on the second instance.
    two.get("/v1/auth/user", Some(&token))
        .await
        .expect_status(200);
    two.get("/v1/auth/user", Some(&key))
        .await
        .expect_status(200);

    let until_refused = async |token: &str| {
        let started = std::time::Instant::now();
        loop {
            let reply = two.get("/v1/auth/user", Some(token)).await;
            if reply.status == 401 {
                reply.expect_unauthenticated();
                return started.elapsed();
            }
            reply.expect_status(200);
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    one.post_empty(
        &format!("/v1/profile/api-keys/{id}/regenerate"),
        Some(&token),
    )
    .await
    .expect_status(200);
    one.get("/v1/auth/user", Some(&key))
        .await
        .expect_unauthenticated();
    let regenerated = until_refused(&key).await;
    one.post_empty("/v1/auth/logout", Some(&token))
        .await
        .expect_status(204);
    let logged_out = until_refused(&token).await;
    eprintln!(
        "second instance: regenerated key refused after {regenerated:?}, logged-out token after {logged_out:?}"
    );
    one.stop().await;
    two.stop().await;
    db.cleanup().await;
}

/// A query of the service's own that hangs (here the users table locked by another
/// client; in life a network partition: no answer and no error) is answered 503 once
/// `QUERY_TIMEOUT` has passed, not held until the request timeout answers 408 (outage
/// script, blackhole mode: `user,-22,29984,408`). The lock gone, the same request is 200.
#[tokio::test]
async fn a_hung_query_is_503_after_the_query_timeout() {
    use account_api::db::QUERY_TIMEOUT;
    use sqlx::Connection;
    use std::time::{Duration, Instant};

    let Some((db, server)) = support::start(Engine::Postgres).await else {
        return;
    };
    let (_, token) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    // The key is now in the key store's cache: only the handler's own query waits.
    server
        .get("/v1/auth/user", Some(&token))
        .await
        .expect_status(200);
    let mut locker = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("begin").execute(&mut locker).await.unwrap();
    sqlx::query("lock table users in access exclusive mode")
        .execute(&mut locker)
        .await
        .unwrap();
    let started = Instant::now();
    let reply = tokio::time::timeout(
        QUERY_TIMEOUT + Duration::from_secs(5),
        server.get("/v1/auth/user", Some(&token)),
    )
    .await;
    let waited = started.elapsed();
    sqlx::query("rollback").execute(&mut locker).await.unwrap();
    let reply = reply.unwrap_or_else(|_| panic!("no answer after {waited:?}"));
    reply.expect(503, r#"{"message":"Service Unavailable."}"#);
    assert!(
        waited >= QUERY_TIMEOUT && waited < QUERY_TIMEOUT + Duration::from_secs(2),
        "answered after {waited:?}"
    );
    server
        .get("/v1/auth/user", Some(&token))
        .await
        .expect_status(200);
    server.stop().await;
    db.cleanup().await;
}
