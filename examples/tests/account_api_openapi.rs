//! The OpenAPI document tells the truth: each answer the account API gives is listed, with
//! its schema, for the operation that gave it; and requests racing with a revocation get
//! a documented answer. Regression tests for what property-based testing against the
//! document found (`tests/schemathesis.sh`).

#![allow(clippy::unwrap_used)]

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use account_api::{App, KeyStore, Keys, crypto::Encrypter, db::Db};
use bearer_auth::{
    AccessToken, BearerToken, IssuedToken, MemoryStore, NewToken, Rejection, StoreError, TokenInfo,
    TokenStore, TokenVerifier,
};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Engine, Reply, Server, TestDb, raw, sqlite};

async fn document(server: &Server) -> Value {
    server
        .get("/v1/openapi.json", None)
        .await
        .expect_status(200)
}

/// Every operation of the document: (method, path template, operation).
fn operations(doc: &Value) -> Vec<(Method, String, Value)> {
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            out.push((method, path.clone(), op.clone()));
        }
    }
    assert_eq!(out.len(), 13, "{doc}");
    out
}

/// Asserts that the document lists `reply`'s status for this operation, with a JSON body
/// of schema `schema` (a component's name).
#[track_caller]
fn assert_documented(method: &Method, path: &str, op: &Value, reply: &Reply, schema: &str) {
    let status = reply.status.as_str();
    let response = &op["responses"][status];
    assert!(
        response.is_object(),
        "{method} {path}: {status} is not in the document ({:?})",
        op["responses"]
            .as_object()
            .map(|r| r.keys().collect::<Vec<_>>())
    );
    assert_eq!(
        response["content"]["application/json"]["schema"]["$ref"],
        format!("#/components/schemas/{schema}"),
        "{method} {path}: {status}"
    );
}

/// `path` with its `{id}` set.
fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
}

/// Every route that reads a JSON body answers 400, 413 and 415 to a body that is not one,
/// and its document says so (schemathesis: "Undocumented status code").
#[tokio::test]
async fn answers_to_bodies_that_are_not_json_are_documented() {
    let (_db, server) = sqlite().await;
    let (_, token) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let doc = document(&server).await;
    let json = Some("application/json");
    let mut with_body = 0;
    for (method, path, op) in operations(&doc) {
        if op["requestBody"].is_null() {
            continue;
        }
        with_body += 1;
        let url = concrete(&path);
        let cases: [(Option<&str>, Vec<u8>, u16, &str); 4] = [
            (
                None,
                b"{}".to_vec(),
                415,
                r#"{"message":"The request body must be JSON (Content-Type: application/json)."}"#,
            ),
            (
                json,
                b"{".to_vec(),
                400,
                r#"{"message":"The request body is not valid JSON."}"#,
            ),
            (
                json,
                b"[]".to_vec(),
                400,
                r#"{"message":"The request body must be a JSON object."}"#,
            ),
            (
                json,
                format!(r#"{{"name":"{}"}}"#, "x".repeat(65 * 1024)).into_bytes(),
                413,
                r#"{"message":"The request body is too large."}"#,
            ),
        ];
        for (content_type, body, status, expected) in cases {
            let reply = raw(
                &server,
                method.clone(),
                &url,
                Some(&token),
                content_type,
                body,
            )
            .await;
            reply.expect(status, expected);
            assert_documented(&method, &path, &op, &reply, "MessageBody");
        }
    }
    assert_eq!(with_body, 6);
}

/// A request each operation accepts, with its body.
fn request_for(method: &Method, path: &str) -> Option<Value> {
    match (method.as_str(), path) {
        ("POST", "/v1/auth/register") => {
            Some(json!({"name": "Bo", "email": "bo@example.com", "password": "correct horse"}))
        }
        ("POST", "/v1/auth/login") => {
            Some(json!({"email": "ada@example.com", "password": "correct horse"}))
        }
        ("POST", "/v1/auth/two-factor-challenge" | "/v1/auth/two-factor/confirm") => {
            Some(json!({"code": "123456"}))
        }
        ("DELETE", "/v1/auth/two-factor") => Some(json!({"password": "correct horse"})),
        ("POST", "/v1/profile/api-keys") => Some(json!({"name": "CI"})),
        _ => None,
    }
}

/// With the database gone every operation answers 503 `{"message":"Service
/// Unavailable."}`, and its document says so.
#[tokio::test]
async fn a_failing_database_is_documented_on_every_operation() {
    let db = TestDb::new(Engine::Sqlite).await.unwrap();
    let app = account_api::App::start(&db.config()).await.unwrap();
    let pool = app.db().clone();
    let server = Server::serve(app).await;
    let (_, token) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let doc = document(&server).await;
    pool.close().await;
    for (method, path, op) in operations(&doc) {
        let body = request_for(&method, &path);
        let reply = server
            .send(method.clone(), &concrete(&path), Some(&token), body)
            .await;
        reply.expect(503, r#"{"message":"Service Unavailable."}"#);
        assert_documented(&method, &path, &op, &reply, "MessageBody");
    }
}

/// A key store that lets a test revoke a key between two steps of one request, as a
/// concurrent request (`DELETE /v1/profile/api-keys/{id}` on another connection) can:
/// right after the middleware accepted it, or right after the handler created it.
#[derive(Debug, Default)]
struct RevokedMeanwhile {
    inner: MemoryStore<u64>,
    /// Revoke the next token the middleware accepts.
    after_verify: AtomicBool,
    /// Revoke the next key created (the owner's id + 1; 0: off).
    after_create: AtomicU64,
}

#[bearer_auth::async_trait]
impl TokenVerifier for RevokedMeanwhile {
    type Principal = AccessToken<u64>;

    async fn verify(&self, token: &BearerToken) -> Result<AccessToken<u64>, Rejection> {
        let principal = self.inner.verify(token).await?;
        if self.after_verify.swap(false, Ordering::SeqCst) {
            TokenStore::revoke(&self.inner, principal.owner(), principal.id())
                .await
                .unwrap();
        }
        Ok(principal)
    }
}

#[bearer_auth::async_trait]
impl TokenStore for RevokedMeanwhile {
    type Owner = u64;

    async fn create(&self, new: NewToken<u64>) -> Result<IssuedToken, StoreError> {
        let issued = TokenStore::create(&self.inner, new).await?;
        let owner = self.after_create.swap(0, Ordering::SeqCst);
        if owner != 0 {
            TokenStore::revoke(&self.inner, &(owner - 1), issued.id())
                .await
                .unwrap();
        }
        Ok(issued)
    }
    async fn list(&self, owner: &u64) -> Result<Vec<TokenInfo<u64>>, StoreError> {
        TokenStore::list(&self.inner, owner).await
    }
    async fn get(&self, owner: &u64, id: u64) -> Result<TokenInfo<u64>, StoreError> {
        TokenStore::get(&self.inner, owner, id).await
    }
    async fn regenerate(&self, owner: &u64, id: u64) -> Result<IssuedToken, StoreError> {
        TokenStore::regenerate(&self.inner, owner, id).await
    }
    async fn revoke(&self, owner: &u64, id: u64) -> Result<(), StoreError> {
        TokenStore::revoke(&self.inner, owner, id).await
    }
    async fn revoke_all(&self, owner: &u64) -> Result<u64, StoreError> {
        TokenStore::revoke_all(&self.inner, owner).await
    }
    async fn confirm_second_factor(&self, owner: &u64, id: u64) -> Result<(), StoreError> {
        TokenStore::confirm_second_factor(&self.inner, owner, id).await
    }
    async fn prune_expired(&self, older_than: Duration) -> Result<u64, StoreError> {
        TokenStore::prune_expired(&self.inner, older_than).await
    }
}

#[bearer_auth::async_trait]
impl KeyStore for RevokedMeanwhile {}

/// The service on SQLite with its keys in a [`RevokedMeanwhile`].
async fn racing() -> (TestDb, Server, Arc<RevokedMeanwhile>) {
    let db = TestDb::new(Engine::Sqlite).await.unwrap();
    let config = db.config();
    let pool = Db::connect(&config.database_url).await.unwrap();
    pool.migrate().await.unwrap();
    let keys = Arc::new(RevokedMeanwhile::default());
    let encrypter = Encrypter::from_app_key(support::APP_KEY).unwrap();
    let app = App::new(pool, Arc::clone(&keys) as Keys, encrypter, &config);
    (db, Server::serve(app).await, keys)
}

/// A logout whose token another request revoked after the middleware accepted it: 204
/// (the token is refused, as logging out asks), not an undocumented 404 (schemathesis:
/// "Undocumented status code: 404" on `POST /v1/auth/logout`).
#[tokio::test]
async fn a_logout_of_a_token_revoked_meanwhile_is_204() {
    let (_db, server, keys) = racing().await;
    let (_, token) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    keys.after_verify.store(true, Ordering::SeqCst);
    let reply = server.post_empty("/v1/auth/logout", Some(&token)).await;
    assert_eq!(reply.status, 204, "{reply:?}");
    assert_eq!(reply.body, "");
    server
        .get("/v1/auth/user", Some(&token))
        .await
        .expect_unauthenticated();
}

/// A two-factor challenge passed with a token another request revoked after the
/// middleware accepted it: the documented 401, not an undocumented 404.
#[tokio::test]
async fn a_challenge_of_a_token_revoked_meanwhile_is_401() {
    let (_db, server, keys) = racing().await;
    let (_, token) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let enabled = server
        .post_empty("/v1/auth/two-factor/enable", Some(&token))
        .await
        .expect_status(200);
    let code = support::totp(enabled["secret"].as_str().unwrap(), support::current_step());
    let confirmed = server
        .post(
            "/v1/auth/two-factor/confirm",
            Some(&token),
            json!({"code": code}),
        )
        .await
        .expect_status(200);
    let recovery_code = confirmed["recovery_codes"][0].as_str().unwrap().to_owned();
    let (pending, requires_2fa) = server.login("ada@example.com", "correct horse").await;
    assert!(requires_2fa);
    keys.after_verify.store(true, Ordering::SeqCst);
    server
        .post(
            "/v1/auth/two-factor-challenge",
            Some(&pending),
            json!({"recovery_code": recovery_code}),
        )
        .await
        .expect(401, r#"{"message":"Unauthenticated."}"#);
}

/// A key revoked by another request the moment it was created: 201 with the key as it
/// was made (its token refused, as after any revocation), not an undocumented 404.
#[tokio::test]
async fn a_key_revoked_the_moment_it_was_created_is_still_201() {
    let (_db, server, keys) = racing().await;
    let (id, token) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    keys.after_create.store(id + 1, Ordering::SeqCst);
    let reply = server
        .post(
            "/v1/profile/api-keys",
            Some(&token),
            json!({"name": "CI", "abilities": ["read"], "expires_at": "2100-01-01T00:00:00Z"}),
        )
        .await;
    let key = reply.expect_status(201);
    let created_at = key["created_at"].as_str().unwrap();
    assert!(created_at.ends_with(".000000Z"), "{created_at}");
    let plain = key["plain_text_token"].as_str().unwrap();
    assert_eq!(
        json!([key["id"], key["name"], key["abilities"], key["expires_at"]]),
        json!([
            plain.split('|').next().unwrap().parse::<u64>().unwrap(),
            "CI",
            ["read"],
            "2100-01-01T00:00:00.000000Z"
        ])
    );
    server
        .get("/v1/auth/user", Some(plain))
        .await
        .expect_unauthenticated();
}

/// Whether `schema` (of the subset the document uses for a field: `anyOf`, `type`,
/// `pattern`, `format: date-time`) admits `value`.
fn admits(schema: &Value, value: &Value) -> bool {
    if let Some(any) = schema["anyOf"].as_array() {
        return any.iter().any(|s| admits(s, value));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        other => panic!("a schema without a type: {other}"),
    };
    let typed = types.iter().any(|t| match *t {
        "null" => value.is_null(),
        "string" => value.is_string(),
        other => panic!("type {other}"),
    });
    let Some(text) = value.as_str().filter(|_| typed) else {
        return typed;
    };
    let rfc3339 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$";
    schema["pattern"]
        .as_str()
        .is_none_or(|p| regex::Regex::new(p).unwrap().is_match(text))
        && (schema["format"] != "date-time" || regex::Regex::new(rfc3339).unwrap().is_match(text))
}

/// The `expires_at` values the API takes (RFC 3339, Laravel's `Y-m-d H:i:s`, and blank
/// or null for never, strings trimmed) are the ones the document admits (schemathesis:
/// "Schema-violating request accepted", `"expires_at": ""`).
#[tokio::test]
async fn the_document_admits_every_expires_at_the_api_takes() {
    let (_db, server) = sqlite().await;
    let (_, token) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let doc = document(&server).await;
    let schema = &doc["components"]["schemas"]["CreateKeyRequest"]["properties"]["expires_at"];
    let never = Value::Null;
    let in_2030 = json!("2030-01-01T00:00:00.000000Z");
    for (value, stored) in [
        (json!(null), &never),
        (json!(""), &never),
        (json!("  "), &never),
        (json!("2030-01-01T00:00:00Z"), &in_2030),
        (json!("2030-01-01T02:00:00+02:00"), &in_2030),
        (json!("2030-01-01 00:00:00"), &in_2030),
        (json!(" 2030-01-01 00:00:00 "), &in_2030),
    ] {
        let key = server
            .post(
                "/v1/profile/api-keys",
                Some(&token),
                json!({"name": "k", "expires_at": value}),
            )
            .await
            .expect_status(201);
        assert_eq!(&key["expires_at"], stored, "{value}");
        assert!(
            admits(schema, &value),
            "the document refuses {value}: {schema}"
        );
    }
    for value in [json!("soon"), json!("2030-01-01"), json!(5)] {
        let reply = server
            .post(
                "/v1/profile/api-keys",
                Some(&token),
                json!({"name": "k", "expires_at": value}),
            )
            .await;
        assert_eq!(reply.status, 422, "{value}: {reply:?}");
        if value.is_string() {
            assert!(!admits(schema, &value), "the document admits {value}");
        }
    }
}

/// An empty array is not a missing `expires_at` (a key that never expires) but a value of
/// the wrong type, as Laravel's validator has it: 422, and the document does not admit it
/// either (schemathesis: "Schema-violating request accepted", `"expires_at": []`).
#[tokio::test]
async fn an_empty_array_is_not_a_missing_expires_at() {
    let (_db, server) = sqlite().await;
    let (_, token) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let doc = document(&server).await;
    let schema = &doc["components"]["schemas"]["CreateKeyRequest"]["properties"]["expires_at"];
    assert!(!admits(schema, &json!([])));
    server
        .post(
            "/v1/profile/api-keys",
            Some(&token),
            json!({"name": "k", "expires_at": []}),
        )
        .await
        .expect(
            422,
            r#"{"message":"The expires at field must be a string.","errors":{"expires_at":["The expires at field must be a string."]}}"#,
        );
    assert_eq!(
        server
            .get("/v1/profile/api-keys", Some(&token))
            .await
            .expect_status(200)
            .as_array()
            .unwrap()
            .len(),
        1,
        "only the login token"
    );
}

/// Whether an object schema of the document's components (`required`, `properties` of
/// type `string` or `boolean`, `additionalProperties: false`) admits `value`.
fn object_admits(doc: &Value, schema: &Value, value: &Value) -> bool {
    let schema = match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    };
    let Some(fields) = value.as_object() else {
        return false;
    };
    let properties = schema["properties"].as_object().unwrap();
    let required = schema["required"].as_array().cloned().unwrap_or_default();
    required
        .iter()
        .all(|name| fields.contains_key(name.as_str().unwrap()))
        && fields
            .iter()
            .all(|(name, field)| match properties.get(name) {
                Some(property) => match property["type"].as_str().unwrap() {
                    "string" => field.is_string(),
                    "boolean" => field.is_boolean(),
                    other => panic!("type {other}"),
                },
                None => schema["additionalProperties"] != json!(false),
            })
}

/// Each 403 body of an account route is admitted by exactly one of the `oneOf` shapes the
/// document gives it (schemathesis: "`{"message":"Invalid ability provided."}` is valid
/// under more than one of the schemas listed in the 'oneOf' keyword").
#[tokio::test]
async fn each_403_body_is_exactly_one_documented_shape() {
    let (_db, server) = sqlite().await;
    let (_, token) = server
        .register("Ada", "ada@example.com", "correct horse")
        .await;
    let narrow = server
        .create_key(&token, json!({"name": "k", "abilities": ["servers:read"]}))
        .await;
    support::two_factor_user(&server, "grace@example.com").await;
    let (pending, requires_2fa) = server.login("grace@example.com", "correct horse").await;
    assert!(requires_2fa);

    let doc = document(&server).await;
    let shapes = doc["paths"]["/v1/profile/api-keys"]["get"]["responses"]["403"]["content"]
        ["application/json"]["schema"]["oneOf"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(shapes.len(), 2, "{shapes:?}");
    for token in [&narrow, &pending] {
        let reply = server.get("/v1/profile/api-keys", Some(token)).await;
        assert_eq!(reply.status, 403, "{reply:?}");
        let body = reply.json();
        let admitted = shapes
            .iter()
            .filter(|shape| object_admits(&doc, shape, &body))
            .count();
        assert_eq!(
            admitted, 1,
            "{body} is admitted by {admitted} of {shapes:?}"
        );
    }
}
