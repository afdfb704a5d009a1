//! Rows and requests the store must survive: expiries no Laravel timestamp holds,
//! timestamps no Laravel app reads, rows of a `tokenable_type` that differs from the
//! store's only in case, accents or trailing spaces, and a key created while
//! `revoke_all` runs. Each answers as documented: never a panic, never another type's
//! key accepted.

use std::time::Duration;

use bearer_auth::{NewToken, StoreError, TokenHash, TokenStore, TokenVerifier};
use bearer_auth_sqlx::{Pool, SqlStore, chrono::FixedOffset, sqlx};

use crate::common::{Kind, LaravelRow, TestDb, bearer, laravel_now, on_every_engine, reason};

on_every_engine!(
    an_expiry_past_year_9999_is_refused_in_every_zone,
    timestamps_no_laravel_app_reads_count_as_expired,
    rows_of_a_type_alike_but_for_case_accents_or_spaces_are_not_this_stores,
    revoke_all_evicts_a_key_created_while_it_ran,
);

/// An expiry a client chose (`expires_in(u32::MAX days)`): refused with
/// `StoreError::Invalid` (422) on every engine and in every zone, never stored (on
/// PostgreSQL `timestamp(0)` rounded it past what can be read back) and never a panic
/// (east of UTC the conversion to local time overflowed).
async fn an_expiry_past_year_9999_is_refused_in_every_zone(db: &TestDb) {
    let far = Duration::from_secs(u64::from(u32::MAX) * 86_400);
    for hours in [0, 1, -5, 14] {
        let zone = FixedOffset::east_opt(hours * 3600).unwrap();
        let store = SqlStore::builder(db.pool.clone()).timezone(zone).build();
        store.migrate().await.unwrap();
        let s = store.clone();
        let created =
            tokio::spawn(
                async move { s.create(NewToken::new(7, "forever").expires_in(far)).await },
            )
            .await
            .expect("create panicked");
        assert!(
            matches!(created, Err(StoreError::Invalid(_))),
            "{:?} at {hours:+} h: {:?}",
            db.kind,
            created.map(|k| k.id())
        );
        let listed = store.list(&7).await.unwrap();
        assert!(listed.is_empty(), "{:?}: {listed:?}", db.kind);
    }
    // The last second Laravel's timestamps hold is still taken where the column holds it.
    if db.kind != Kind::Mysql {
        let store = db.store().await;
        let last = std::time::UNIX_EPOCH + Duration::from_secs(253_402_300_799);
        let left = last.duration_since(std::time::SystemTime::now()).unwrap();
        let key = store
            .create(NewToken::new(7, "9999").expires_in(left))
            .await
            .unwrap();
        assert_eq!(
            reason(store.verify(&bearer(key.plain_text_token().as_str())).await),
            "ok"
        );
    }
}

/// PostgreSQL's `infinity` and `-infinity` and a year past chrono's (270000), and a
/// MySQL zero date (what a non-strict server stores for an expiry past 2038, or an
/// administrator's `set expires_at = 0`; sqlx reads it as NULL, "never expires"):
/// `expires_at` values no Laravel app reads as a time to come. The key is refused as
/// expired (401), as Laravel refuses it, and its owner's list still answers: no panic
/// in sqlx's decoding, no 503.
async fn timestamps_no_laravel_app_reads_count_as_expired(db: &TestDb) {
    let values: &[&str] = match db.kind {
        Kind::Postgres => &["infinity", "-infinity", "270000-01-01 00:00:00"],
        Kind::Mysql => &["0000-00-00 00:00:00"],
        Kind::Sqlite => return,
    };
    let store = SqlStore::builder(db.pool.clone()).without_cache().build();
    store.migrate().await.unwrap();
    for (i, value) in values.iter().enumerate() {
        let secret = format!("unreadable-expiry-secret-{i}");
        let hex = TokenHash::of(&secret).to_hex();
        let id = db
            .insert_laravel_row(LaravelRow::user_token(&hex, &laravel_now(0)))
            .await;
        let update = format!(
            "update personal_access_tokens set expires_at = '{value}', created_at = '{value}', \
             last_used_at = '{value}' where id = {id}"
        );
        let statement = match db.kind {
            Kind::Mysql => format!("set session sql_mode = ''; {update}"),
            _ => update,
        };
        db.exec(&[&statement]).await;
        let s = store.clone();
        let token = bearer(&format!("{id}|{secret}"));
        let verified = tokio::spawn(async move { reason(s.verify(&token).await) })
            .await
            .expect("verify panicked");
        assert_eq!(verified, "expired", "{:?} expires_at = {value}", db.kind);
        let s = store.clone();
        let listed = tokio::spawn(async move { s.list(&7).await })
            .await
            .expect("list panicked")
            .unwrap();
        let info = listed.iter().find(|k| k.id == id).unwrap();
        assert!(info.last_used_at.is_none(), "{value}: {info:?}");
        db.exec(&[&format!(
            "delete from personal_access_tokens where id = {id}"
        )])
        .await;
    }
}

/// A store serving `App\Models\User` never accepts, lists or deletes rows whose
/// `tokenable_type` differs only in case, accents or trailing spaces (MySQL compares
/// under the column's `utf8mb4_unicode_ci` collation, blind to all three).
async fn rows_of_a_type_alike_but_for_case_accents_or_spaces_are_not_this_stores(db: &TestDb) {
    let store = db.store().await;
    let now = laravel_now(0);
    let mut ids = Vec::new();
    for (i, ty) in [
        "app\\models\\user",
        "APP\\MODELS\\USER",
        "App\\Models\\User   ",
        "App\\Models\\Üser",
        "App\\Models\\Usér",
    ]
    .into_iter()
    .enumerate()
    {
        let secret = format!("co-tenant-secret-{i}");
        let hex = TokenHash::of(&secret).to_hex();
        let id = db
            .insert_laravel_row(LaravelRow {
                tokenable_type: ty,
                tokenable_id: 1,
                ..LaravelRow::user_token(&hex, &now)
            })
            .await;
        ids.push(id);
        let answer = reason(store.verify(&bearer(&format!("{id}|{secret}"))).await);
        assert_eq!(answer, "unknown", "{:?}: a row of type {ty:?}", db.kind);
        assert!(
            matches!(store.get(&1, id).await, Err(StoreError::NotFound(_))),
            "{:?}: {ty:?}",
            db.kind
        );
        assert!(
            matches!(store.revoke(&1, id).await, Err(StoreError::NotFound(_))),
            "{:?}: {ty:?}",
            db.kind
        );
    }
    assert!(store.list(&1).await.unwrap().is_empty(), "{:?}", db.kind);
    assert_eq!(store.revoke_all(&1).await.unwrap(), 0, "{:?}", db.kind);
    assert_eq!(store.prune_expired(Duration::ZERO).await.unwrap(), 0);
    assert_eq!(
        db.count_rows().await,
        5,
        "{:?}: another type's rows deleted",
        db.kind
    );
    // The store's own type, byte for byte, is still found.
    let own = store.create(NewToken::new(1, "own")).await.unwrap();
    assert_eq!(store.list(&1).await.unwrap().len(), 1);
    assert_eq!(
        reason(store.verify(&bearer(own.plain_text_token().as_str())).await),
        "ok"
    );
}

/// PostgreSQL (READ COMMITTED): a key created while `revoke_all` waits for a lock is
/// deleted by it (the delete sees rows committed after the owner's digests were read)
/// and must be evicted too: refused on this instance the moment `revoke_all` returns.
async fn revoke_all_evicts_a_key_created_while_it_ran(db: &TestDb) {
    let Pool::Postgres(pg) = &db.pool else {
        return;
    };
    let store = SqlStore::builder(db.pool.clone())
        .cache_ttl(Duration::from_secs(60))
        .build();
    store.migrate().await.unwrap();
    let a = store
        .create(NewToken::new(7, "a").second_factor_pending(true))
        .await
        .unwrap();
    // Holds A's pending row: revoke_all waits on it after reading the owner's digests.
    let mut blocker = pg.begin().await.unwrap();
    sqlx::query(
        "select token_id from bearer_auth_pending_second_factors where token_id = $1 for update",
    )
    .bind(i64::try_from(a.id()).unwrap())
    .fetch_all(&mut *blocker)
    .await
    .unwrap();
    let s = store.clone();
    let revoking = tokio::spawn(async move { s.revoke_all(&7).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = store.create(NewToken::new(7, "c")).await.unwrap();
    let c = c.plain_text_token().as_str().to_owned();
    assert_eq!(reason(store.verify(&bearer(&c)).await), "ok");
    blocker.commit().await.unwrap();
    assert_eq!(revoking.await.unwrap().unwrap(), 2);
    assert_eq!(db.count_rows().await, 0);
    assert_eq!(reason(store.verify(&bearer(&c)).await), "unknown");
}

/// MySQL/MariaDB under READ COMMITTED (a common production setting; no gap locks): a
/// key created while `revoke_all` waits is not deleted by it (only the rows it locked
/// are), so nothing deleted stays cached; the key created meanwhile is the owner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_all_under_read_committed_leaves_nothing_deleted_in_the_cache() {
    crate::common::run(Kind::Mysql, async |db: &TestDb| {
        let Pool::MySql(p) = &db.pool else {
            unreachable!()
        };
        let read_committed = sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(
                        &mut *conn,
                        "set session transaction isolation level read committed",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect_with((*p.connect_options()).clone())
            .await
            .unwrap();
        let store = SqlStore::builder(Pool::from(read_committed))
            .cache_ttl(Duration::from_secs(600))
            .query_timeout(Duration::from_secs(5))
            .build();
        store.migrate().await.unwrap();
        let first = store
            .create(NewToken::new(7, "first").second_factor_pending(true))
            .await
            .unwrap();
        let mut blocker = p.begin().await.unwrap();
        sqlx::query(
            "select token_id from bearer_auth_pending_second_factors where token_id = ? for update",
        )
        .bind(first.id())
        .fetch_all(&mut *blocker)
        .await
        .unwrap();
        let s = store.clone();
        let revoking = tokio::spawn(async move { s.revoke_all(&7).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let late = tokio::time::timeout(
            Duration::from_secs(2),
            store.create(NewToken::new(7, "late")),
        )
        .await
        .expect("the creation waited for revoke_all")
        .unwrap();
        let late = late.plain_text_token().as_str().to_owned();
        assert_eq!(reason(store.verify(&bearer(&late)).await), "ok");
        blocker.rollback().await.unwrap();
        assert_eq!(revoking.await.unwrap().unwrap(), 1);
        // The cached answer and the database agree.
        let rows = db.count_rows().await;
        let answer = reason(store.verify(&bearer(&late)).await);
        assert_eq!((rows, answer), (1, "ok"));
    })
    .await;
}
