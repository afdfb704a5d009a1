//! The request pipeline shared by every adapter: parse, verify, apply the route's policy,
//! log a refusal, render the response.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, Response, header::AUTHORIZATION};

use crate::{
    BearerToken, BearerTokenRef, Challenge, DEFAULT_ERROR_LOG_INTERVAL, DEFAULT_MAX_TOKEN_LEN,
    ErrorLogThrottle, InvalidRealm, Principal, Rejection, TokenVerifier, throttle::DisplayedText,
};

/// What a route asks of a request beyond a valid token.
///
/// The default policy requires a valid token, no particular ability, and refuses a
/// token whose second factor is pending with 403.
///
/// Ability requirements add up: every call to [`require_all`](Self::require_all) and
/// [`require_any`](Self::require_any) adds a condition, and a token must meet them all.
///
/// ```
/// use bearer_auth::Policy;
///
/// // A route that also lets anonymous requests through, and needs `servers:read`, and
/// // `servers:write` or `servers:admin`, from those that do authenticate.
/// let policy = Policy::new()
///     .optional()
///     .require_all(["servers:read"])
///     .require_any(["servers:write", "servers:admin"]);
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Policy {
    optional: bool,
    /// Abilities a token must hold, every one of them.
    all: Vec<Box<str>>,
    /// Groups of abilities, none empty: a token must hold one of each group.
    any: Vec<Box<[Box<str>]>>,
    accept_pending_second_factor: bool,
}

impl Policy {
    /// The default policy: a valid token, nothing more.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets requests without Bearer credentials (no `Authorization` header, or one of
    /// another scheme such as `Basic`) through, with no principal.
    ///
    /// # What an optional route checks
    ///
    /// - A request **without** Bearer credentials passes **without any check of this
    ///   policy**: the abilities of [`require_all`](Self::require_all) and
    ///   [`require_any`](Self::require_any) and the second-factor rule are conditions on
    ///   a token, and an anonymous request has none. Its handler sees no principal and
    ///   must serve it as anonymous.
    /// - A request **with** Bearer credentials is checked fully, as on a required route:
    ///   a malformed, unknown, expired, revoked or too long token gets 401, a pending
    ///   second factor 403 (unless [accepted](Self::accept_pending_second_factor)), a
    ///   missing ability 403, a backend failure 503. Presenting a token never earns less
    ///   checking than presenting none.
    ///
    /// ```
    /// use bearer_auth::{Authenticator, MemoryStore, NewToken, Policy, Rejection};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let store = MemoryStore::new();
    /// let reader = store.create(NewToken::new("bob".to_owned(), "ci").abilities(["read"])).unwrap();
    /// let auth = Authenticator::new(store)
    ///     .with_policy(Policy::new().optional().require_all(["write"]));
    ///
    /// // No credentials: let through, no principal, no ability checked.
    /// let none: [&[u8]; 0] = [];
    /// assert!(auth.authenticate(none).await.unwrap().is_none());
    /// // A token without `write`: refused, as on a required route.
    /// let header = format!("Bearer {}", reader.plain_text_token().as_str());
    /// let refused = auth.authenticate([header.as_bytes()]).await.unwrap_err();
    /// assert!(matches!(refused, Rejection::MissingAbility));
    /// # }
    /// ```
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Requires every one of `abilities` (403 `Invalid ability provided.` otherwise).
    ///
    /// Adds to the requirements set before: `require_all(["a"]).require_all(["b"])`
    /// requires both `a` and `b`. `require_all([])` adds nothing.
    pub fn require_all<I, S>(mut self, abilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        self.all.extend(abilities.into_iter().map(Into::into));
        self
    }

    /// Requires at least one of `abilities` (403 `Invalid ability provided.` otherwise).
    ///
    /// Adds to the requirements set before: each call is one group of which the token
    /// must hold an ability, besides every ability of [`require_all`](Self::require_all).
    ///
    /// # Panics
    ///
    /// When `abilities` is empty: no token holds one of no abilities, so the route would
    /// refuse every request with 403. This is a mistake in the program, reported where
    /// the route is built rather than on its first request. To require no ability, do
    /// not call this method.
    #[track_caller]
    pub fn require_any<I, S>(mut self, abilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        let group: Box<[Box<str>]> = abilities.into_iter().map(Into::into).collect();
        if group.is_empty() {
            panic!(
                "bearer-auth: `require_any` needs at least one ability; with none, every request \
                 would be refused with 403 (to require no ability, do not call it)"
            );
        }
        self.any.push(group);
        self
    }

    /// Accepts a token whose second factor is still pending. Meant for the route that
    /// completes the two-factor challenge, and for it only.
    pub fn accept_pending_second_factor(mut self) -> Self {
        self.accept_pending_second_factor = true;
        self
    }

    /// Whether requests without credentials are let through.
    pub fn is_optional(&self) -> bool {
        self.optional
    }

    /// Applies the policy to an accepted principal: the second factor first, then the
    /// abilities.
    pub fn check<P: Principal>(&self, principal: &P) -> Result<(), Rejection> {
        if principal.second_factor_pending() && !self.accept_pending_second_factor {
            return Err(Rejection::SecondFactorRequired);
        }
        let allowed = self.all.iter().all(|a| principal.has_ability(a))
            && self
                .any
                .iter()
                .all(|group| group.iter().any(|a| principal.has_ability(a)));
        if allowed {
            Ok(())
        } else {
            Err(Rejection::MissingAbility)
        }
    }
}

/// A verifier with a route's [`Policy`] and [`Challenge`]: everything an adapter needs to
/// decide about a request and answer it. The Tower and actix-web adapters are thin
/// wrappers around this type, so they decide and answer alike.
///
/// ```
/// use bearer_auth::{Authenticator, MemoryStore, NewToken, Policy};
/// use http::HeaderValue;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::<String>::new();
/// let issued = store.create(NewToken::new("alice".to_owned(), "ci")).unwrap();
/// let auth = Authenticator::new(store).with_policy(Policy::new().require_all(["deploy"]));
///
/// let header = HeaderValue::try_from(format!("Bearer {}", issued.plain_text_token().as_str())).unwrap();
/// let principal = auth.authenticate([header.as_bytes()]).await.unwrap().unwrap();
/// assert_eq!(principal.owner(), "alice");
///
/// let refused = auth.authenticate([&b"Bearer nope"[..]]).await.unwrap_err();
/// let response: http::Response<bytes::Bytes> = auth.respond(&refused);
/// assert_eq!(response.status(), 401);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Authenticator<V> {
    verifier: V,
    policy: Policy,
    challenge: Challenge,
    max_token_len: usize,
    /// Shared by clones: one backend, one stream of error events.
    error_log: Arc<ErrorLogThrottle>,
}

impl<V> Authenticator<V> {
    /// The default policy and challenge around `verifier`, tokens of at most
    /// [`DEFAULT_MAX_TOKEN_LEN`] bytes, and backend failures logged at most once per
    /// [`DEFAULT_ERROR_LOG_INTERVAL`].
    pub fn new(verifier: V) -> Self {
        Self {
            verifier,
            policy: Policy::default(),
            challenge: Challenge::default(),
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            error_log: Arc::new(ErrorLogThrottle::new(DEFAULT_ERROR_LOG_INTERVAL)),
        }
    }

    /// Accepts tokens of at most `max_len` bytes instead of [`DEFAULT_MAX_TOKEN_LEN`].
    ///
    /// A longer token is refused with the same 401 as a malformed one
    /// (`WWW-Authenticate: Bearer error="invalid_token"`, logged with reason `too_long`)
    /// before it is copied, hashed or shown to the verifier; see
    /// [`BearerToken::parse_with_max_len`] for how much of a long value is read.
    ///
    /// ```
    /// use bearer_auth::{Authenticator, MemoryStore, Rejection};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let auth = Authenticator::new(MemoryStore::<String>::new()).with_max_token_len(8);
    /// let refused = auth.authenticate([&b"Bearer 123456789"[..]]).await.unwrap_err();
    /// assert_eq!(refused.reason(), "too_long");
    /// let response: http::Response<bytes::Bytes> = auth.respond(&refused);
    /// assert_eq!(response.status(), 401);
    /// assert_eq!(response.headers()["www-authenticate"], r#"Bearer error="invalid_token""#);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// When `max_len` is 0: no token would ever be accepted.
    #[track_caller]
    pub fn with_max_token_len(mut self, max_len: usize) -> Self {
        if max_len == 0 {
            panic!("bearer-auth: the longest accepted token must be at least 1 byte long");
        }
        self.max_token_len = max_len;
        self
    }

    /// Logs each kind of failure of the verifier's backend ([`Rejection::Unavailable`], at
    /// `error`) at most once per `interval` instead of [`DEFAULT_ERROR_LOG_INTERVAL`].
    ///
    /// A kind is the text of the backend's error, as logged in the event's `error` field:
    /// each distinct error has its own interval, so that a failure a client can cause at
    /// will cannot keep another one (the database going down) out of the logs. The first
    /// failure of a kind is logged at once; those of that kind that follow within the
    /// interval are counted, and the first one after it is logged with their number in its
    /// `suppressed` field. At most 32 kinds are followed one by one, the others share one
    /// interval (see [`ErrorLogThrottle`]). A zero interval logs every failure. Clones of
    /// this authenticator (the services of one layer or middleware) share the counts.
    pub fn with_error_log_interval(mut self, interval: Duration) -> Self {
        self.error_log = Arc::new(ErrorLogThrottle::new(interval));
        self
    }

    /// Replaces the policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Replaces the challenge.
    pub fn with_challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = challenge;
        self
    }

    /// Sets the challenge's realm.
    pub fn with_realm(self, realm: &str) -> Result<Self, InvalidRealm> {
        Ok(self.with_challenge(Challenge::with_realm(realm)?))
    }

    /// Changes the policy in place.
    pub fn map_policy(mut self, f: impl FnOnce(Policy) -> Policy) -> Self {
        self.policy = f(self.policy);
        self
    }

    /// The verifier.
    pub fn verifier(&self) -> &V {
        &self.verifier
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The challenge.
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    /// The longest token accepted, in bytes.
    pub fn max_token_len(&self) -> usize {
        self.max_token_len
    }

    /// The shortest time between two logged backend failures of one kind.
    pub fn error_log_interval(&self) -> Duration {
        self.error_log.interval()
    }

    /// The throttle of this authenticator's error-level events, shared by its clones: the
    /// adapters log their own errors about a request (each kind once per
    /// [`error_log_interval`](Self::error_log_interval)) through it.
    pub fn error_log_throttle(&self) -> &ErrorLogThrottle {
        &self.error_log
    }

    /// Renders a rejection to the documented response.
    pub fn respond<B: From<Bytes>>(&self, rejection: &Rejection) -> Response<B> {
        rejection.to_response(&self.challenge)
    }
}

impl<V: TokenVerifier> Authenticator<V> {
    /// Reads the Bearer token from the values of every `Authorization` header, borrowed
    /// from them: no copy of the secret is made here. [`verify_now`](Self::verify_now)
    /// takes it as it is; [`BearerTokenRef::into_owned`] makes the copy that
    /// [`verify`](Self::verify) needs.
    ///
    /// `Ok(None)` when there is none and the policy is [optional](Policy::optional).
    /// A token longer than [`max_token_len`](Self::max_token_len) is refused here.
    /// A refusal is logged here.
    pub fn read_token<'a, I>(
        &self,
        authorization: I,
    ) -> Result<Option<BearerTokenRef<'a>>, Rejection>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        match BearerTokenRef::from_header_values_with_max_len(authorization, self.max_token_len) {
            Ok(token) => Ok(Some(token)),
            Err(crate::ParseError::Missing) if self.policy.optional => Ok(None),
            Err(error) => Err(self.refused(error.into())),
        }
    }

    /// Verifies the token and applies the policy. A refusal is logged here.
    pub async fn verify(&self, token: &BearerToken) -> Result<V::Principal, Rejection> {
        let outcome = self.verifier.verify(token).await;
        self.decide(outcome)
    }

    /// [`verify`](Self::verify) without waiting, when the verifier has the answer at hand
    /// ([`TokenVerifier::verify_now`]); `None` when [`verify`](Self::verify) must be
    /// awaited instead. The adapters try this first. A refusal is logged here.
    pub fn verify_now(&self, token: BearerTokenRef<'_>) -> Option<Result<V::Principal, Rejection>> {
        let outcome = self.verifier.verify_now(token)?;
        Some(self.decide(outcome))
    }

    /// Applies the policy to the verifier's answer, and logs a refusal.
    fn decide(&self, outcome: Result<V::Principal, Rejection>) -> Result<V::Principal, Rejection> {
        let outcome = match outcome {
            Ok(principal) => self.policy.check(&principal).map(|()| principal),
            Err(rejection) => Err(rejection),
        };
        outcome.map_err(|rejection| self.refused(rejection))
    }

    /// [`read_token`](Self::read_token) then [`verify_now`](Self::verify_now), or
    /// [`verify`](Self::verify) on an owned copy of the token when the verifier must be
    /// awaited.
    pub async fn authenticate<'a, I>(
        &self,
        authorization: I,
    ) -> Result<Option<V::Principal>, Rejection>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let Some(token) = self.read_token(authorization)? else {
            return Ok(None);
        };
        if let Some(outcome) = self.verify_now(token) {
            return outcome.map(Some);
        }
        self.verify(&token.into_owned()).await.map(Some)
    }

    /// [`authenticate`](Self::authenticate) with the headers of an `http` request.
    pub async fn authenticate_headers(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<V::Principal>, Rejection> {
        self.authenticate(headers.get_all(AUTHORIZATION).iter().map(|v| v.as_bytes()))
            .await
    }
}

impl<V> Authenticator<V> {
    /// Logs one event for a refusal: its reason, never the token or its digest. Backend
    /// failures are logged at `error`, each distinct error text at most once per interval
    /// with the number of those not logged; every other refusal at `debug`, each one.
    fn refused(&self, rejection: Rejection) -> Rejection {
        match &rejection {
            Rejection::Unavailable(source) => {
                if let Some(suppressed) = self.error_log.admit(&DisplayedText(source)) {
                    tracing::error!(
                        target: "bearer_auth",
                        reason = rejection.reason(),
                        status = rejection.status().as_u16(),
                        error = %source,
                        suppressed,
                        "request refused: token verification unavailable"
                    );
                }
            }
            _ => tracing::debug!(
                target: "bearer_auth",
                reason = rejection.reason(),
                status = rejection.status().as_u16(),
                "request refused"
            ),
        }
        rejection
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Abilities, InvalidReason, verifier_fn};

    #[derive(Clone, Debug)]
    struct User {
        abilities: Abilities,
        pending: bool,
    }

    impl Principal for User {
        fn has_ability(&self, ability: &str) -> bool {
            self.abilities.can(ability)
        }
        fn second_factor_pending(&self) -> bool {
            self.pending
        }
    }

    fn user(abilities: &[&str], pending: bool) -> User {
        User {
            abilities: Abilities::new(abilities.iter().copied()),
            pending,
        }
    }

    #[test]
    fn pending_second_factor_is_refused_unless_accepted() {
        let p = user(&["*"], true);
        assert!(matches!(
            Policy::new().check(&p),
            Err(Rejection::SecondFactorRequired)
        ));
        assert!(
            Policy::new()
                .accept_pending_second_factor()
                .check(&p)
                .is_ok()
        );
    }

    #[test]
    fn second_factor_is_checked_before_abilities() {
        let p = user(&[], true);
        let policy = Policy::new().require_all(["x"]);
        assert!(matches!(
            policy.check(&p),
            Err(Rejection::SecondFactorRequired)
        ));
    }

    #[test]
    fn require_all_needs_every_ability() {
        let policy = Policy::new().require_all(["a", "b"]);
        assert!(policy.check(&user(&["a", "b"], false)).is_ok());
        assert!(policy.check(&user(&["*"], false)).is_ok());
        assert!(matches!(
            policy.check(&user(&["a"], false)),
            Err(Rejection::MissingAbility)
        ));
    }

    #[test]
    fn require_any_needs_one_ability() {
        let policy = Policy::new().require_any(["a", "b"]);
        assert!(policy.check(&user(&["b"], false)).is_ok());
        assert!(matches!(
            policy.check(&user(&["c"], false)),
            Err(Rejection::MissingAbility)
        ));
    }

    #[test]
    fn repeated_require_all_add_up() {
        let policy = Policy::new().require_all(["a"]).require_all(["b"]);
        assert!(policy.check(&user(&["a", "b"], false)).is_ok());
        for held in [&["a"][..], &["b"]] {
            assert!(matches!(
                policy.check(&user(held, false)),
                Err(Rejection::MissingAbility)
            ));
        }
    }

    #[test]
    fn repeated_require_any_each_group_must_hold() {
        let policy = Policy::new()
            .require_any(["a", "b"])
            .require_any(["c", "d"]);
        assert!(policy.check(&user(&["a", "c"], false)).is_ok());
        assert!(policy.check(&user(&["b", "d"], false)).is_ok());
        assert!(policy.check(&user(&["*"], false)).is_ok());
        for held in [&["a", "b"][..], &["c", "d"], &["c"]] {
            assert!(matches!(
                policy.check(&user(held, false)),
                Err(Rejection::MissingAbility)
            ));
        }
    }

    #[test]
    fn require_all_and_require_any_combine_in_either_order() {
        for policy in [
            Policy::new().require_all(["a"]).require_any(["b", "c"]),
            Policy::new().require_any(["b", "c"]).require_all(["a"]),
        ] {
            assert!(policy.check(&user(&["a", "c"], false)).is_ok());
            assert!(matches!(
                policy.check(&user(&["a"], false)),
                Err(Rejection::MissingAbility)
            ));
            assert!(matches!(
                policy.check(&user(&["b", "c"], false)),
                Err(Rejection::MissingAbility)
            ));
        }
    }

    #[test]
    fn require_all_of_nothing_is_no_requirement() {
        let none: [&str; 0] = [];
        assert!(
            Policy::new()
                .require_all(none)
                .check(&user(&[], false))
                .is_ok()
        );
        // Nor does it lift an earlier requirement.
        let policy = Policy::new().require_all(["a"]).require_all(none);
        assert!(matches!(
            policy.check(&user(&[], false)),
            Err(Rejection::MissingAbility)
        ));
    }

    #[test]
    #[should_panic(expected = "`require_any` needs at least one ability")]
    fn require_any_of_nothing_panics_when_built() {
        let none: [&str; 0] = [];
        let _ = Policy::new().require_any(none);
    }

    fn auth(policy: Policy) -> Authenticator<impl TokenVerifier<Principal = User>> {
        Authenticator::new(verifier_fn(|t: BearerToken| async move {
            match t.as_str() {
                "ok" => Ok(user(&["read"], false)),
                "pending" => Ok(user(&["*"], true)),
                "down" => Err(Rejection::unavailable("store down")),
                _ => Err(Rejection::InvalidToken(InvalidReason::Unknown)),
            }
        }))
        .with_policy(policy)
    }

    #[tokio::test]
    async fn missing_header_is_refused_unless_optional() {
        let none: [&[u8]; 0] = [];
        assert!(matches!(
            auth(Policy::new()).authenticate(none).await,
            Err(Rejection::MissingCredentials)
        ));
        assert!(
            auth(Policy::new().optional())
                .authenticate(none)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn optional_still_refuses_a_bad_header() {
        let a = auth(Policy::new().optional());
        assert!(matches!(
            a.authenticate([&b"Bearer bad"[..]]).await,
            Err(Rejection::InvalidToken(InvalidReason::Unknown))
        ));
        assert!(matches!(
            a.authenticate([&b"Bearer a b"[..]]).await,
            Err(Rejection::InvalidToken(InvalidReason::Malformed))
        ));
    }

    #[tokio::test]
    async fn optional_route_skips_checks_for_anonymous_requests_only() {
        let a = auth(
            Policy::new()
                .optional()
                .require_all(["write"])
                .require_any(["admin"]),
        );
        // Anonymous: through, no principal, no ability asked.
        let none: [&[u8]; 0] = [];
        assert!(a.authenticate(none).await.unwrap().is_none());
        assert!(
            a.authenticate([&b"Basic dXNlcjpwYXNz"[..]])
                .await
                .unwrap()
                .is_none()
        );
        // A presented token: every check of a required route.
        assert!(matches!(
            a.authenticate([&b"Bearer ok"[..]]).await,
            Err(Rejection::MissingAbility)
        ));
        assert!(matches!(
            a.authenticate([&b"Bearer pending"[..]]).await,
            Err(Rejection::SecondFactorRequired)
        ));
        assert!(matches!(
            a.authenticate([&b"Bearer bad"[..]]).await,
            Err(Rejection::InvalidToken(InvalidReason::Unknown))
        ));
        assert!(matches!(
            a.authenticate([&b"Bearer down"[..]]).await,
            Err(Rejection::Unavailable(_))
        ));
    }

    /// A verifier that counts its calls and refuses every token.
    fn counting() -> (
        Arc<std::sync::atomic::AtomicUsize>,
        impl TokenVerifier<Principal = User>,
    ) {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let verifier = verifier_fn(move |_: BearerToken| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Err::<User, _>(Rejection::InvalidToken(InvalidReason::Unknown)) }
        });
        (calls, verifier)
    }

    fn calls(counter: &std::sync::atomic::AtomicUsize) -> usize {
        counter.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn tokens_past_the_bound_never_reach_the_verifier() {
        let (count, verifier) = counting();
        let a = Authenticator::new(verifier).with_max_token_len(16);
        assert_eq!(a.max_token_len(), 16);
        let at = format!("Bearer {}", "a".repeat(16));
        assert!(matches!(
            a.authenticate([at.as_bytes()]).await,
            Err(Rejection::InvalidToken(InvalidReason::Unknown))
        ));
        assert_eq!(calls(&count), 1);
        let past = format!("Bearer {}", "a".repeat(17));
        let refused = a.authenticate([past.as_bytes()]).await.unwrap_err();
        assert!(matches!(
            refused,
            Rejection::InvalidToken(InvalidReason::TooLong)
        ));
        assert_eq!(calls(&count), 1);
        let response: Response<Bytes> = a.respond(&refused);
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
        assert_eq!(response.body().as_ref(), crate::UNAUTHENTICATED_BODY);
    }

    #[tokio::test]
    async fn the_default_bound_refuses_a_400_kb_token_on_any_route() {
        let (count, verifier) = counting();
        let a = Authenticator::new(verifier).with_policy(Policy::new().optional());
        assert_eq!(a.max_token_len(), crate::DEFAULT_MAX_TOKEN_LEN);
        let huge = format!("Bearer {}", "a".repeat(400 * 1024));
        assert!(matches!(
            a.authenticate([huge.as_bytes()]).await,
            Err(Rejection::InvalidToken(InvalidReason::TooLong))
        ));
        let at = format!("Bearer {}", "a".repeat(crate::DEFAULT_MAX_TOKEN_LEN));
        assert!(matches!(
            a.authenticate([at.as_bytes()]).await,
            Err(Rejection::InvalidToken(InvalidReason::Unknown))
        ));
        assert_eq!(calls(&count), 1);
    }

    #[test]
    #[should_panic(expected = "at least 1 byte")]
    fn a_bound_of_zero_panics_when_built() {
        let _ = Authenticator::new(()).with_max_token_len(0);
    }

    #[test]
    fn the_getters_answer_what_was_configured() {
        assert!(!Policy::new().is_optional());
        assert!(Policy::new().optional().is_optional());
        let a = Authenticator::new(())
            .with_policy(Policy::new().optional())
            .with_realm("api")
            .unwrap();
        assert!(a.policy().is_optional());
        assert_eq!(a.challenge().missing_credentials(), r#"Bearer realm="api""#);
        assert_eq!(
            a.challenge().invalid_token(),
            r#"Bearer realm="api", error="invalid_token""#
        );
        let a = a.map_policy(|_| Policy::new());
        assert!(!a.policy().is_optional());
        let plain = Authenticator::new(());
        assert!(!plain.policy().is_optional());
        assert_eq!(plain.challenge().missing_credentials(), "Bearer");
    }

    #[test]
    fn error_log_interval_is_configurable_and_shared_by_clones() {
        let a = Authenticator::new(());
        assert_eq!(a.error_log_interval(), crate::DEFAULT_ERROR_LOG_INTERVAL);
        let b = a.with_error_log_interval(Duration::from_millis(5));
        assert_eq!(b.error_log_interval(), Duration::from_millis(5));
        assert!(Arc::ptr_eq(&b.error_log, &b.clone().error_log));
        assert!(std::ptr::eq(b.error_log_throttle(), &*b.error_log));
    }

    #[tokio::test]
    async fn backend_failure_is_unavailable_not_unauthenticated() {
        let r = auth(Policy::new())
            .authenticate([&b"Bearer down"[..]])
            .await
            .unwrap_err();
        assert_eq!(r.status(), 503);
    }

    #[tokio::test]
    async fn policy_applies_after_verification() {
        let a = auth(Policy::new().require_all(["write"]));
        assert!(matches!(
            a.authenticate([&b"Bearer ok"[..]]).await,
            Err(Rejection::MissingAbility)
        ));
        let a = auth(Policy::new());
        assert!(matches!(
            a.authenticate([&b"Bearer pending"[..]]).await,
            Err(Rejection::SecondFactorRequired)
        ));
        let a = auth(Policy::new().accept_pending_second_factor());
        assert!(
            a.authenticate([&b"Bearer pending"[..]])
                .await
                .unwrap()
                .unwrap()
                .pending
        );
    }

    #[test]
    fn verify_now_applies_the_policy_like_verify() {
        let store = crate::MemoryStore::<String>::new();
        let issued = store
            .create(crate::NewToken::new("a".to_owned(), "k").abilities(["read"]))
            .unwrap();
        let token = BearerTokenRef::from_token(issued.plain_text_token().as_str()).unwrap();
        let open = Authenticator::new(store.clone());
        assert_eq!(open.verify_now(token).unwrap().unwrap().owner(), "a");
        let strict = Authenticator::new(store).with_policy(Policy::new().require_all(["write"]));
        assert!(matches!(
            strict.verify_now(token),
            Some(Err(Rejection::MissingAbility))
        ));
        // A verifier without a fast path leaves the answer to `verify`.
        assert!(auth(Policy::new()).verify_now(token).is_none());
    }

    #[tokio::test]
    async fn headers_entry_point_refuses_two_headers() {
        let mut headers = HeaderMap::new();
        headers.append(AUTHORIZATION, http::HeaderValue::from_static("Bearer ok"));
        headers.append(AUTHORIZATION, http::HeaderValue::from_static("Bearer ok"));
        assert!(matches!(
            auth(Policy::new()).authenticate_headers(&headers).await,
            Err(Rejection::InvalidToken(InvalidReason::Malformed))
        ));
    }
}
