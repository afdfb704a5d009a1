//! The SQL store on every engine: SQLite always, PostgreSQL and MySQL/MariaDB when
//! `BEARER_AUTH_POSTGRES_URL` / `BEARER_AUTH_MYSQL_URL` are set (see `common.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

mod common;
mod proxy;

mod cache;
mod hostile_rows;
mod issue;
mod laravel;
mod last_used;
mod notify;
mod outage;
mod pool;
mod schema;
mod suite;
