//! `migrate`: Laravel's table, exactly; an existing one left alone.

use bearer_auth::StoreError;
use bearer_auth_sqlx::SqlStore;

use crate::common::{Kind, LaravelRow, TestDb, laravel_now, on_every_engine};

on_every_engine!(
    migrate_creates_laravels_table_exactly,
    migrate_leaves_an_existing_table_alone,
    migrate_refuses_a_table_without_the_columns_it_needs,
    migrate_from_several_instances_at_once,
);

/// What Laravel 11's Sanctum migration leaves in the catalog, engine by engine.
///
/// SQLite keeps the statements Laravel's grammar runs (it upper-cases their first
/// keywords). PostgreSQL and MySQL are described column by column and index by index.
fn laravel_schema(kind: Kind) -> Vec<&'static str> {
    match kind {
        Kind::Sqlite => vec![
            r#"CREATE INDEX "personal_access_tokens_expires_at_index" on "personal_access_tokens" ("expires_at")"#,
            r#"CREATE INDEX "personal_access_tokens_tokenable_type_tokenable_id_index" on "personal_access_tokens" ("tokenable_type", "tokenable_id")"#,
            r#"CREATE TABLE "personal_access_tokens" ("id" integer primary key autoincrement not null, "tokenable_type" varchar not null, "tokenable_id" integer not null, "name" text not null, "token" varchar not null, "abilities" text, "last_used_at" datetime, "expires_at" datetime, "created_at" datetime, "updated_at" datetime)"#,
            r#"CREATE UNIQUE INDEX "personal_access_tokens_token_unique" on "personal_access_tokens" ("token")"#,
        ],
        Kind::Postgres => vec![
            "id bigint NO default nextval('personal_access_tokens_id_seq'::regclass)",
            "tokenable_type character varying(255) NO",
            "tokenable_id bigint NO",
            "name text NO",
            "token character varying(64) NO",
            "abilities text YES",
            "last_used_at timestamp without time zone p0 YES",
            "expires_at timestamp without time zone p0 YES",
            "created_at timestamp without time zone p0 YES",
            "updated_at timestamp without time zone p0 YES",
            "CREATE INDEX personal_access_tokens_expires_at_index ON personal_access_tokens USING btree (expires_at)",
            "CREATE INDEX personal_access_tokens_tokenable_type_tokenable_id_index ON personal_access_tokens USING btree (tokenable_type, tokenable_id)",
            "CREATE UNIQUE INDEX personal_access_tokens_pkey ON personal_access_tokens USING btree (id)",
            "CREATE UNIQUE INDEX personal_access_tokens_token_unique ON personal_access_tokens USING btree (token)",
            "personal_access_tokens_pkey p",
            "personal_access_tokens_token_unique u",
        ],
        Kind::Mysql => vec![
            "id bigint unsigned NO auto_increment ",
            "tokenable_type varchar(255) NO  utf8mb4_unicode_ci",
            "tokenable_id bigint unsigned NO  ",
            "name text NO  utf8mb4_unicode_ci",
            "token varchar(64) NO  utf8mb4_unicode_ci",
            "abilities text YES  utf8mb4_unicode_ci",
            "last_used_at timestamp YES  ",
            "expires_at timestamp YES  ",
            "created_at timestamp YES  ",
            "updated_at timestamp YES  ",
            "PRIMARY 0 id",
            "personal_access_tokens_expires_at_index 1 expires_at",
            "personal_access_tokens_token_unique 0 token",
            "personal_access_tokens_tokenable_type_tokenable_id_index 1 tokenable_type,tokenable_id",
            "personal_access_tokens utf8mb4_unicode_ci",
        ],
    }
}

/// The catalog's description of `personal_access_tokens`, in the form of
/// [`laravel_schema`]: columns in their order, then indexes and constraints sorted.
async fn describe(db: &TestDb) -> Vec<String> {
    let queries: &[&str] = match db.kind {
        Kind::Sqlite => &[
            "select sql from sqlite_master where tbl_name = 'personal_access_tokens' order by name",
        ],
        Kind::Postgres => &[
            "select column_name || ' ' || data_type || coalesce('(' || character_maximum_length || ')', '') || coalesce(' p' || datetime_precision, '') || ' ' || is_nullable || coalesce(' default ' || column_default, '') from information_schema.columns where table_schema = current_schema() and table_name = 'personal_access_tokens' order by ordinal_position",
            "select replace(indexdef, current_schema() || '.', '') from pg_indexes where schemaname = current_schema() and tablename = 'personal_access_tokens' order by indexname",
            "select conname || ' ' || contype::text from pg_constraint where conrelid = 'personal_access_tokens'::regclass order by conname",
        ],
        Kind::Mysql => &[
            // MariaDB prints `bigint(20)`, MySQL 8 `bigint`.
            "select concat(column_name, ' ', replace(column_type, 'bigint(20)', 'bigint'), ' ', is_nullable, ' ', extra, ' ', coalesce(collation_name, '')) from information_schema.columns where table_schema = database() and table_name = 'personal_access_tokens' order by ordinal_position",
            "select concat(index_name, ' ', non_unique, ' ', group_concat(column_name order by seq_in_index)) from information_schema.statistics where table_schema = database() and table_name = 'personal_access_tokens' group by index_name, non_unique order by index_name",
            "select concat(table_name, ' ', table_collation) from information_schema.tables where table_schema = database() and table_name = 'personal_access_tokens'",
        ],
    };
    let mut out = Vec::new();
    for (i, sql) in queries.iter().enumerate() {
        let mut rows: Vec<String> = db
            .texts(sql)
            .await
            .into_iter()
            .map(Option::unwrap)
            .collect();
        let columns = i == 0 && db.kind != Kind::Sqlite;
        if !columns {
            rows.sort();
        }
        out.extend(rows);
    }
    out
}

async fn migrate_creates_laravels_table_exactly(db: &TestDb) {
    db.store().await;
    assert_eq!(describe(db).await, laravel_schema(db.kind));
    // Again: nothing changes.
    db.store().await;
    assert_eq!(describe(db).await, laravel_schema(db.kind));
}

/// The table of an existing Laravel app, with a column of its own and a row.
fn laravel_app_table(kind: Kind) -> &'static str {
    match kind {
        Kind::Sqlite => {
            r#"create table "personal_access_tokens" ("id" integer primary key autoincrement not null, "tokenable_type" varchar not null, "tokenable_id" integer not null, "name" varchar not null, "token" varchar not null, "abilities" text, "last_used_at" datetime, "expires_at" datetime, "created_at" datetime, "updated_at" datetime, "team_id" integer)"#
        }
        Kind::Postgres => {
            r#"create table "personal_access_tokens" ("id" bigserial not null primary key, "tokenable_type" varchar(255) not null, "tokenable_id" bigint not null, "name" varchar(255) not null, "token" varchar(64) not null unique, "abilities" text null, "last_used_at" timestamp(0) without time zone null, "expires_at" timestamp(0) without time zone null, "created_at" timestamp(0) without time zone null, "updated_at" timestamp(0) without time zone null, "team_id" bigint null)"#
        }
        Kind::Mysql => {
            "create table `personal_access_tokens` (`id` bigint unsigned not null auto_increment primary key, `tokenable_type` varchar(255) not null, `tokenable_id` bigint unsigned not null, `name` varchar(255) not null, `token` varchar(64) not null unique, `abilities` text null, `last_used_at` timestamp null, `expires_at` timestamp null, `created_at` timestamp null, `updated_at` timestamp null, `team_id` bigint unsigned null) default character set utf8mb4 collate 'utf8mb4_unicode_ci'"
        }
    }
}

async fn migrate_leaves_an_existing_table_alone(db: &TestDb) {
    db.exec(&[laravel_app_table(db.kind)]).await;
    let created = laravel_now(-60);
    let id = db
        .insert_laravel_row(LaravelRow::user_token(&"a".repeat(64), &created))
        .await;
    let before = describe(db).await;
    db.store().await;
    db.store().await;
    assert_eq!(describe(db).await, before);
    assert_eq!(db.count_rows().await, 1);
    assert_eq!(db.column("name", id).await.as_deref(), Some("laptop"));
    // The store works on it.
    assert_eq!(
        bearer_auth::TokenStore::list(&db.store().await, &7)
            .await
            .unwrap()[0]
            .id,
        id
    );
}

async fn migrate_refuses_a_table_without_the_columns_it_needs(db: &TestDb) {
    // Sanctum 2's table: no `expires_at`.
    let sanctum_2 = laravel_app_table(db.kind)
        .replace(r#""expires_at" datetime, "#, "")
        .replace(r#""expires_at" timestamp(0) without time zone null, "#, "")
        .replace("`expires_at` timestamp null, ", "");
    assert!(!sanctum_2.contains("expires_at"));
    db.exec(&[&sanctum_2]).await;
    let before = describe(db).await;
    let error = SqlStore::new(db.pool.clone()).migrate().await.unwrap_err();
    let StoreError::Invalid(why) = &error else {
        panic!("{error:?}")
    };
    assert!(why.contains("is not Laravel Sanctum's table"), "{why}");
    assert!(why.contains("expires_at"), "{why}");
    assert_eq!(describe(db).await, before);
}

async fn migrate_from_several_instances_at_once(db: &TestDb) {
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = SqlStore::new(db.another_pool().await);
        tasks.push(tokio::spawn(async move { store.migrate().await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(describe(db).await, laravel_schema(db.kind));
}
