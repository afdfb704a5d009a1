//! The request pipeline shared by every adapter: parse, verify, apply the route's policy,
//! log a refusal, render the response.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Response, header::AUTHORIZATION};

use crate::{BearerToken, Challenge, InvalidRealm, Principal, Rejection, TokenVerifier};

/// What a route asks of a request beyond a valid token.
///
/// The default policy requires a valid token, no particular ability, and refuses a
/// token whose second factor is pending with 403.
///
/// ```
/// use bearer_auth::Policy;
///
/// // A route that also lets anonymous requests through, and needs `servers:read`
/// // from those that do authenticate.
/// let policy = Policy::new().optional().require_all(["servers:read"]);
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Policy {
    optional: bool,
    abilities: AbilityRequirement,
    accept_pending_second_factor: bool,
}

#[derive(Debug, Clone, Default)]
enum AbilityRequirement {
    #[default]
    None,
    All(Arc<[Box<str>]>),
    Any(Arc<[Box<str>]>),
}

impl Policy {
    /// The default policy: a valid token, nothing more.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets requests without an `Authorization` header through, with no principal.
    /// A header that is present but refused still gets 401.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Requires every one of `abilities` (403 `Invalid ability provided.` otherwise).
    pub fn require_all<I, S>(mut self, abilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        self.abilities = AbilityRequirement::All(abilities.into_iter().map(Into::into).collect());
        self
    }

    /// Requires at least one of `abilities` (403 `Invalid ability provided.` otherwise).
    pub fn require_any<I, S>(mut self, abilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Box<str>>,
    {
        self.abilities = AbilityRequirement::Any(abilities.into_iter().map(Into::into).collect());
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
        let allowed = match &self.abilities {
            AbilityRequirement::None => true,
            AbilityRequirement::All(required) => required.iter().all(|a| principal.has_ability(a)),
            AbilityRequirement::Any(required) => required.iter().any(|a| principal.has_ability(a)),
        };
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
}

impl<V> Authenticator<V> {
    /// The default policy and challenge around `verifier`.
    pub fn new(verifier: V) -> Self {
        Self {
            verifier,
            policy: Policy::default(),
            challenge: Challenge::default(),
        }
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

    /// Renders a rejection to the documented response.
    pub fn respond<B: From<Bytes>>(&self, rejection: &Rejection) -> Response<B> {
        rejection.to_response(&self.challenge)
    }
}

impl<V: TokenVerifier> Authenticator<V> {
    /// Reads the Bearer token from the values of every `Authorization` header.
    ///
    /// `Ok(None)` when there is none and the policy is [optional](Policy::optional).
    /// A refusal is logged here.
    pub fn read_token<'a, I>(&self, authorization: I) -> Result<Option<BearerToken>, Rejection>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        match BearerToken::from_header_values(authorization) {
            Ok(token) => Ok(Some(token)),
            Err(crate::ParseError::Missing) if self.policy.optional => Ok(None),
            Err(error) => Err(refused(error.into())),
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
    pub fn verify_now(&self, token: &BearerToken) -> Option<Result<V::Principal, Rejection>> {
        let outcome = self.verifier.verify_now(token)?;
        Some(self.decide(outcome))
    }

    /// Applies the policy to the verifier's answer, and logs a refusal.
    fn decide(&self, outcome: Result<V::Principal, Rejection>) -> Result<V::Principal, Rejection> {
        let outcome = match outcome {
            Ok(principal) => self.policy.check(&principal).map(|()| principal),
            Err(rejection) => Err(rejection),
        };
        outcome.map_err(refused)
    }

    /// [`read_token`](Self::read_token) then [`verify`](Self::verify).
    pub async fn authenticate<'a, I>(
        &self,
        authorization: I,
    ) -> Result<Option<V::Principal>, Rejection>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        match self.read_token(authorization)? {
            Some(token) => self.verify(&token).await.map(Some),
            None => Ok(None),
        }
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

/// Logs one event for a refusal: its reason, never the token or its digest.
fn refused(rejection: Rejection) -> Rejection {
    match &rejection {
        Rejection::Unavailable(source) => tracing::error!(
            target: "bearer_auth",
            reason = rejection.reason(),
            status = rejection.status().as_u16(),
            error = %source,
            "request refused: token verification unavailable"
        ),
        _ => tracing::debug!(
            target: "bearer_auth",
            reason = rejection.reason(),
            status = rejection.status().as_u16(),
            "request refused"
        ),
    }
    rejection
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
        let token = BearerToken::from_token(issued.plain_text_token().as_str()).unwrap();
        let open = Authenticator::new(store.clone());
        assert_eq!(open.verify_now(&token).unwrap().unwrap().owner(), "a");
        let strict = Authenticator::new(store).with_policy(Policy::new().require_all(["write"]));
        assert!(matches!(
            strict.verify_now(&token),
            Some(Err(Rejection::MissingAbility))
        ));
        // A verifier without a fast path leaves the answer to `verify`.
        assert!(auth(Policy::new()).verify_now(&token).is_none());
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
