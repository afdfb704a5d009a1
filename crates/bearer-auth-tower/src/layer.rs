//! [`BearerAuthLayer`]: the route's configuration, applied to every service it wraps.

use std::sync::Arc;

use bearer_auth::{Authenticator, Challenge, InvalidRealm, Policy};
use tower_layer::Layer;

use crate::BearerAuthService;

/// Wraps services in [`BearerAuthService`]: Bearer-token authentication with one verifier, one
/// [`Policy`] and one [`Challenge`].
///
/// Use it with axum's `Router::layer` or `Router::route_layer`, with
/// `tower::ServiceBuilder`, or call [`Layer::layer`] yourself. Every option is a builder
/// method; the defaults require a valid token, no ability, and refuse a token whose
/// second factor is pending.
///
/// The layer is [`Clone`] (and implements [`Layer`]) when the verifier is. A
/// [`MemoryStore`](bearer_auth::MemoryStore) is; any other verifier can be shared by
/// wrapping it in an [`Arc`] (an `Arc<V>` is a verifier too).
///
/// ```
/// use axum::{Router, body::Body, routing::get};
/// use bearer_auth::{MemoryStore, NewToken};
/// use bearer_auth_tower::BearerAuthLayer;
/// use http::{Request, StatusCode, header::AUTHORIZATION};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::<String>::new();
/// let read_only = store
///     .create(NewToken::new("alice".to_owned(), "dashboard").abilities(["servers:read"]))
///     .unwrap();
///
/// let app = Router::new()
///     .route("/servers", get(|| async { "[]" }))
///     .route_layer(BearerAuthLayer::new(store).require_all(["servers:write"]));
///
/// let request = Request::get("/servers")
///     .header(AUTHORIZATION, format!("Bearer {}", read_only.plain_text_token().as_str()))
///     .body(Body::empty())
///     .unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), StatusCode::FORBIDDEN);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BearerAuthLayer<V> {
    auth: Authenticator<V>,
}

impl<V> BearerAuthLayer<V> {
    /// A layer checking tokens with `verifier`, with the default policy and challenge.
    pub fn new(verifier: V) -> Self {
        Self {
            auth: Authenticator::new(verifier),
        }
    }

    /// A layer around an [`Authenticator`] configured elsewhere.
    pub fn from_authenticator(auth: Authenticator<V>) -> Self {
        Self { auth }
    }

    /// Lets requests without an `Authorization` header (or with another scheme, such as
    /// `Basic`) through without a principal: the service records, under a type private
    /// to this crate, that the request is anonymous, so that `Authenticated<P>` answers
    /// 401 and `Option<Authenticated<P>>` gives `None`.
    ///
    /// **Anonymous requests pass without ability checks**: [`require_all`](Self::require_all),
    /// [`require_any`](Self::require_any) and the second-factor rule are conditions on a
    /// token, and such a request presents none. **A presented token is checked fully**,
    /// as on a required route: 401 if it is refused, 403 if its second factor is pending
    /// or it lacks a required ability, 503 if the backend failed. See
    /// [`Policy::optional`].
    pub fn optional(self) -> Self {
        self.map_policy(Policy::optional)
    }

    /// Requires every one of `abilities`; a token lacking one gets 403
    /// `{"message":"Invalid ability provided."}`. Adds to the requirements set before:
    /// the token must meet every [`require_all`](Self::require_all) and
    /// [`require_any`](Self::require_any) of the layer. `require_all([])` adds nothing.
    pub fn require_all<I, S>(self, abilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        self.map_policy(|policy| policy.require_all(abilities))
    }

    /// Requires at least one of `abilities`; a token with none of them gets 403
    /// `{"message":"Invalid ability provided."}`. Adds to the requirements set before:
    /// each call is one group of which the token must hold an ability.
    ///
    /// # Panics
    ///
    /// When `abilities` is empty, since the route would refuse every token with 403 (see
    /// [`Policy::require_any`]).
    #[track_caller]
    pub fn require_any<I, S>(self, abilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        // Not through `map_policy`: a closure would hide the caller's location from the
        // panic message.
        let policy = self.auth.policy().clone().require_any(abilities);
        self.policy(policy)
    }

    /// Accepts tokens of at most `max_len` bytes instead of
    /// [`DEFAULT_MAX_TOKEN_LEN`](bearer_auth::DEFAULT_MAX_TOKEN_LEN) (1 KiB). A longer
    /// token gets the 401 of an invalid one (`WWW-Authenticate: Bearer
    /// error="invalid_token"`) before it is copied, hashed or shown to the verifier. See
    /// [`Authenticator::with_max_token_len`].
    ///
    /// # Panics
    ///
    /// When `max_len` is 0.
    #[track_caller]
    pub fn max_token_len(self, max_len: usize) -> Self {
        Self {
            auth: self.auth.with_max_token_len(max_len),
        }
    }

    /// Accepts a token whose second factor is still pending. Meant for the route that
    /// completes the two-factor challenge, and for it only: everywhere else such a token
    /// gets 403 `{"message":"Two-factor authentication required.","requires_2fa":true}`.
    pub fn accept_pending_second_factor(self) -> Self {
        self.map_policy(Policy::accept_pending_second_factor)
    }

    /// Replaces the whole policy (and with it any option set before).
    pub fn policy(self, policy: Policy) -> Self {
        self.map_policy(|_| policy)
    }

    /// Replaces the `WWW-Authenticate` challenge sent with 401 responses.
    pub fn challenge(self, challenge: Challenge) -> Self {
        Self {
            auth: self.auth.with_challenge(challenge),
        }
    }

    /// Sends `realm="…"` in the `WWW-Authenticate` challenge of 401 responses.
    ///
    /// Fails if the realm cannot be sent in a header (control or non-ASCII characters).
    pub fn with_realm(self, realm: &str) -> Result<Self, InvalidRealm> {
        Ok(self.challenge(Challenge::with_realm(realm)?))
    }

    /// The verifier, policy and challenge this layer applies.
    pub fn authenticator(&self) -> &Authenticator<V> {
        &self.auth
    }

    fn map_policy(self, f: impl FnOnce(Policy) -> Policy) -> Self {
        Self {
            auth: self.auth.map_policy(f),
        }
    }
}

impl<S, V: Clone> Layer<S> for BearerAuthLayer<V> {
    type Service = BearerAuthService<S, V>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuthService::from_shared(inner, Arc::new(self.auth.clone()))
    }
}

#[cfg(test)]
mod tests {
    use bearer_auth::{Abilities, Principal, Rejection};

    use super::*;

    #[derive(Clone)]
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

    fn policy(layer: &BearerAuthLayer<()>) -> &Policy {
        layer.authenticator().policy()
    }

    #[test]
    fn default_is_required_with_no_ability_and_no_pending_factor() {
        let layer = BearerAuthLayer::new(());
        assert!(!policy(&layer).is_optional());
        assert!(policy(&layer).check(&user(&[], false)).is_ok());
        assert!(matches!(
            policy(&layer).check(&user(&["*"], true)),
            Err(Rejection::SecondFactorRequired)
        ));
    }

    #[test]
    fn optional_sets_the_policy() {
        assert!(policy(&BearerAuthLayer::new(()).optional()).is_optional());
    }

    #[test]
    fn require_all_and_any_reach_the_policy() {
        let all = BearerAuthLayer::new(()).require_all(["a", "b"]);
        assert!(matches!(
            policy(&all).check(&user(&["a"], false)),
            Err(Rejection::MissingAbility)
        ));
        let any = BearerAuthLayer::new(()).require_any(["a", "b"]);
        assert!(policy(&any).check(&user(&["a"], false)).is_ok());
    }

    #[test]
    fn options_combine() {
        let layer = BearerAuthLayer::new(())
            .optional()
            .require_any(["a"])
            .accept_pending_second_factor();
        assert!(policy(&layer).is_optional());
        assert!(policy(&layer).check(&user(&["a"], true)).is_ok());
        assert!(matches!(
            policy(&layer).check(&user(&["b"], true)),
            Err(Rejection::MissingAbility)
        ));
    }

    #[test]
    fn requirements_add_up() {
        let layer = BearerAuthLayer::new(())
            .require_all(["a"])
            .require_all(["b"])
            .require_any(["c", "d"])
            .require_any(["e"]);
        assert!(
            policy(&layer)
                .check(&user(&["a", "b", "d", "e"], false))
                .is_ok()
        );
        for held in [
            &["b", "d", "e"][..],
            &["a", "d", "e"],
            &["a", "b", "e"],
            &["a", "b", "c"],
        ] {
            assert!(matches!(
                policy(&layer).check(&user(held, false)),
                Err(Rejection::MissingAbility)
            ));
        }
        let none: [&str; 0] = [];
        let layer = BearerAuthLayer::new(()).require_all(none);
        assert!(policy(&layer).check(&user(&[], false)).is_ok());
    }

    #[test]
    #[should_panic(expected = "`require_any` needs at least one ability")]
    fn require_any_of_nothing_panics_when_built() {
        let none: [&str; 0] = [];
        let _ = BearerAuthLayer::new(()).require_any(none);
    }

    #[test]
    fn max_token_len_reaches_the_authenticator() {
        assert_eq!(
            BearerAuthLayer::new(()).authenticator().max_token_len(),
            bearer_auth::DEFAULT_MAX_TOKEN_LEN
        );
        let layer = BearerAuthLayer::new(()).max_token_len(64).optional();
        assert_eq!(layer.authenticator().max_token_len(), 64);
    }

    #[test]
    #[should_panic(expected = "at least 1 byte")]
    fn max_token_len_of_zero_panics_when_built() {
        let _ = BearerAuthLayer::new(()).max_token_len(0);
    }

    #[test]
    fn policy_replaces_earlier_options() {
        let layer = BearerAuthLayer::new(()).optional().policy(Policy::new());
        assert!(!policy(&layer).is_optional());
    }

    #[test]
    fn realm_reaches_the_challenge_and_bad_realm_is_refused() {
        let layer = BearerAuthLayer::new(()).with_realm("api").unwrap();
        assert_eq!(
            layer.authenticator().challenge().missing_credentials(),
            r#"Bearer realm="api""#
        );
        assert!(BearerAuthLayer::new(()).with_realm("a\nb").is_err());
    }

    #[test]
    fn challenge_replaces_the_challenge() {
        let layer = BearerAuthLayer::new(()).challenge(Challenge::with_realm("x").unwrap());
        assert_eq!(
            layer.authenticator().challenge().invalid_token(),
            r#"Bearer realm="x", error="invalid_token""#
        );
    }
}
