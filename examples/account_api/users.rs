//! Laravel's `users` table: the rows and the queries on them, and passwords hashed as
//! Laravel hashes them (bcrypt, `$2y$`, cost 12).

use std::fmt;

use sqlx::{ColumnIndex, Decode, Row, Type, mysql::MySqlRow, postgres::PgRow, sqlite::SqliteRow};

use crate::db::{Db, Engine, LaravelTime, Pool, on_pool_timed, timed};

/// Laravel's default bcrypt cost (`BCRYPT_ROUNDS`).
pub const BCRYPT_COST: u32 = 12;

/// A user's id: `users.id`, and `tokenable_id` of their keys.
pub type UserId = u64;

/// A row of `users`. Its `Debug` shows neither the password hash nor the two-factor
/// columns.
#[derive(Clone)]
pub struct User {
    /// `id`.
    pub id: UserId,
    /// `name`.
    pub name: String,
    /// `email`.
    pub email: String,
    /// `password`: the bcrypt hash.
    pub(crate) password: String,
    /// `two_factor_secret`, encrypted.
    pub(crate) two_factor_secret: Option<String>,
    /// `two_factor_recovery_codes`, encrypted.
    pub(crate) two_factor_recovery_codes: Option<String>,
    /// Whether `two_factor_confirmed_at` is set.
    pub(crate) two_factor_confirmed: bool,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("email", &self.email)
            .field("two_factor_enabled", &self.two_factor_enabled())
            .finish_non_exhaustive()
    }
}

impl User {
    /// Whether two-factor authentication is on: a secret, confirmed (Fortify's
    /// `hasEnabledTwoFactorAuthentication` with confirmation required).
    pub fn two_factor_enabled(&self) -> bool {
        self.two_factor_secret.is_some() && self.two_factor_confirmed
    }
}

/// The email is taken (the unique index refused the row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmailTaken;

const USER_COLUMNS: &str = "id, name, email, password, two_factor_secret, \
     two_factor_recovery_codes, two_factor_confirmed_at";

/// Reads an id column: signed on SQLite and PostgreSQL, unsigned on MySQL (Laravel's
/// `id()`), signed there too if the table was made so.
pub(crate) trait IdColumn {
    fn id(&self, column: &str) -> Result<u64, sqlx::Error>;
}

fn non_negative(id: i64, column: &str) -> Result<u64, sqlx::Error> {
    u64::try_from(id).map_err(|e| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(e),
    })
}

impl IdColumn for SqliteRow {
    fn id(&self, column: &str) -> Result<u64, sqlx::Error> {
        non_negative(self.try_get(column)?, column)
    }
}

impl IdColumn for PgRow {
    fn id(&self, column: &str) -> Result<u64, sqlx::Error> {
        non_negative(self.try_get(column)?, column)
    }
}

impl IdColumn for MySqlRow {
    fn id(&self, column: &str) -> Result<u64, sqlx::Error> {
        match self.try_get::<u64, _>(column) {
            Ok(id) => Ok(id),
            Err(_) => non_negative(self.try_get(column)?, column),
        }
    }
}

fn user_from_row<R>(row: &R) -> Result<User, sqlx::Error>
where
    R: Row + IdColumn,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    use sqlx::ValueRef as _;

    let confirmed = !row.try_get_raw("two_factor_confirmed_at")?.is_null();
    Ok(User {
        id: row.id("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        password: row.try_get("password")?,
        two_factor_secret: row.try_get("two_factor_secret")?,
        two_factor_recovery_codes: row.try_get("two_factor_recovery_codes")?,
        two_factor_confirmed: confirmed,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

/// An email as this service keeps and compares it: trimmed and lowercased, so that
/// `Ada@Example.com` and `ada@example.com` are one account on every engine (SQLite's and
/// PostgreSQL's unique index tells them apart; MySQL's collation does not).
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

impl Db {
    /// `where` on the email, without case: MySQL's collation ignores it already (and
    /// keeps its index); SQLite and PostgreSQL compare `lower(email)`, so that rows a
    /// Laravel app wrote with capitals are found too.
    fn email_matches(&self) -> &'static str {
        match self.engine() {
            Engine::MySql => "email = ?",
            Engine::Sqlite | Engine::Postgres => "lower(email) = lower(?)",
        }
    }

    /// The user with this email (compared without case, see [`normalize_email`]), if
    /// any; of rows a Laravel app wrote differing only in case, the first.
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, sqlx::Error> {
        let email = normalize_email(email);
        let sql = format!(
            "select {USER_COLUMNS} from users where {} order by id limit 1",
            self.email_matches()
        );
        let sql = self.sql(&sql);
        on_pool_timed!(self, pool => {
            match sqlx::query(&sql).bind(email.as_str()).fetch_optional(pool).await? {
                Some(row) => user_from_row(&row).map(Some),
                None => Ok(None),
            }
        })?
    }

    /// The user with this id, if any.
    pub async fn find_user(&self, id: UserId) -> Result<Option<User>, sqlx::Error> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        let sql = format!("select {USER_COLUMNS} from users where id = ?");
        let sql = self.sql(&sql);
        on_pool_timed!(self, pool => {
            match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
                Some(row) => user_from_row(&row).map(Some),
                None => Ok(None),
            }
        })?
    }

    /// Whether a user has this email, compared without case.
    pub async fn email_taken(&self, email: &str) -> Result<bool, sqlx::Error> {
        let email = normalize_email(email);
        let sql = format!("select count(*) from users where {}", self.email_matches());
        let sql = self.sql(&sql);
        let count: i64 = on_pool_timed!(self, pool => {
            sqlx::query_scalar(&sql).bind(email.as_str()).fetch_one(pool).await?
        })?;
        Ok(count > 0)
    }

    /// Inserts a user (the email [normalized](normalize_email)) and returns their id;
    /// [`EmailTaken`] if the unique index refused the email (a concurrent registration).
    pub async fn insert_user(
        &self,
        name: &str,
        email: &str,
        password_hash: &str,
    ) -> Result<Result<UserId, EmailTaken>, sqlx::Error> {
        let email = normalize_email(email);
        let email = email.as_str();
        let now = LaravelTime::now();
        let insert = "insert into users (name, email, password, created_at, updated_at) \
                      values (?, ?, ?, ?, ?)";
        let result = timed(async {
            match &self.pool {
                Pool::Sqlite(pool) => sqlx::query(insert)
                    .bind(name)
                    .bind(email)
                    .bind(password_hash)
                    .bind(now)
                    .bind(now)
                    .execute(pool)
                    .await
                    .and_then(|done| non_negative(done.last_insert_rowid(), "id")),
                Pool::MySql(pool) => sqlx::query(insert)
                    .bind(name)
                    .bind(email)
                    .bind(password_hash)
                    .bind(now)
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(|done| done.last_insert_id()),
                Pool::Postgres(pool) => {
                    let sql = self.sql(insert) + " returning id";
                    sqlx::query_scalar::<_, i64>(&sql)
                        .bind(name)
                        .bind(email)
                        .bind(password_hash)
                        .bind(now)
                        .bind(now)
                        .fetch_one(pool)
                        .await
                        .and_then(|id| non_negative(id, "id"))
                }
            }
        })
        .await;
        match result {
            Ok(id) => Ok(Ok(id)),
            Err(e) if is_unique_violation(&e) => Ok(Err(EmailTaken)),
            Err(e) => Err(e),
        }
    }

    /// Starts enabling two-factor: a new (encrypted) secret, no recovery codes, not
    /// confirmed.
    pub async fn set_two_factor_secret(&self, id: UserId, secret: &str) -> Result<(), sqlx::Error> {
        let sql = self.sql(
            "update users set two_factor_secret = ?, two_factor_recovery_codes = null, \
             two_factor_confirmed_at = null, updated_at = ? where id = ?",
        );
        let id = i64::try_from(id).unwrap_or(i64::MAX);
        on_pool_timed!(self, pool => {
            sqlx::query(&sql).bind(secret).bind(LaravelTime::now()).bind(id).execute(pool).await.map(|_| ())?
        })?;
        Ok(())
    }

    /// Confirms two-factor with these (encrypted) recovery codes, if the secret is still
    /// `secret` and not confirmed yet. `false` if it changed meanwhile.
    pub async fn confirm_two_factor(
        &self,
        id: UserId,
        secret: &str,
        recovery_codes: &str,
    ) -> Result<bool, sqlx::Error> {
        let sql = self.sql(
            "update users set two_factor_recovery_codes = ?, two_factor_confirmed_at = ?, \
             updated_at = ? where id = ? and two_factor_secret = ? \
             and two_factor_confirmed_at is null",
        );
        let now = LaravelTime::now();
        let id = i64::try_from(id).unwrap_or(i64::MAX);
        let done = on_pool_timed!(self, pool => {
            sqlx::query(&sql)
                .bind(recovery_codes)
                .bind(now)
                .bind(now)
                .bind(id)
                .bind(secret)
                .execute(pool)
                .await?
                .rows_affected()
        })?;
        Ok(done == 1)
    }

    /// Turns two-factor off: the three columns back to null.
    pub async fn disable_two_factor(&self, id: UserId) -> Result<(), sqlx::Error> {
        let sql = self.sql(
            "update users set two_factor_secret = null, two_factor_recovery_codes = null, \
             two_factor_confirmed_at = null, updated_at = ? where id = ?",
        );
        let id = i64::try_from(id).unwrap_or(i64::MAX);
        on_pool_timed!(self, pool => {
            sqlx::query(&sql).bind(LaravelTime::now()).bind(id).execute(pool).await.map(|_| ())?
        })?;
        Ok(())
    }

    /// Replaces the (encrypted) recovery codes `old` with `new`, if they are still `old`:
    /// of two requests spending codes at once, one wins and the other gets `false`.
    pub async fn replace_recovery_codes(
        &self,
        id: UserId,
        old: &str,
        new: &str,
    ) -> Result<bool, sqlx::Error> {
        let sql = self.sql(
            "update users set two_factor_recovery_codes = ?, updated_at = ? \
             where id = ? and two_factor_recovery_codes = ?",
        );
        let id = i64::try_from(id).unwrap_or(i64::MAX);
        let done = on_pool_timed!(self, pool => {
            sqlx::query(&sql)
                .bind(new)
                .bind(LaravelTime::now())
                .bind(id)
                .bind(old)
                .execute(pool)
                .await?
                .rows_affected()
        })?;
        Ok(done == 1)
    }

    /// Records that the user used the TOTP code of time step `step`. `false` if a code of
    /// this step or a later one was used already: a code is accepted once, on every
    /// instance and across restarts.
    pub async fn claim_totp_step(&self, user: UserId, step: u64) -> Result<bool, sqlx::Error> {
        let user = i64::try_from(user).unwrap_or(i64::MAX);
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let update =
            self.sql("update account_api_totp_steps set step = ? where user_id = ? and step < ?");
        let moved = on_pool_timed!(self, pool => {
            sqlx::query(&update)
                .bind(step)
                .bind(user)
                .bind(step)
                .execute(pool)
                .await?
                .rows_affected()
        })?;
        if moved == 1 {
            return Ok(true);
        }
        // No row, or one at this step or later: only the insert can tell, and of two
        // concurrent first uses the unique key lets one through.
        let insert = self.sql("insert into account_api_totp_steps (user_id, step) values (?, ?)");
        let inserted = on_pool_timed!(self, pool => {
            sqlx::query(&insert).bind(user).bind(step).execute(pool).await.map(|_| ())
        })?;
        match inserted {
            Ok(()) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Hashes a password as Laravel's `Hash::make` does: bcrypt, cost 12, `$2y$`. Slow on
/// purpose: run it off the async threads.
pub fn hash_password(password: &str) -> Result<String, bcrypt::BcryptError> {
    bcrypt::hash_with_result(password, BCRYPT_COST)
        .map(|parts| parts.format_for_version(bcrypt::Version::TwoY))
}

/// Whether `password` matches a bcrypt hash (`$2y$`, `$2b$`, `$2a$`: any a Laravel app
/// wrote). A hash that is not bcrypt matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    bcrypt::verify(password, hash).unwrap_or(false)
}

/// A bcrypt hash at cost 12 of a password nobody has: verified against when the email is
/// unknown, so that an unknown email and a wrong password take about the same time.
pub const DUMMY_HASH: &str = "$2y$12$DPvuAECJ9NRH7Beohef9t.xDtG0xHXetCpg/qwiStBGPIVvAbZchm";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_in_laravel_form() {
        let hash = hash_password("secret-password").unwrap();
        assert!(hash.starts_with("$2y$12$"), "{hash}");
        assert_eq!(hash.len(), 60);
        assert!(verify_password("secret-password", &hash));
        assert!(!verify_password("secret-passwore", &hash));
    }

    #[test]
    fn laravel_hash_verifies() {
        // `password_hash('secret-password', PASSWORD_BCRYPT, ['cost' => 12])` in PHP 8.2
        // (`testdata/fortify_row.php`).
        let row: serde_json::Value =
            serde_json::from_str(include_str!("testdata/fortify_row.json")).unwrap();
        let hash = row["password"].as_str().unwrap();
        assert!(hash.starts_with("$2y$12$"));
        assert!(verify_password("secret-password", hash));
        assert!(!verify_password("wrong", hash));
    }

    #[test]
    fn dummy_hash_is_bcrypt_cost_12_and_matches_nothing_likely() {
        assert!(DUMMY_HASH.starts_with("$2y$12$"));
        assert!(bcrypt::verify("", DUMMY_HASH).is_ok());
        assert!(!verify_password("password", DUMMY_HASH));
        assert!(!verify_password("x", "not a hash"));
    }
}
