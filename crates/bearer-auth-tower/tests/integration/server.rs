//! Every row through a real server on loopback, with a real HTTP client.

use crate::{
    fixture::{Keys, Server, app},
    table::{WIRE, rows},
};

#[tokio::test]
async fn every_row_over_http() {
    let keys = Keys::new();
    let server = Server::start(app(&keys)).await;
    for row in rows(&keys) {
        let reply = server
            .send(row.method.clone(), row.path, &row.authorization())
            .await;
        row.check(&reply, WIRE);
    }
}

#[tokio::test]
async fn a_key_revoked_while_serving_is_refused_at_once() {
    let keys = Keys::new();
    let server = Server::start(app(&keys)).await;
    let good = format!("Bearer {}", keys.ordinary);
    let reply = server
        .send(http::Method::GET, "/v1/auth/user", &[&good])
        .await;
    assert_eq!(reply.status, 200);
    assert!(keys.store.revoke(&"alice".to_owned(), keys.ordinary_id));
    let reply = server
        .send(http::Method::GET, "/v1/auth/user", &[&good])
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body, bearer_auth::UNAUTHENTICATED_BODY);
}
