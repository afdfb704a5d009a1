//! PostgreSQL's `LISTEN/NOTIFY`: a trigger that names the digest of every row deleted or
//! changed in what a verification reads (every column of `personal_access_tokens` the
//! lookup reads, and a second factor made pending or confirmed), and a listener that
//! evicts it from the cache of every instance. The listener checks its connection with a
//! heartbeat, reconnects when it is lost or dead, and then empties the cache.

use std::sync::{Mutex, PoisonError};

use bearer_auth::StoreError;
use tokio::task::JoinHandle;

use crate::SqlStore;

/// The channel of the notifications unless told otherwise.
pub const DEFAULT_NOTIFY_CHANNEL: &str = "bearer_auth_sqlx";

/// The listener task of a store, if one runs.
#[derive(Default)]
pub(crate) struct Listener {
    running: Mutex<Option<Running>>,
}

struct Running {
    stop: std::sync::Arc<tokio::sync::Notify>,
    task: JoinHandle<()>,
}

impl Listener {
    /// Stops the task; it ends at its next wait.
    pub(crate) fn stop(&self) -> Option<JoinHandle<()>> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        running.stop.notify_one();
        Some(running.task)
    }

    #[cfg(feature = "postgres")]
    fn replace(&self, running: Running) -> Option<Running> {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(running)
    }
}

/// Whether `channel` can be a channel name as it is: an unquoted identifier, lower case.
fn valid_channel(channel: &str) -> bool {
    let bytes = channel.as_bytes();
    (1..=63).contains(&bytes.len())
        && !bytes[0].is_ascii_digit()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn checked_channel(store: &SqlStore) -> Result<&str, StoreError> {
    let channel = store.channel();
    if valid_channel(channel) {
        Ok(channel)
    } else {
        Err(StoreError::Invalid(
            format!(
                "notify channel {channel:?}: lower-case letters, digits and _, at most 63, not starting with a digit"
            )
            .into(),
        ))
    }
}

fn postgres_only(what: &str) -> StoreError {
    StoreError::Invalid(format!("{what}: LISTEN/NOTIFY is PostgreSQL's").into())
}

/// [`SqlStore::install_notify_trigger`].
pub(crate) async fn install(store: &SqlStore) -> Result<(), StoreError> {
    let channel = checked_channel(store)?;
    #[allow(unreachable_patterns)]
    match store.pool() {
        #[cfg(feature = "postgres")]
        crate::Pool::Postgres(pool) => pg::install(store, pool, channel).await,
        _ => {
            let _ = channel;
            Err(postgres_only("install_notify_trigger"))
        }
    }
}

/// [`SqlStore::listen_for_changes`].
pub(crate) async fn listen(store: &SqlStore) -> Result<(), StoreError> {
    let channel = checked_channel(store)?;
    #[allow(unreachable_patterns)]
    match store.pool() {
        #[cfg(feature = "postgres")]
        crate::Pool::Postgres(pool) => pg::listen(store, pool, channel).await,
        _ => {
            let _ = channel;
            Err(postgres_only("listen_for_changes"))
        }
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use std::{sync::Arc, time::Duration};

    use bearer_auth::{StoreError, TokenHash};
    use sqlx::{
        PgPool,
        postgres::{PgConnectOptions, PgListener, PgPoolOptions},
    };
    use tokio::{
        sync::Notify,
        time::{Instant, MissedTickBehavior},
    };

    use super::{Running, TRIGGERS, marker};
    use crate::{SqlStore, cache::Cache, error::Failure};

    /// Pause between two failed attempts to reconnect.
    const RETRY: Duration = Duration::from_millis(100);

    /// How often the listener checks its connection: a `select 1` on it, which must be
    /// answered within the store's query timeout. A listener only reads, so a connection
    /// whose path silently went (a NAT or load balancer that dropped the flow, a
    /// failover: no reset ever comes) would otherwise be waited on forever.
    const HEARTBEAT: Duration = Duration::from_secs(5);

    pub(super) async fn install(
        store: &SqlStore,
        pool: &PgPool,
        channel: &str,
    ) -> Result<(), StoreError> {
        let installed = async {
            let mut tx = pool.begin().await?;
            // One installation at a time per schema.
            sqlx::query(
                "select pg_advisory_xact_lock(hashtext('bearer_auth_sqlx notify ' || current_schema()))",
            )
            .execute(&mut *tx)
            .await?;
            for statement in super::statements(channel) {
                sqlx::query(&statement).execute(&mut *tx).await?;
            }
            tx.commit().await
        }
        .await;
        installed.map_err(|e| store.backend("install_notify_trigger", e))
    }

    pub(super) async fn listen(
        store: &SqlStore,
        pool: &PgPool,
        channel: &str,
    ) -> Result<(), StoreError> {
        let timeout = store.timeout();
        // The trigger must be there, with this channel, or nothing would ever come.
        let mut expected = channel.as_bytes().to_vec();
        expected.push(0);
        let names: Vec<String> = TRIGGERS
            .iter()
            .map(|(name, ..)| (*name).to_owned())
            .collect();
        // ... and this version's: an older one misses changes.
        let found = tokio::time::timeout(
            timeout,
            sqlx::query_scalar::<_, i64>(
                "select count(*) from pg_trigger where tgname = any($1) and tgargs = $2 \
                 and tgrelid in (to_regclass('personal_access_tokens'), to_regclass('bearer_auth_pending_second_factors')) \
                 and obj_description(oid, 'pg_trigger') = $3 and tgenabled in ('O', 'A')",
            )
            .bind(&names)
            .bind(expected)
            .bind(marker())
            .fetch_one(pool),
        )
        .await
        .map_err(|_| Failure::TimedOut(timeout))
        .and_then(|found| found.map_err(Failure::Sql))
        .map_err(|e| store.backend("listen_for_changes", e))?;
        if usize::try_from(found).ok() != Some(TRIGGERS.len()) {
            return Err(StoreError::Invalid(
                format!(
                    "the notify trigger for channel {channel:?} is not installed on personal_access_tokens, is an older version's, or is disabled: run install_notify_trigger"
                )
                .into(),
            ));
        }
        // A connection of its own, made as the pool makes them: the application's pool
        // keeps all of its connections.
        let options = (*pool.connect_options()).clone();
        let connected = connect(&options, timeout, channel)
            .await
            .map_err(|e| store.backend("listen_for_changes", e))?;
        // What was loaded before the listener was there may have missed a change.
        store.cache().evict_all();
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(run(
            connected,
            Own {
                options,
                timeout,
                channel: channel.to_owned(),
            },
            Arc::clone(store.cache()),
            Arc::clone(&stop),
        ));
        tracing::info!(target: "bearer_auth_sqlx", channel, "listening for changes of personal_access_tokens");
        if let Some(previous) = store.listener().replace(Running { stop, task }) {
            previous.stop.notify_one();
        }
        Ok(())
    }

    /// What the listener's connections are made with.
    struct Own {
        options: PgConnectOptions,
        /// The store's query timeout: for a connection, and for a heartbeat's answer.
        timeout: Duration,
        channel: String,
    }

    /// A listener and the pool of one connection it takes its connection from.
    type Connected = (PgListener, PgPool);

    /// A listener on `channel`, on a connection of its own in a pool of its own, within
    /// `timeout`. Each connection has its pool: dropping a listener hands its connection
    /// back to its pool after an `UNLISTEN`, which on a dead path never ends, and the
    /// next connection must not wait for it.
    async fn connect(
        options: &PgConnectOptions,
        timeout: Duration,
        channel: &str,
    ) -> Result<Connected, Failure> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(options.clone());
        let connected = tokio::time::timeout(timeout, async {
            let mut listener = PgListener::connect_with(&pool).await?;
            // A lost connection is reported at once; this task reconnects, and knows when.
            listener.eager_reconnect(false);
            listener.listen(channel).await?;
            Ok::<_, sqlx::Error>(listener)
        })
        .await;
        // On a failure the pool is dropped, not closed: closing would wait for a
        // connection that may never come back.
        match connected {
            Ok(Ok(listener)) => Ok((listener, pool)),
            Ok(Err(error)) => Err(Failure::Sql(error)),
            Err(_) => Err(Failure::TimedOut(timeout)),
        }
    }

    /// Closes a listener's pool, waiting at most `timeout` (its connection may be dead).
    async fn close((listener, pool): Connected, timeout: Duration) {
        drop(listener);
        drop(tokio::time::timeout(timeout, pool.close()).await);
    }

    /// The heartbeat: `select 1` on the listener's connection. A boxed future of a
    /// plain `&str` query, named here: an `async` block around it would not be `Send`
    /// for every lifetime, as `tokio::spawn` wants.
    fn heartbeat_query(
        listener: &mut PgListener,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<sqlx::postgres::PgQueryResult, sqlx::Error>> + Send + '_>,
    > {
        sqlx::Executor::execute(listener, "select 1")
    }

    /// What ended a wait for notifications.
    enum Event {
        Received(Result<Option<sqlx::postgres::PgNotification>, sqlx::Error>),
        Heartbeat,
    }

    /// Evicts what the notifications name, until stopped. Checks the connection every
    /// [`HEARTBEAT`]; when it is lost, or does not answer within the query timeout,
    /// reconnects (from a new pool) and then empties the cache.
    async fn run(mut connected: Connected, own: Own, cache: Arc<Cache>, stop: Arc<Notify>) {
        let channel = own.channel.as_str();
        loop {
            let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
            heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                let listener = &mut connected.0;
                // `try_recv` loses nothing when the heartbeat comes first: a notification
                // is taken from the connection whole, or not at all, and one that arrives
                // during the heartbeat's query is kept for the next `try_recv`.
                let event = tokio::select! {
                    received = listener.try_recv() => Event::Received(received),
                    _ = heartbeat.tick() => Event::Heartbeat,
                    () = stop.notified() => {
                        close(connected, own.timeout).await;
                        return;
                    }
                };
                match event {
                    Event::Received(Ok(Some(notification))) => {
                        apply(&cache, notification.payload());
                    }
                    Event::Received(Ok(None)) => {
                        tracing::warn!(target: "bearer_auth_sqlx", channel, "notifications listener lost its connection; reconnecting");
                        break;
                    }
                    Event::Received(Err(error)) => {
                        tracing::warn!(target: "bearer_auth_sqlx", channel, %error, "notifications listener failed; reconnecting");
                        break;
                    }
                    Event::Heartbeat => {
                        let answered =
                            tokio::time::timeout(own.timeout, heartbeat_query(listener)).await;
                        match answered {
                            Ok(Ok(_)) => {}
                            Ok(Err(error)) => {
                                tracing::warn!(target: "bearer_auth_sqlx", channel, %error, "notifications listener's connection failed its heartbeat; reconnecting");
                                break;
                            }
                            Err(_) => {
                                tracing::warn!(target: "bearer_auth_sqlx", channel, timeout = ?own.timeout, "notifications listener's connection did not answer its heartbeat; reconnecting");
                                break;
                            }
                        }
                    }
                }
            }
            // Left to its pool, which is dropped: a connection that stopped answering
            // may never be handed back.
            drop(connected);
            // Evictions sent from now on are lost until the listener is back: meanwhile
            // the cache answers only within the default time to live, not the longer one
            // the notifications may have allowed. (Emptied now, it would turn every
            // request into a query, 503 through a database outage.)
            cache.set_unwatched(true);
            let mut failures: u32 = 0;
            connected = loop {
                let attempt = tokio::select! {
                    attempt = connect(&own.options, own.timeout, channel) => attempt,
                    () = stop.notified() => return,
                };
                match attempt {
                    Ok(connected) => break connected,
                    Err(failure) => {
                        // Once, then every 100th attempt (about every 10 s to minutes,
                        // as the waits for a connection go).
                        if failures.is_multiple_of(100) {
                            let error = match &failure {
                                Failure::Sql(error) => error.to_string(),
                                Failure::TimedOut(after) => {
                                    format!("no connection within {after:?}")
                                }
                            };
                            tracing::warn!(target: "bearer_auth_sqlx", channel, %error, attempts = failures + 1, "notifications listener cannot reconnect");
                        }
                        failures = failures.saturating_add(1);
                        tokio::select! {
                            () = tokio::time::sleep(RETRY) => {}
                            () = stop.notified() => return,
                        }
                    }
                }
            };
            // Notifications sent while the listener was away are lost: nothing cached
            // before now can be trusted beyond what the time to live already bounds.
            cache.evict_all();
            cache.set_unwatched(false);
            tracing::info!(target: "bearer_auth_sqlx", channel, "notifications listener reconnected; cache emptied");
        }
    }

    /// Evicts the digest a notification names, or everything for `*`.
    fn apply(cache: &Cache, payload: &str) {
        if payload == "*" {
            cache.evict_all();
        } else if let Some(digest) = TokenHash::from_hex(payload) {
            cache.evict(&digest);
        } else {
            // Not one of ours: never logged (it could be anything).
            tracing::debug!(target: "bearer_auth_sqlx", "ignored a notification that names no digest");
        }
    }
}

#[cfg(feature = "postgres")]
/// The triggers: name, table, and what follows `create trigger {name}`, where
/// `CHANNEL` stands for the channel.
const TRIGGERS: &[(&str, &str, &str)] = &[
    (
        "bearer_auth_sqlx_notify_delete",
        "personal_access_tokens",
        "after delete on personal_access_tokens for each row \
         execute function bearer_auth_sqlx_notify('CHANNEL')",
    ),
    // Only the columns the lookup reads (`id` for the token's id, `created_at` for the
    // maximum age), and only when one really changed: never the batched `last_used_at`
    // writes (a notifying commit takes a database-wide lock).
    (
        "bearer_auth_sqlx_notify_update",
        "personal_access_tokens",
        "after update of id, token, abilities, expires_at, created_at, tokenable_type, tokenable_id \
         on personal_access_tokens for each row \
         when (old.id is distinct from new.id \
         or old.token is distinct from new.token \
         or old.abilities is distinct from new.abilities \
         or old.expires_at is distinct from new.expires_at \
         or old.created_at is distinct from new.created_at \
         or old.tokenable_type is distinct from new.tokenable_type \
         or old.tokenable_id is distinct from new.tokenable_id) \
         execute function bearer_auth_sqlx_notify('CHANNEL')",
    ),
    (
        "bearer_auth_sqlx_notify_truncate",
        "personal_access_tokens",
        "after truncate on personal_access_tokens for each statement \
         execute function bearer_auth_sqlx_notify('CHANNEL')",
    ),
    // A second factor confirmed (deleted), or made pending again (inserted).
    (
        "bearer_auth_sqlx_notify_pending",
        "bearer_auth_pending_second_factors",
        "after insert or update or delete on bearer_auth_pending_second_factors for each row \
         execute function bearer_auth_sqlx_notify_pending('CHANNEL')",
    ),
];

#[cfg(feature = "postgres")]
/// The functions the triggers run: the digest of the row as it was (`*` for a
/// truncation) on the channel given as the trigger's argument, sent at the commit.
const FUNCTIONS: &[&str] = &[
    r#"create or replace function bearer_auth_sqlx_notify() returns trigger language plpgsql as $$
begin
  if tg_op = 'TRUNCATE' then
    perform pg_notify(tg_argv[0], '*');
  else
    perform pg_notify(tg_argv[0], old.token);
  end if;
  return null;
end
$$"#,
    // The key of a second factor confirmed (the cached answer said "pending"), made
    // pending (it said "not pending"), or both for an update.
    r#"create or replace function bearer_auth_sqlx_notify_pending() returns trigger language plpgsql as $$
declare
  digest text;
begin
  if tg_op in ('DELETE', 'UPDATE') then
    execute format('select token from %I.personal_access_tokens where id = $1', tg_table_schema)
      into digest using old.token_id;
    if digest is not null then
      perform pg_notify(tg_argv[0], digest);
    end if;
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    execute format('select token from %I.personal_access_tokens where id = $1', tg_table_schema)
      into digest using new.token_id;
    if digest is not null then
      perform pg_notify(tg_argv[0], digest);
    end if;
  end if;
  return null;
end
$$"#,
];

#[cfg(feature = "postgres")]
/// The comment on each trigger, which names the definitions it was installed from (a
/// digest of [`FUNCTIONS`] and [`TRIGGERS`]): [`SqlStore::listen_for_changes`] refuses
/// the triggers of another version, which would miss changes.
pub(crate) fn marker() -> String {
    let mut definitions = String::new();
    for function in FUNCTIONS {
        definitions.push_str(function);
        definitions.push('\n');
    }
    for (name, table, definition) in TRIGGERS {
        definitions.push_str(&format!("{name} {table} {definition}\n"));
    }
    let digest = bearer_auth::TokenHash::of(&definitions).to_hex();
    format!(
        "bearer_auth_sqlx notify {}",
        digest.get(..16).unwrap_or(&digest)
    )
}

#[cfg(feature = "postgres")]
/// Every statement [`install`] runs, in order, for `channel` (an identifier already
/// checked). Functions are replaced, triggers dropped and created again: an older
/// version's installation is replaced, not added to.
pub(crate) fn statements(channel: &str) -> Vec<String> {
    let mut out: Vec<String> = FUNCTIONS.iter().map(|f| (*f).to_owned()).collect();
    let marker = marker();
    for (name, table, definition) in TRIGGERS {
        out.push(format!("drop trigger if exists {name} on {table}"));
        out.push(format!(
            "create trigger {name} {}",
            definition.replace("CHANNEL", channel)
        ));
        out.push(format!(
            "comment on trigger {name} on {table} is '{marker}'"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "postgres")]
    fn the_marker_names_the_definitions_by_a_digest() {
        let marker = marker();
        let digest = marker
            .strip_prefix("bearer_auth_sqlx notify ")
            .unwrap_or_else(|| panic!("{marker}"));
        assert_eq!(digest.len(), 16, "{marker}");
        assert!(
            digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{marker}"
        );
        assert_eq!(marker, super::marker());
    }

    #[test]
    fn channel_names_are_plain_identifiers() {
        for ok in ["bearer_auth_sqlx", "a", "_x1", &"a".repeat(63)] {
            assert!(valid_channel(ok), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "Upper",
            "with space",
            "quote'",
            "dash-ed",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!valid_channel(bad), "{bad}");
        }
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn the_update_trigger_names_only_what_a_verification_reads() {
        let all = statements("chan");
        let update = all
            .iter()
            .find(|s| s.starts_with("create trigger bearer_auth_sqlx_notify_update"))
            .unwrap();
        assert!(!update.contains("last_used_at"), "{update}");
        assert!(!update.contains("updated_at"), "{update}");
        assert!(!update.contains(" name"), "{update}");
        for column in [
            "id",
            "token",
            "abilities",
            "expires_at",
            "created_at",
            "tokenable_type",
            "tokenable_id",
        ] {
            assert!(
                update.contains(&format!("old.{column} is distinct from new.{column}")),
                "{column}: {update}"
            );
        }
        assert!(update.ends_with("execute function bearer_auth_sqlx_notify('chan')"));
        assert_eq!(all.iter().filter(|s| s.contains("('chan')")).count(), 4);
        let marker = marker();
        assert_eq!(
            all.iter()
                .filter(
                    |s| s.starts_with("comment on trigger") && s.ends_with(&format!("'{marker}'"))
                )
                .count(),
            4
        );
    }
}
