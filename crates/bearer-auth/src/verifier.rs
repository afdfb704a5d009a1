//! The one extension point: turning a [`BearerToken`] into a principal.

use std::{fmt, future::Future, sync::Arc};

use async_trait::async_trait;

use crate::{BearerToken, BearerTokenRef, Principal, Rejection};

/// Checks a Bearer token and returns who it belongs to.
///
/// Implement it for your own backend, or wrap an async closure with [`verifier_fn`]. The
/// [`MemoryStore`](crate::MemoryStore) implements it for keys it issued.
///
/// Return [`Rejection::InvalidToken`] for a token you do not accept (every reason gets the
/// same 401; the reason only reaches logs), and [`Rejection::Unavailable`] when your
/// backend failed: the client then gets 503, never 401. A token whose second factor is
/// pending should be *accepted* with a principal whose
/// [`second_factor_pending`](Principal::second_factor_pending) is `true`, so that the
/// two-factor challenge route can let it through; every other route refuses it with 403.
///
/// The trait is object safe: `Arc<dyn TokenVerifier<Principal = P>>` is a verifier too.
///
/// ```
/// use async_trait::async_trait;
/// use bearer_auth::{BearerToken, InvalidReason, Rejection, TokenVerifier};
///
/// struct StaticKey;
///
/// #[async_trait]
/// impl TokenVerifier for StaticKey {
///     type Principal = String;
///
///     async fn verify(&self, token: &BearerToken) -> Result<String, Rejection> {
///         // A real verifier compares digests in constant time; see `TokenHash`.
///         let expected = bearer_auth::TokenHash::of("s3cr3t");
///         if bearer_auth::TokenHash::of(token.as_str()) == expected {
///             Ok("ci-bot".to_owned())
///         } else {
///             Err(Rejection::InvalidToken(InvalidReason::Unknown))
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    /// What an accepted token stands for.
    type Principal: Principal;

    /// Accepts the token and returns its principal, or refuses it.
    async fn verify(&self, token: &BearerToken) -> Result<Self::Principal, Rejection>;

    /// The answer [`verify`](Self::verify) would give, when the verifier has it at hand
    /// without waiting; `None` when it must be awaited. The default is always `None`.
    ///
    /// This is a fast path for the adapters: they call `verify_now` first and await
    /// [`verify`](Self::verify) only when it returned `None`, which saves the allocations
    /// of an asynchronous call (the boxed future of `async-trait`, and the adapter's own)
    /// and the copy of the token: `verify_now` gets the token borrowed from the request's
    /// header ([`BearerTokenRef`]), `verify` an owned copy made only when it is awaited.
    /// A verifier that answers from memory, such as [`MemoryStore`](crate::MemoryStore),
    /// or from a cache on a hit, can implement it. When it returns `Some`, the answer must
    /// be the one `verify` gives for the same token, and count as the one use of the
    /// token (the adapters do not call `verify` then).
    ///
    /// ```
    /// use async_trait::async_trait;
    /// use bearer_auth::{BearerToken, BearerTokenRef, InvalidReason, Rejection, TokenVerifier};
    ///
    /// struct Fixed;
    ///
    /// impl Fixed {
    ///     fn check(&self, token: &str) -> Result<u64, Rejection> {
    ///         match token {
    ///             "let-me-in" => Ok(42),
    ///             _ => Err(Rejection::InvalidToken(InvalidReason::Unknown)),
    ///         }
    ///     }
    /// }
    ///
    /// #[async_trait]
    /// impl TokenVerifier for Fixed {
    ///     type Principal = u64;
    ///
    ///     async fn verify(&self, token: &BearerToken) -> Result<u64, Rejection> {
    ///         self.check(token.as_str())
    ///     }
    ///
    ///     fn verify_now(&self, token: BearerTokenRef<'_>) -> Option<Result<u64, Rejection>> {
    ///         Some(self.check(token.as_str()))
    ///     }
    /// }
    ///
    /// let token = BearerTokenRef::from_token("let-me-in").unwrap();
    /// assert_eq!(Fixed.verify_now(token).unwrap().unwrap(), 42);
    /// ```
    fn verify_now(&self, token: BearerTokenRef<'_>) -> Option<Result<Self::Principal, Rejection>> {
        let _ = token;
        None
    }
}

#[async_trait]
impl<V: TokenVerifier + ?Sized> TokenVerifier for Arc<V> {
    type Principal = V::Principal;

    async fn verify(&self, token: &BearerToken) -> Result<Self::Principal, Rejection> {
        (**self).verify(token).await
    }
    fn verify_now(&self, token: BearerTokenRef<'_>) -> Option<Result<Self::Principal, Rejection>> {
        (**self).verify_now(token)
    }
}

#[async_trait]
impl<V: TokenVerifier + ?Sized> TokenVerifier for Box<V> {
    type Principal = V::Principal;

    async fn verify(&self, token: &BearerToken) -> Result<Self::Principal, Rejection> {
        (**self).verify(token).await
    }
    fn verify_now(&self, token: BearerTokenRef<'_>) -> Option<Result<Self::Principal, Rejection>> {
        (**self).verify_now(token)
    }
}

#[async_trait]
impl<V: TokenVerifier + ?Sized> TokenVerifier for &V {
    type Principal = V::Principal;

    async fn verify(&self, token: &BearerToken) -> Result<Self::Principal, Rejection> {
        (**self).verify(token).await
    }
    fn verify_now(&self, token: BearerTokenRef<'_>) -> Option<Result<Self::Principal, Rejection>> {
        (**self).verify_now(token)
    }
}

/// Turns an async closure into a [`TokenVerifier`].
///
/// The closure receives its own copy of the token (zeroed when dropped).
///
/// ```
/// use bearer_auth::{BearerToken, InvalidReason, Rejection, TokenVerifier, verifier_fn};
///
/// let verifier = verifier_fn(|token: BearerToken| async move {
///     match token.as_str() {
///         "let-me-in" => Ok(42_u64),
///         _ => Err(Rejection::InvalidToken(InvalidReason::Unknown)),
///     }
/// });
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let token = BearerToken::from_token("let-me-in").unwrap();
/// assert_eq!(rt.block_on(verifier.verify(&token)).unwrap(), 42);
/// ```
pub fn verifier_fn<F, Fut, P>(f: F) -> VerifierFn<F>
where
    F: Fn(BearerToken) -> Fut + Send + Sync,
    Fut: Future<Output = Result<P, Rejection>> + Send,
    P: Principal,
{
    VerifierFn { f }
}

/// A [`TokenVerifier`] made from a closure by [`verifier_fn`].
#[derive(Clone, Copy)]
pub struct VerifierFn<F> {
    f: F,
}

impl<F> fmt::Debug for VerifierFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierFn")
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}

#[async_trait]
impl<F, Fut, P> TokenVerifier for VerifierFn<F>
where
    F: Fn(BearerToken) -> Fut + Send + Sync,
    Fut: Future<Output = Result<P, Rejection>> + Send,
    P: Principal,
{
    type Principal = P;

    async fn verify(&self, token: &BearerToken) -> Result<P, Rejection> {
        (self.f)(token.clone()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InvalidReason;

    fn closure() -> impl TokenVerifier<Principal = String> {
        verifier_fn(|token: BearerToken| async move {
            if token.as_str() == "good" {
                Ok("alice".to_owned())
            } else {
                Err(Rejection::InvalidToken(InvalidReason::Unknown))
            }
        })
    }

    fn token(s: &str) -> BearerToken {
        BearerToken::from_token(s).unwrap()
    }

    #[tokio::test]
    async fn closure_verifier_accepts_and_refuses() {
        let v = closure();
        assert_eq!(v.verify(&token("good")).await.unwrap(), "alice");
        assert!(matches!(
            v.verify(&token("bad")).await,
            Err(Rejection::InvalidToken(InvalidReason::Unknown))
        ));
    }

    #[tokio::test]
    async fn works_through_arc_box_ref_and_dyn() {
        let dynamic: Arc<dyn TokenVerifier<Principal = String>> = Arc::new(closure());
        assert_eq!(dynamic.verify(&token("good")).await.unwrap(), "alice");
        let boxed: Box<dyn TokenVerifier<Principal = String>> = Box::new(closure());
        assert_eq!(boxed.verify(&token("good")).await.unwrap(), "alice");
        let owned = closure();
        let by_ref = &owned;
        assert_eq!(by_ref.verify(&token("good")).await.unwrap(), "alice");
        let arc_dyn_in_arc = Arc::new(dynamic);
        assert!(arc_dyn_in_arc.verify(&token("bad")).await.is_err());
    }

    /// Answers at once: `now` for its fast path, `later` when awaited.
    struct Split;

    #[async_trait]
    impl TokenVerifier for Split {
        type Principal = &'static str;

        async fn verify(&self, _: &BearerToken) -> Result<&'static str, Rejection> {
            Ok("later")
        }

        fn verify_now(&self, _: BearerTokenRef<'_>) -> Option<Result<&'static str, Rejection>> {
            Some(Ok("now"))
        }
    }

    impl Principal for &'static str {}

    #[test]
    fn debug_names_the_closure_type() {
        fn answer(_: BearerToken) -> std::future::Ready<Result<u64, Rejection>> {
            std::future::ready(Ok(1))
        }
        let printed = format!("{:?}", verifier_fn(answer));
        assert!(printed.starts_with("VerifierFn { f: \""), "{printed}");
        assert!(printed.ends_with("\" }"), "{printed}");
    }

    #[test]
    fn verify_now_defaults_to_none() {
        assert!(closure().verify_now(token("good").as_borrowed()).is_none());
    }

    #[test]
    fn verify_now_is_forwarded_through_arc_box_and_ref() {
        let owned = token("x");
        let t = owned.as_borrowed();
        let arc: Arc<dyn TokenVerifier<Principal = &'static str>> = Arc::new(Split);
        assert_eq!(arc.verify_now(t).unwrap().unwrap(), "now");
        let boxed: Box<dyn TokenVerifier<Principal = &'static str>> = Box::new(Split);
        assert_eq!(boxed.verify_now(t).unwrap().unwrap(), "now");
        let by_ref = &Split;
        assert_eq!(
            <&Split as TokenVerifier>::verify_now(&by_ref, t)
                .unwrap()
                .unwrap(),
            "now"
        );
        assert_eq!(Arc::new(arc).verify_now(t).unwrap().unwrap(), "now");
    }
}
