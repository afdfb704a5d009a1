//! Issuing: the rows `create` and `regenerate` write are those a Sanctum app writes, and
//! they are committed before the token is shown.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bearer_auth::{KeyGenerator, NewToken, StoreError, TokenHash, TokenStore, TokenVerifier};
use bearer_auth_sqlx::{Engine, SqlStore, chrono::FixedOffset};

use crate::common::{Kind, TestDb, bearer, on_every_engine, reason};

on_every_engine!(
    create_writes_the_row_a_sanctum_app_writes,
    create_and_regenerate_commit_before_returning_the_token,
    timestamps_are_written_in_the_configured_zone,
    an_expiry_mysql_cannot_hold_is_refused_at_creation,
    an_owner_the_column_cannot_hold_is_refused,
    a_database_failure_is_a_backend_error,
);

/// `Y-m-d H:i:s` as the engine prints a timestamp column.
fn is_laravel_timestamp(s: &str) -> bool {
    s.len() == 19
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b' ',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        })
}

async fn create_writes_the_row_a_sanctum_app_writes(db: &TestDb) {
    let store = SqlStore::builder(db.pool.clone())
        .key_generator(KeyGenerator::with_prefix("ph_").unwrap())
        .build();
    store.migrate().await.unwrap();
    // 2031-05-01T12:34:56.789Z: kept to the second.
    let expires = UNIX_EPOCH + Duration::from_millis(1_935_405_296_789);
    let issued = store
        .create(
            NewToken::new(7, "CI runner")
                .abilities(["servers:read", "servers/write", "é"])
                .expires_at(expires),
        )
        .await
        .unwrap();
    let id = issued.id();
    let plain = issued.plain_text_token().as_str();
    // `{id}|{token_prefix}{40 random}{crc32b}`.
    let (prefix, secret) = plain.split_once('|').unwrap();
    assert_eq!(prefix, id.to_string());
    assert_eq!(secret.len(), 3 + 40 + 8);
    assert!(
        KeyGenerator::with_prefix("ph_")
            .unwrap()
            .checksum_matches(secret)
    );

    let column = async |name: &str| db.column(name, id).await;
    assert_eq!(
        column("tokenable_type").await.as_deref(),
        Some("App\\Models\\User")
    );
    assert_eq!(column("tokenable_id").await.as_deref(), Some("7"));
    assert_eq!(column("name").await.as_deref(), Some("CI runner"));
    // Only the SHA-256 of the part after `|`, as 64 lower-case hex digits.
    assert_eq!(column("token").await, Some(TokenHash::of(secret).to_hex()));
    // Laravel's `json` cast: PHP's json_encode, `/` and non-ASCII escaped.
    assert_eq!(
        column("abilities").await.as_deref(),
        Some(r#"["servers:read","servers\/write","\u00e9"]"#)
    );
    assert_eq!(column("last_used_at").await, None);
    assert_eq!(
        column("expires_at").await.as_deref(),
        Some("2031-05-01 12:34:56")
    );
    let created = column("created_at").await.unwrap();
    assert!(is_laravel_timestamp(&created), "{created}");
    assert_eq!(column("updated_at").await, Some(created));
    // No fraction of a second anywhere, as Laravel writes them (SQLite keeps the text).
    if db.kind == Kind::Sqlite {
        let raw = db
            .texts(&format!(
                "select created_at || '|' || expires_at from personal_access_tokens where id = {id}"
            ))
            .await;
        assert!(!raw[0].as_deref().unwrap().contains('.'));
    }
}

async fn create_and_regenerate_commit_before_returning_the_token(db: &TestDb) {
    let store = db.store().await;
    // Another instance, on its own connections and without a cache: sees only what was
    // committed, as soon as it was.
    let other = SqlStore::builder(db.another_pool().await)
        .without_cache()
        .build();
    let issued = store
        .create(NewToken::new(7, "laptop").second_factor_pending(true))
        .await
        .unwrap();
    let first = issued.plain_text_token().as_str().to_owned();
    let principal = other.verify(&bearer(&first)).await.unwrap();
    assert_eq!(principal.id(), issued.id());
    assert!(principal.is_second_factor_pending());
    let before = other.get(&7, issued.id()).await.unwrap();

    // Regenerated in place: same id, name, abilities and expiry; a new created_at; the
    // old token refused at once, by the other instance too.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let regenerated = store.regenerate(&7, issued.id()).await.unwrap();
    assert_eq!(regenerated.id(), issued.id());
    assert_eq!(reason(other.verify(&bearer(&first)).await), "unknown");
    let second = regenerated.plain_text_token().as_str();
    assert_eq!(reason(other.verify(&bearer(second)).await), "ok");
    let after = other.get(&7, issued.id()).await.unwrap();
    assert_eq!((after.id, &after.name), (before.id, &before.name));
    assert_eq!(after.abilities, before.abilities);
    assert_eq!(after.expires_at, before.expires_at);
    assert!(after.second_factor_pending);
    assert!(after.created_at > before.created_at);
    assert_eq!(db.count_rows().await, 1);
    assert_eq!(
        db.column("token", issued.id()).await,
        Some(regenerated.plain_text_token().hash().to_hex())
    );
}

async fn timestamps_are_written_in_the_configured_zone(db: &TestDb) {
    db.store().await;
    let paris_summer = FixedOffset::east_opt(2 * 3600).unwrap();
    let store = SqlStore::builder(db.pool.clone())
        .timezone(paris_summer)
        .build();
    // 2031-05-01T12:34:56Z is 14:34:56 at +02:00.
    let expires = UNIX_EPOCH + Duration::from_secs(1_935_405_296);
    let issued = store
        .create(NewToken::new(7, "k").expires_at(expires))
        .await
        .unwrap();
    assert_eq!(
        db.column("expires_at", issued.id()).await.as_deref(),
        Some("2031-05-01 14:34:56")
    );
    // And read back as the same instant.
    let info = store.get(&7, issued.id()).await.unwrap();
    assert_eq!(info.expires_at, Some(expires));
    let created = info
        .created_at
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now - created < 5, "{created} vs {now}");
    // A store reading the same rows as UTC sees them two hours later.
    let utc = SqlStore::new(db.pool.clone());
    let as_utc = utc.get(&7, issued.id()).await.unwrap();
    assert_eq!(
        as_utc.expires_at,
        Some(expires + Duration::from_secs(2 * 3600))
    );
}

async fn an_expiry_mysql_cannot_hold_is_refused_at_creation(db: &TestDb) {
    let store = db.store().await;
    // 2038-01-19 03:14:07 UTC: the last second a TIMESTAMP holds.
    let last = UNIX_EPOCH + Duration::from_secs(2_147_483_647);
    let issued = store
        .create(NewToken::new(7, "last second").expires_at(last))
        .await
        .unwrap();
    assert_eq!(
        db.column("expires_at", issued.id()).await.as_deref(),
        Some("2038-01-19 03:14:07")
    );
    let beyond = store
        .create(NewToken::new(7, "too far").expires_at(last + Duration::from_secs(1)))
        .await;
    match store.engine() {
        Engine::MySql => {
            let Err(StoreError::Invalid(why)) = beyond else {
                panic!("{beyond:?}")
            };
            assert!(why.contains("2038-01-19 03:14:08"), "{why}");
            assert!(why.contains("MySQL's TIMESTAMP"), "{why}");
            assert_eq!(db.count_rows().await, 1);
            let error = StoreError::Invalid(why);
            assert_eq!(error.status(), 422);
        }
        _ => {
            let beyond = beyond.unwrap();
            assert_eq!(
                db.column("expires_at", beyond.id()).await.as_deref(),
                Some("2038-01-19 03:14:08")
            );
        }
    }
}

async fn an_owner_the_column_cannot_hold_is_refused(db: &TestDb) {
    let store = db.store().await;
    let owner = u64::MAX;
    let outcome = store.create(NewToken::new(owner, "k")).await;
    match store.engine() {
        // `bigint unsigned`.
        Engine::MySql => {
            let issued = outcome.unwrap();
            assert_eq!(store.list(&owner).await.unwrap()[0].id, issued.id());
            let principal = store
                .verify(&bearer(issued.plain_text_token().as_str()))
                .await
                .unwrap();
            assert_eq!(*principal.owner(), owner);
        }
        _ => {
            assert!(
                matches!(outcome, Err(StoreError::Invalid(_))),
                "{outcome:?}"
            );
            assert!(store.list(&owner).await.unwrap().is_empty());
            assert!(matches!(
                store.get(&owner, 1).await,
                Err(StoreError::NotFound(1))
            ));
            assert_eq!(db.count_rows().await, 0);
        }
    }
    // An owner or an id the columns cannot hold has no key: every operation on it is
    // the missing key's answer, never a backend error (a 503), on every engine.
    let key = store.create(NewToken::new(7, "k")).await.unwrap();
    for (owner, id) in [(owner, key.id()), (7, u64::MAX), (owner, u64::MAX)] {
        let missing = |outcome: Result<(), StoreError>| match outcome {
            Err(StoreError::NotFound(i)) if i == id => {}
            other => panic!("owner {owner}, id {id}: {other:?}"),
        };
        missing(store.get(&owner, id).await.map(drop));
        missing(store.regenerate(&owner, id).await.map(drop));
        missing(store.confirm_second_factor(&owner, id).await);
        missing(store.revoke(&owner, id).await);
    }
    if store.engine() != Engine::MySql {
        assert_eq!(store.revoke_all(&owner).await.unwrap(), 0);
    }
    // The key of owner 7 is untouched.
    assert_eq!(store.get(&7, key.id()).await.unwrap().id, key.id());
    assert!(
        store
            .verify(&bearer(key.plain_text_token().as_str()))
            .await
            .is_ok()
    );
}

async fn a_database_failure_is_a_backend_error(db: &TestDb) {
    let store = db.store().await;
    let issued = store.create(NewToken::new(7, "k")).await.unwrap();
    db.pool.close().await;
    let id = issued.id();
    let outcomes = [
        store.create(NewToken::new(7, "k")).await.map(drop),
        store.list(&7).await.map(drop),
        store.get(&7, id).await.map(drop),
        store.regenerate(&7, id).await.map(drop),
        store.revoke(&7, id).await,
        store.revoke_all(&7).await.map(drop),
        store.confirm_second_factor(&7, id).await,
        store.prune_expired(Duration::ZERO).await.map(drop),
        store.migrate().await,
    ];
    for outcome in outcomes {
        let error = outcome.unwrap_err();
        assert!(error.is_backend(), "{error:?}");
        assert_eq!(error.status(), 503);
        let source = std::error::Error::source(&error).unwrap().to_string();
        assert!(source.contains(" failed on "), "{source}");
    }
}
