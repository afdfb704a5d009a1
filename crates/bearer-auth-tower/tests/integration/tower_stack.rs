//! The layer in a plain Tower stack: `ServiceBuilder`, a `service_fn` inner service with a
//! hyper-style body (`http_body_util::Full<Bytes>`), and a count of its calls.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use bearer_auth::AccessToken;
use bearer_auth_tower::{BearerAuthLayer, BearerAuthService, principal};
use bytes::Bytes;
use http::{Request, Response, header::AUTHORIZATION};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

use crate::{
    fixture::{Keys, Reply},
    table::{Log, rows},
};

/// An inner service that counts its calls and answers with the owner it was given.
fn counting(
    calls: &Arc<AtomicUsize>,
) -> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible>
+ Clone
+ Send
+ Sync
+ 'static {
    let counter = Arc::clone(calls);
    service_fn(move |request: Request<Full<Bytes>>| {
        counter.fetch_add(1, Ordering::SeqCst);
        let owner = principal::<AccessToken<String>>(request.extensions())
            .map(|token| token.owner().clone());
        async move {
            let body = owner.unwrap_or_else(|| "no principal".to_owned());
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        }
    })
}

async fn send<S>(service: &S, authorization: &[&str]) -> Reply
where
    S: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone,
{
    let mut request = Request::new(Full::new(Bytes::from_static(b"request body")));
    for value in authorization {
        request
            .headers_mut()
            .append(AUTHORIZATION, value.parse().unwrap());
    }
    let response = service.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes().to_vec(),
    }
}

#[tokio::test]
async fn refusals_never_call_the_inner_service() {
    let keys = Keys::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = counting(&calls);
    let service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(keys.verifier()))
        .service(inner);
    let mut passed = 0;
    for row in rows(&keys) {
        if row.path != "/v1/auth/user" {
            continue;
        }
        let reply = send(&service, &row.authorization()).await;
        if row.passes_layer() {
            passed += 1;
            assert_eq!(reply.status, 200, "{}", row.name);
        } else {
            row.check(&reply, &[]);
        }
        assert_eq!(calls.load(Ordering::SeqCst), passed, "{}", row.name);
    }
    assert!(passed > 0);
    assert!(
        rows(&keys)
            .iter()
            .filter(|row| row.path == "/v1/auth/user")
            .any(|row| matches!(row.log, Log::Refusal("backend")))
    );
}

#[tokio::test]
async fn inner_service_sees_the_principal_with_a_full_body() {
    let keys = Keys::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = counting(&calls);
    let service = ServiceBuilder::new()
        .layer(BearerAuthService::layer(keys.store.clone()).require_any(["servers:read"]))
        .service(inner);
    let reply = send(&service, &[&format!("Bearer {}", keys.limited)]).await;
    assert_eq!((reply.status, reply.body.as_slice()), (200, &b"bob"[..]));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn optional_without_credentials_calls_the_inner_service_without_principal() {
    let keys = Keys::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = counting(&calls);
    let service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(keys.store.clone()).optional())
        .service(inner);
    let reply = send(&service, &[]).await;
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (200, &b"no principal"[..])
    );
    let reply = send(&service, &["Bearer 1|wrong"]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn services_and_layers_are_send_sync_and_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>(_: &T) {}
    let keys = Keys::new();
    let layer = BearerAuthLayer::new(keys.verifier());
    assert_traits(&layer);
    let inner = counting(&Arc::new(AtomicUsize::new(0)));
    assert_traits(&tower::Layer::layer(&layer, inner));
}
