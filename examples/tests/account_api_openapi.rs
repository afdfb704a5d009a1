//! The OpenAPI document tells the truth: each answer the account API gives is listed, with
//! its schema, for the operation that gave it. Regression tests for what property-based testing against the
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
use support::{Engine, Reply, Server, TestDb};

async fn sqlite() -> (TestDb, Server) {
    let db = TestDb::new(Engine::Sqlite).await.unwrap();
    let server = Server::start(&db.config()).await;
    (db, server)
}

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
    assert_eq!(out.len(), 12, "{doc}");
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

/// Sends `body` as it is, with `content_type` if any.
async fn raw(
    server: &Server,
    method: Method,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Reply {
    let mut request = server
        .client
        .request(method, format!("{}{path}", server.base))
        .header("Authorization", format!("Bearer {token}"))
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    let response = request.send().await.unwrap();
    Reply {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
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
            let reply = raw(&server, method.clone(), &url, &token, content_type, body).await;
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
