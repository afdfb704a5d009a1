//! One suite written against the `TokenStore` trait alone, run on `MemoryStore` and on
//! `SqlStore` on every engine: code written against the trait works on either.

use std::{
    fmt::Debug,
    time::{Duration, SystemTime},
};

use bearer_auth::{
    AccessToken, Authenticator, MemoryStore, NewToken, StoreError, TokenStore, TokenVerifier,
};

use crate::common::{TestDb, bearer, on_every_engine, reason};

/// What an account API needs of a store: the trait, and verification.
trait Store: TokenStore + TokenVerifier<Principal = AccessToken<<Self as TokenStore>::Owner>> {}

impl<S> Store for S where
    S: TokenStore + TokenVerifier<Principal = AccessToken<<S as TokenStore>::Owner>>
{
}

fn not_found<T: Debug>(outcome: Result<T, StoreError>, id: u64) {
    match outcome {
        Err(StoreError::NotFound(i)) if i == id => {}
        other => panic!("expected NotFound({id}), got {other:?}"),
    }
}

async fn ok<S: Store>(store: &S, token: &str) -> AccessToken<S::Owner> {
    store.verify(&bearer(token)).await.unwrap()
}

async fn refused<S: Store>(store: &S, token: &str) -> &'static str {
    reason(store.verify(&bearer(token)).await)
}

/// The whole contract, for a store whose owners `alice` and `bob` differ.
async fn contract<S>(store: &S, alice: S::Owner, bob: S::Owner)
where
    S: Store,
    S::Owner: PartialEq + Debug,
{
    created_keys_verify_and_are_listed_for_their_owner_only(store, &alice, &bob).await;
    another_owners_key_is_a_missing_key(store, &alice, &bob).await;
    regenerate_replaces_the_secret_in_place(store, &alice).await;
    second_factor_is_pending_until_its_owner_confirms(store, &alice, &bob).await;
    revoke_and_revoke_all(store, &alice, &bob).await;
    expiry_and_pruning(store, &alice).await;
}

async fn created_keys_verify_and_are_listed_for_their_owner_only<S>(
    store: &S,
    alice: &S::Owner,
    bob: &S::Owner,
) where
    S: Store,
    S::Owner: PartialEq + Debug,
{
    let before = SystemTime::now() - Duration::from_secs(1);
    let expires = SystemTime::now() + Duration::from_secs(3600);
    let key = store
        .create(
            NewToken::new(alice.clone(), "laptop")
                .abilities(["servers:read", "servers/write"])
                .expires_at(expires),
        )
        .await
        .unwrap();
    let plain = key.plain_text_token().as_str().to_owned();
    assert!(plain.starts_with(&format!("{}|", key.id())));
    let principal = ok(store, &plain).await;
    assert_eq!(principal.id(), key.id());
    assert_eq!(principal.owner(), alice);
    assert!(principal.abilities().can("servers/write"));
    assert!(!principal.abilities().can("servers:delete"));

    let mine = store.list(alice).await.unwrap();
    let info = mine.iter().find(|i| i.id == key.id()).unwrap();
    assert_eq!(&*info.name, "laptop");
    assert_eq!(
        info.abilities.iter().collect::<Vec<_>>(),
        ["servers:read", "servers/write"]
    );
    assert!(info.created_at >= before);
    let reported = info.expires_at.unwrap();
    // To the second: the SQL store keeps Laravel's `Y-m-d H:i:s`.
    assert!(
        reported <= expires && expires.duration_since(reported).unwrap() < Duration::from_secs(1)
    );
    assert!(!info.second_factor_pending);
    // Never a secret, nor its digest.
    let printed = format!("{mine:?}");
    assert!(!printed.contains(key.plain_text_token().secret()));
    assert!(!printed.contains(&key.plain_text_token().hash().to_hex()));

    assert!(store.list(bob).await.unwrap().is_empty());
    assert_eq!(store.get(alice, key.id()).await.unwrap().id, key.id());
    store.revoke(alice, key.id()).await.unwrap();
}

async fn another_owners_key_is_a_missing_key<S>(store: &S, alice: &S::Owner, bob: &S::Owner)
where
    S: Store,
    S::Owner: PartialEq + Debug,
{
    let key = store
        .create(NewToken::new(alice.clone(), "alice's"))
        .await
        .unwrap();
    let id = key.id();
    let missing = id + 1_000_000;
    for (owner, id) in [(bob, id), (alice, missing)] {
        not_found(store.get(owner, id).await, id);
        not_found(store.regenerate(owner, id).await, id);
        not_found(store.confirm_second_factor(owner, id).await, id);
        not_found(store.revoke(owner, id).await, id);
    }
    assert_eq!(store.revoke_all(bob).await.unwrap(), 0);
    // Untouched by all of it.
    let principal = ok(store, key.plain_text_token().as_str()).await;
    assert_eq!(principal.owner(), alice);
    store.revoke(alice, id).await.unwrap();
}

async fn regenerate_replaces_the_secret_in_place<S>(store: &S, alice: &S::Owner)
where
    S: Store,
    S::Owner: PartialEq + Debug,
{
    let expires = SystemTime::now() + Duration::from_secs(7200);
    let old = store
        .create(
            NewToken::new(alice.clone(), "ci")
                .abilities(["deploy"])
                .expires_at(expires),
        )
        .await
        .unwrap();
    let before = store.get(alice, old.id()).await.unwrap();
    ok(store, old.plain_text_token().as_str()).await;
    let new = store.regenerate(alice, old.id()).await.unwrap();
    assert_eq!(new.id(), old.id());
    assert_ne!(
        new.plain_text_token().secret(),
        old.plain_text_token().secret()
    );
    // The old token is refused the moment regenerate returns, with or without its id.
    assert_eq!(
        refused(store, old.plain_text_token().as_str()).await,
        "unknown"
    );
    assert_eq!(
        refused(store, old.plain_text_token().secret()).await,
        "unknown"
    );
    let principal = ok(store, new.plain_text_token().as_str()).await;
    assert!(principal.abilities().can("deploy"));
    let after = store.get(alice, old.id()).await.unwrap();
    assert_eq!(after.name, before.name);
    assert_eq!(after.abilities, before.abilities);
    assert_eq!(after.expires_at, before.expires_at);
    assert!(after.created_at >= before.created_at);
    store.revoke(alice, old.id()).await.unwrap();
}

async fn second_factor_is_pending_until_its_owner_confirms<S>(
    store: &S,
    alice: &S::Owner,
    bob: &S::Owner,
) where
    S: Store,
    S::Owner: PartialEq + Debug,
{
    let key = store
        .create(NewToken::new(alice.clone(), "login").second_factor_pending(true))
        .await
        .unwrap();
    let plain = key.plain_text_token().as_str();
    assert!(ok(store, plain).await.is_second_factor_pending());
    assert!(
        store
            .get(alice, key.id())
            .await
            .unwrap()
            .second_factor_pending
    );
    // The default policy: 403 two-factor.
    let auth = Authenticator::new(store);
    let header = format!("Bearer {plain}");
    let rejection = auth.authenticate([header.as_bytes()]).await.unwrap_err();
    assert_eq!(rejection.status(), 403);
    assert_eq!(rejection.reason(), "second_factor");

    not_found(store.confirm_second_factor(bob, key.id()).await, key.id());
    assert!(ok(store, plain).await.is_second_factor_pending());
    store.confirm_second_factor(alice, key.id()).await.unwrap();
    assert!(!ok(store, plain).await.is_second_factor_pending());
    assert!(
        !store
            .get(alice, key.id())
            .await
            .unwrap()
            .second_factor_pending
    );
    // Again: nothing left pending, still fine.
    store.confirm_second_factor(alice, key.id()).await.unwrap();
    // Regenerating keeps the state; a new pending key starts pending again.
    store.regenerate(alice, key.id()).await.unwrap();
    assert!(
        !store
            .get(alice, key.id())
            .await
            .unwrap()
            .second_factor_pending
    );
    store.revoke(alice, key.id()).await.unwrap();
}

async fn revoke_and_revoke_all<S>(store: &S, alice: &S::Owner, bob: &S::Owner)
where
    S: Store,
    S::Owner: PartialEq + Debug,
{
    let one = store
        .create(NewToken::new(alice.clone(), "one"))
        .await
        .unwrap();
    let two = store
        .create(NewToken::new(alice.clone(), "two"))
        .await
        .unwrap();
    let three = store
        .create(NewToken::new(alice.clone(), "three").second_factor_pending(true))
        .await
        .unwrap();
    let bobs = store
        .create(NewToken::new(bob.clone(), "bob"))
        .await
        .unwrap();

    store.revoke(alice, one.id()).await.unwrap();
    assert_eq!(
        refused(store, one.plain_text_token().as_str()).await,
        "unknown"
    );
    not_found(store.revoke(alice, one.id()).await, one.id());
    not_found(store.get(alice, one.id()).await, one.id());

    assert_eq!(store.revoke_all(alice).await.unwrap(), 2);
    for gone in [&two, &three] {
        assert_eq!(
            refused(store, gone.plain_text_token().as_str()).await,
            "unknown"
        );
    }
    assert!(store.list(alice).await.unwrap().is_empty());
    assert_eq!(store.revoke_all(alice).await.unwrap(), 0);
    // Bob's key is not Alice's.
    assert_eq!(
        ok(store, bobs.plain_text_token().as_str()).await.owner(),
        bob
    );
    assert_eq!(store.revoke_all(bob).await.unwrap(), 1);
}

async fn expiry_and_pruning<S>(store: &S, alice: &S::Owner)
where
    S: Store,
    S::Owner: PartialEq + Debug,
{
    let now = SystemTime::now();
    let long_ago = store
        .create(
            NewToken::new(alice.clone(), "long ago").expires_at(now - Duration::from_secs(7200)),
        )
        .await
        .unwrap();
    let recently = store
        .create(NewToken::new(alice.clone(), "recently").expires_at(now - Duration::from_secs(60)))
        .await
        .unwrap();
    let fresh = store
        .create(NewToken::new(alice.clone(), "fresh").expires_in(Duration::from_secs(3600)))
        .await
        .unwrap();
    let forever = store
        .create(NewToken::new(alice.clone(), "forever"))
        .await
        .unwrap();
    for expired in [&long_ago, &recently] {
        assert_eq!(
            refused(store, expired.plain_text_token().as_str()).await,
            "expired"
        );
    }
    assert_eq!(
        store
            .prune_expired(Duration::from_secs(3600))
            .await
            .unwrap(),
        1
    );
    let left: Vec<u64> = store
        .list(alice)
        .await
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(left, [recently.id(), fresh.id(), forever.id()]);
    assert_eq!(store.prune_expired(Duration::ZERO).await.unwrap(), 1);
    let left: Vec<u64> = store
        .list(alice)
        .await
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(left, [fresh.id(), forever.id()]);
    ok(store, fresh.plain_text_token().as_str()).await;
    assert_eq!(store.revoke_all(alice).await.unwrap(), 2);
}

#[tokio::test]
async fn memory_store() {
    let store: MemoryStore<u64> = MemoryStore::new();
    contract(&store, 7, 8).await;
    assert!(store.is_empty());
}

on_every_engine!(sql_store);

async fn sql_store(db: &TestDb) {
    let store = db.store().await;
    contract(&store, 7, 8).await;
    assert_eq!(db.count_rows().await, 0);
    // Through `dyn`, as an application holding `Arc<dyn TokenStore>` would.
    let shared: std::sync::Arc<dyn TokenStore<Owner = u64>> = std::sync::Arc::new(store);
    let key = shared.create(NewToken::new(9, "dyn")).await.unwrap();
    assert_eq!(shared.list(&9).await.unwrap()[0].id, key.id());
}
