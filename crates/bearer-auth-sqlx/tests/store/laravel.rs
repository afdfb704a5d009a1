//! Verifying the tokens a Sanctum app issued, from rows written as Laravel writes them.
//!
//! The digests below were computed outside Rust, with `printf %s SECRET | sha256sum`, and
//! the rows are inserted with them: a token is accepted only if this crate hashes, looks
//! up and checks exactly as Sanctum does.

use std::time::Duration;

use bearer_auth::{Rejection, TokenHash, TokenVerifier};
use bearer_auth_sqlx::SqlStore;

use crate::common::{LaravelRow, TestDb, bearer, laravel_now, on_every_engine, reason};

/// One historical token shape: its secret, the secret's pinned digest, and whether the
/// token carries `{id}|`.
struct Shape {
    what: &'static str,
    secret: &'static str,
    sha256: &'static str,
    with_id: bool,
}

const SHAPES: &[Shape] = &[
    // Sanctum 3.3+ / 4: `{id}|` + 40 random + crc32b of them
    // (python3 -c 'import zlib; print(format(zlib.crc32(b"aBcD...ABCD"), "08x"))' = c6c73a82).
    Shape {
        what: "id|rand40crc32",
        secret: "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789ABCDc6c73a82",
        sha256: "166b948da2415712c40536444aa4c5941722d02a6bf47c7b661819c01648342e",
        with_id: true,
    },
    // The same with `sanctum.token_prefix` = "ph_".
    Shape {
        what: "id|prefix rand40crc32",
        secret: "ph_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789ABCDc6c73a82",
        sha256: "7e5a7c7a48234da78fac7fedc9fc4b9abd70d2d8cb4113eace478bfebeb690a7",
        with_id: true,
    },
    // Sanctum 2 / 3: `{id}|` + 40 random, no checksum.
    Shape {
        what: "id|rand40",
        secret: "Zy9Xw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa9z8Y",
        sha256: "3152705566d538e258d0c40ff7e00db928a36eac28e13418cb37ae41b7be7af4",
        with_id: true,
    },
    // A bare 40-character token, no `|`.
    Shape {
        what: "bare 40",
        secret: "q1W2e3R4t5Y6u7I8o9P0a1S2d3F4g5H6j7K8l9Z0",
        sha256: "4e279d5e5f45d93f9d486995608129cb1015dcb30d9167381631a8a27d91bbd4",
        with_id: false,
    },
    // Airlock / Sanctum 1: a bare 80-character token.
    Shape {
        what: "bare 80",
        secret: "Airlock0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789a",
        sha256: "b126124ed2d0738a03a3df23a5c37cff86d4c75344f095c9a75ba02f8f226d24",
        with_id: false,
    },
];

#[test]
fn pinned_digests_match_this_crates_sha256() {
    for shape in SHAPES {
        assert_eq!(
            TokenHash::of(shape.secret).to_hex(),
            shape.sha256,
            "{}",
            shape.what
        );
    }
    assert_eq!(SHAPES[4].secret.len(), 80);
    assert_eq!(SHAPES[3].secret.len(), 40);
}

on_every_engine!(
    every_historical_shape_is_accepted,
    the_id_must_match_the_row_found_by_digest,
    an_id_that_does_not_fit_is_refused_without_a_query,
    expired_old_and_foreign_rows_are_refused,
    a_database_failure_is_503_never_401,
);

async fn every_historical_shape_is_accepted(db: &TestDb) {
    let store = db.store().await;
    let created = laravel_now(-60);
    for (i, shape) in SHAPES.iter().enumerate() {
        let abilities = if i % 2 == 0 {
            r#"["*"]"#
        } else {
            r#"["servers:read","servers\/write"]"#
        };
        let id = db
            .insert_laravel_row(LaravelRow {
                abilities: Some(abilities),
                tokenable_id: 7 + i as u64,
                ..LaravelRow::user_token(shape.sha256, &created)
            })
            .await;
        let token = if shape.with_id {
            format!("{id}|{}", shape.secret)
        } else {
            shape.secret.to_owned()
        };
        let principal = store
            .verify(&bearer(&token))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", shape.what));
        assert_eq!(principal.id(), id, "{}", shape.what);
        assert_eq!(*principal.owner(), 7 + i as u64, "{}", shape.what);
        assert!(!principal.is_second_factor_pending());
        if i % 2 == 0 {
            assert!(principal.abilities().can("anything"), "{}", shape.what);
        } else {
            let abilities = principal.abilities();
            assert!(abilities.can("servers:read") && abilities.can("servers/write"));
            assert!(!abilities.can("servers:delete"), "{}", shape.what);
        }
        // The `{id}|` form of a bare token works as well (Sanctum splits, then checks).
        if !shape.with_id {
            let with_id = format!("{id}|{}", shape.secret);
            assert_eq!(reason(store.verify(&bearer(&with_id)).await), "ok");
        }
    }
}

async fn the_id_must_match_the_row_found_by_digest(db: &TestDb) {
    let store = db.store().await;
    let created = laravel_now(-60);
    let first = db
        .insert_laravel_row(LaravelRow::user_token(SHAPES[0].sha256, &created))
        .await;
    let second = db
        .insert_laravel_row(LaravelRow::user_token(SHAPES[2].sha256, &created))
        .await;
    let secret = SHAPES[0].secret;
    assert_eq!(
        reason(store.verify(&bearer(&format!("{first}|{secret}"))).await),
        "ok"
    );
    // The right secret under another row's id, an unknown id, id 0: all unknown.
    for id in [second, second + 1000, 0] {
        let token = format!("{id}|{secret}");
        assert_eq!(
            reason(store.verify(&bearer(&token)).await),
            "unknown",
            "{id}"
        );
    }
    // A known id with a wrong secret: the same refusal.
    let token = format!("{first}|{}", SHAPES[2].secret.to_lowercase());
    assert_eq!(reason(store.verify(&bearer(&token)).await), "unknown");
    // The digest itself is not a token.
    let token = format!("{first}|{}", SHAPES[0].sha256);
    assert_eq!(reason(store.verify(&bearer(&token)).await), "unknown");
    // Malformed splits are refused before any lookup.
    for token in ["x1|abc", "1|", "|abc", "-1|abc"] {
        assert_eq!(
            reason(store.verify(&bearer(token)).await),
            "malformed",
            "{token}"
        );
    }
}

async fn an_id_that_does_not_fit_is_refused_without_a_query(db: &TestDb) {
    let store = db.store().await;
    // With the pool closed, any query would be a 503: a 401 shows none was made.
    db.pool.close().await;
    let too_big_for_i64 = format!("{}|{}", u64::MAX, SHAPES[0].secret);
    let too_big_for_u64 = format!("18446744073709551616|{}", SHAPES[0].secret);
    assert_eq!(
        reason(store.verify(&bearer(&too_big_for_u64)).await),
        "malformed"
    );
    let fits_i64 = format!("{}|{}", i64::MAX, SHAPES[0].secret);
    assert_eq!(reason(store.verify(&bearer(&fits_i64)).await), "backend");
    let expected = match store.engine() {
        // `bigint unsigned`: every u64 is an id, so it is looked up.
        bearer_auth_sqlx::Engine::MySql => "backend",
        _ => "malformed",
    };
    assert_eq!(
        reason(store.verify(&bearer(&too_big_for_i64)).await),
        expected
    );
}

async fn expired_old_and_foreign_rows_are_refused(db: &TestDb) {
    let store = db.store().await;
    let two_hours_ago = laravel_now(-7200);
    let expired_at = laravel_now(-1);
    let in_an_hour = laravel_now(3600);
    let expired = db
        .insert_laravel_row(LaravelRow {
            expires_at: Some(&expired_at),
            ..LaravelRow::user_token(SHAPES[0].sha256, &two_hours_ago)
        })
        .await;
    let valid = db
        .insert_laravel_row(LaravelRow {
            expires_at: Some(&in_an_hour),
            ..LaravelRow::user_token(SHAPES[1].sha256, &two_hours_ago)
        })
        .await;
    let admin = db
        .insert_laravel_row(LaravelRow {
            tokenable_type: "App\\Models\\Admin",
            ..LaravelRow::user_token(SHAPES[2].sha256, &two_hours_ago)
        })
        .await;
    let token = |id: u64, shape: usize| bearer(&format!("{id}|{}", SHAPES[shape].secret));
    assert_eq!(reason(store.verify(&token(expired, 0)).await), "expired");
    assert_eq!(reason(store.verify(&token(valid, 1)).await), "ok");
    // Another tokenable_type: not this store's key at all.
    assert_eq!(reason(store.verify(&token(admin, 2)).await), "unknown");
    let admins = SqlStore::builder(db.pool.clone())
        .tokenable_type("App\\Models\\Admin")
        .build();
    assert_eq!(reason(admins.verify(&token(admin, 2)).await), "ok");
    assert_eq!(reason(admins.verify(&token(valid, 1)).await), "unknown");

    // Sanctum's `expiration`: counted from created_at, whatever expires_at says.
    let strict = SqlStore::builder(db.pool.clone())
        .max_age(Duration::from_secs(3600))
        .build();
    assert_eq!(reason(strict.verify(&token(valid, 1)).await), "expired");
    let lenient = SqlStore::builder(db.pool.clone())
        .max_age(Duration::from_secs(3 * 3600))
        .build();
    assert_eq!(reason(lenient.verify(&token(valid, 1)).await), "ok");
    // A row without created_at cannot prove its age.
    let undated = db
        .insert_laravel_row(LaravelRow {
            created_at: None,
            updated_at: None,
            ..LaravelRow::user_token(SHAPES[3].sha256, &two_hours_ago)
        })
        .await;
    assert_eq!(reason(store.verify(&token(undated, 3)).await), "ok");
    assert_eq!(reason(lenient.verify(&token(undated, 3)).await), "expired");
}

async fn a_database_failure_is_503_never_401(db: &TestDb) {
    let store = db.store().await;
    let created = laravel_now(-60);
    let cached = db
        .insert_laravel_row(LaravelRow::user_token(SHAPES[0].sha256, &created))
        .await;
    let id = db
        .insert_laravel_row(LaravelRow::user_token(SHAPES[1].sha256, &created))
        .await;
    let cached = bearer(&format!("{cached}|{}", SHAPES[0].secret));
    let token = bearer(&format!("{id}|{}", SHAPES[1].secret));
    assert_eq!(reason(store.verify(&cached).await), "ok");
    db.pool.close().await;
    let refused = store.verify(&token).await.unwrap_err();
    assert_eq!(refused.status(), 503);
    let Rejection::Unavailable(source) = &refused else {
        panic!("{refused:?}")
    };
    // The cause is kept for the log, with what failed; never the token.
    let cause = source.to_string();
    assert!(cause.starts_with("token lookup failed on "), "{cause}");
    assert!(!cause.contains(SHAPES[1].secret) && !cause.contains(SHAPES[1].sha256));
    // An unknown token, too: the store cannot tell, so it is not a 401.
    assert_eq!(
        reason(store.verify(&bearer("unknown-token")).await),
        "backend"
    );
    // A key verified within the cache's time to live is answered from the cache.
    assert_eq!(reason(store.verify(&cached).await), "ok");
}
