//! The tables: Laravel's `personal_access_tokens`, exactly as Laravel 11's Sanctum
//! migration creates it on each engine, and this crate's own table of keys whose second
//! factor is pending.

/// Laravel's table.
pub(crate) const TABLE: &str = "personal_access_tokens";

/// What `Schema::create('personal_access_tokens', ...)` runs on SQLite: `id()`,
/// `morphs('tokenable')`, `text('name')`, `string('token', 64)->unique()`,
/// `text('abilities')->nullable()`, `timestamp('last_used_at')->nullable()`,
/// `timestamp('expires_at')->nullable()->index()`, `timestamps()`.
#[cfg(feature = "sqlite")]
pub(crate) const SQLITE: &[&str] = &[
    r#"create table if not exists "personal_access_tokens" ("id" integer primary key autoincrement not null, "tokenable_type" varchar not null, "tokenable_id" integer not null, "name" text not null, "token" varchar not null, "abilities" text, "last_used_at" datetime, "expires_at" datetime, "created_at" datetime, "updated_at" datetime)"#,
    r#"create index if not exists "personal_access_tokens_tokenable_type_tokenable_id_index" on "personal_access_tokens" ("tokenable_type", "tokenable_id")"#,
    r#"create unique index if not exists "personal_access_tokens_token_unique" on "personal_access_tokens" ("token")"#,
    r#"create index if not exists "personal_access_tokens_expires_at_index" on "personal_access_tokens" ("expires_at")"#,
];

/// This crate's table, `bearer_auth_pending_second_factors`: the ids of keys whose second
/// factor is pending. A table of its own, so that Laravel's stays exactly as Laravel made
/// it; no foreign key, so that Laravel may drop or recreate its table as it likes.
#[cfg(feature = "sqlite")]
pub(crate) const SQLITE_PENDING: &str = r#"create table if not exists "bearer_auth_pending_second_factors" ("token_id" integer primary key not null)"#;

/// The same on PostgreSQL. Laravel adds the unique constraint with `alter table ... add
/// constraint`; here it is declared in `create table` (the same constraint, of the same
/// name), so that two instances migrating at once cannot half-create the table.
#[cfg(feature = "postgres")]
pub(crate) const POSTGRES: &[&str] = &[
    r#"create table if not exists "personal_access_tokens" ("id" bigserial not null primary key, "tokenable_type" varchar(255) not null, "tokenable_id" bigint not null, "name" text not null, "token" varchar(64) not null, "abilities" text null, "last_used_at" timestamp(0) without time zone null, "expires_at" timestamp(0) without time zone null, "created_at" timestamp(0) without time zone null, "updated_at" timestamp(0) without time zone null, constraint "personal_access_tokens_token_unique" unique ("token"))"#,
    r#"create index if not exists "personal_access_tokens_tokenable_type_tokenable_id_index" on "personal_access_tokens" ("tokenable_type", "tokenable_id")"#,
    r#"create index if not exists "personal_access_tokens_expires_at_index" on "personal_access_tokens" ("expires_at")"#,
];

#[cfg(feature = "postgres")]
pub(crate) const POSTGRES_PENDING: &str = r#"create table if not exists "bearer_auth_pending_second_factors" ("token_id" bigint not null primary key)"#;

/// The same on MySQL and MariaDB, with Laravel's default charset and collation. Laravel
/// adds the indexes with `alter table`; here they are declared in `create table` (the
/// same indexes, of the same names), in one statement, since MySQL's DDL is not
/// transactional.
#[cfg(feature = "mysql")]
pub(crate) const MYSQL: &[&str] = &[
    "create table if not exists `personal_access_tokens` (`id` bigint unsigned not null auto_increment primary key, `tokenable_type` varchar(255) not null, `tokenable_id` bigint unsigned not null, `name` text not null, `token` varchar(64) not null, `abilities` text null, `last_used_at` timestamp null, `expires_at` timestamp null, `created_at` timestamp null, `updated_at` timestamp null, index `personal_access_tokens_tokenable_type_tokenable_id_index`(`tokenable_type`, `tokenable_id`), unique `personal_access_tokens_token_unique`(`token`), index `personal_access_tokens_expires_at_index`(`expires_at`)) default character set utf8mb4 collate 'utf8mb4_unicode_ci'",
];

#[cfg(feature = "mysql")]
pub(crate) const MYSQL_PENDING: &str = "create table if not exists `bearer_auth_pending_second_factors` (`token_id` bigint unsigned not null primary key) default character set utf8mb4 collate 'utf8mb4_unicode_ci'";

/// Reads every column the store uses, and no row: fails when an existing table lacks one
/// (a Sanctum 2 table has no `expires_at`).
pub(crate) const PROBE: &str = "select id, tokenable_type, tokenable_id, name, token, abilities, last_used_at, expires_at, created_at, updated_at from personal_access_tokens where 1 = 0";
