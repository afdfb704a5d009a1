//! The core pipeline end to end, without a framework.

use bearer_auth::Authenticator;
use conformance::{expected_body, store_with_key};

#[tokio::test]
async fn issued_key_passes_and_wrong_secret_gets_documented_401() {
    let (store, token) = store_with_key().unwrap();
    let auth = Authenticator::new(store);
    let good = format!("Bearer {token}");
    assert!(
        auth.authenticate([good.as_bytes()])
            .await
            .unwrap()
            .is_some()
    );
    let rejection = auth
        .authenticate([&b"Bearer 1|wrong"[..]])
        .await
        .unwrap_err();
    assert_eq!(rejection.status(), 401);
    assert_eq!(Some(rejection.body()), expected_body(401));
}
