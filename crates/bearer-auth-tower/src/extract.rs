//! axum extractors for the principal that [`BearerAuthService`](crate::BearerAuthService) accepted.

use std::{any::type_name, error::Error, fmt, ops::Deref};

use axum_core::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
use bearer_auth::{Principal, Unauthenticated};
use http::{Extensions, StatusCode, request::Parts};

use crate::outcome::Outcome;

/// The principal of an authenticated request, for axum handlers.
///
/// The [`BearerAuthService`](crate::BearerAuthService) service put it into the request
/// extensions, under a type private to this crate; this extractor hands a clone of it to
/// the handler. A value of type `P` that another middleware stored is never taken for it. On an
/// [optional](crate::BearerAuthLayer::optional) route, take `Option<Authenticated<P>>`:
/// `None` when the request came without credentials.
///
/// `P` must be the verifier's principal type (`AccessToken<O>` for a
/// [`MemoryStore<O>`](bearer_auth::MemoryStore)). When the extractor finds no
/// principal it answers with an [`AuthenticatedRejection`]:
///
/// - 401 `{"message":"Unauthenticated."}` with the route's challenge, if an optional
///   route let the request through without credentials and the handler takes
///   `Authenticated<P>` rather than `Option<Authenticated<P>>`;
/// - 500, logged, if no bearer-auth layer with this principal type covers the route:
///   a programming error, not the client's.
///
/// ```
/// use axum::{Router, body::Body, routing::get};
/// use bearer_auth::{AccessToken, MemoryStore, NewToken};
/// use bearer_auth_tower::{Authenticated, BearerAuthLayer};
/// use http::{Request, StatusCode, header::AUTHORIZATION};
/// use tower::ServiceExt;
///
/// async fn me(Authenticated(token): Authenticated<AccessToken<String>>) -> String {
///     format!("hello {}", token.owner())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let issued = store.create(NewToken::new("alice".to_owned(), "cli")).unwrap();
/// let app = Router::new()
///     .route("/me", get(me))
///     .layer(BearerAuthLayer::new(store));
///
/// let request = Request::get("/me")
///     .header(AUTHORIZATION, format!("Bearer {}", issued.plain_text_token().as_str()))
///     .body(Body::empty())
///     .unwrap();
/// let response = app.clone().oneshot(request).await.unwrap();
/// assert_eq!(response.status(), StatusCode::OK);
///
/// let anonymous = Request::get("/me").body(Body::empty()).unwrap();
/// let response = app.oneshot(anonymous).await.unwrap();
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Authenticated<P>(pub P);

impl<P> Authenticated<P> {
    /// The principal.
    pub fn into_inner(self) -> P {
        self.0
    }
}

impl<P> Deref for Authenticated<P> {
    type Target = P;

    fn deref(&self) -> &P {
        &self.0
    }
}

/// Why [`Authenticated<P>`] found no principal. Its response is the core's.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum AuthenticatedRejection {
    /// An [optional](crate::BearerAuthLayer::optional) route let the request through
    /// without credentials, but the handler requires a principal: 401
    /// `{"message":"Unauthenticated."}` with the route's `WWW-Authenticate` challenge.
    Unauthenticated(Unauthenticated),
    /// No bearer-auth layer with this principal type ran before the extractor: 500
    /// with [`MISSING_LAYER_BODY`](bearer_auth::MISSING_LAYER_BODY), logged as a
    /// misconfiguration when the response is built.
    MissingLayer {
        /// The type name of the principal the handler asked for.
        principal: &'static str,
    },
}

impl AuthenticatedRejection {
    /// The response status: 401 or 500.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::MissingLayer { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for AuthenticatedRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unauthenticated(_) => f.write_str("the request carries no bearer credentials"),
            Self::MissingLayer { principal } => write!(
                f,
                "no bearer-auth layer with principal type `{principal}` covers this route"
            ),
        }
    }
}

impl Error for AuthenticatedRejection {}

impl IntoResponse for AuthenticatedRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthenticated(marker) => marker.response(),
            Self::MissingLayer { principal } => bearer_auth::missing_layer_response(principal),
        }
    }
}

/// What the layer left in the extensions for a principal of type `P`: only its own
/// private [`Outcome`] counts, never a `P` that another middleware stored.
fn lookup<P: Principal>(extensions: &Extensions) -> Result<&Outcome<P>, AuthenticatedRejection> {
    extensions
        .get::<Outcome<P>>()
        .ok_or_else(|| AuthenticatedRejection::MissingLayer {
            principal: type_name::<P>(),
        })
}

impl<P, S> FromRequestParts<S> for Authenticated<P>
where
    P: Principal,
    S: Send + Sync,
{
    type Rejection = AuthenticatedRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match lookup::<P>(&parts.extensions)? {
            Outcome::Accepted(principal) => Ok(Self(principal.clone())),
            Outcome::Anonymous(marker) => {
                Err(AuthenticatedRejection::Unauthenticated(marker.clone()))
            }
        }
    }
}

impl<P, S> OptionalFromRequestParts<S> for Authenticated<P>
where
    P: Principal,
    S: Send + Sync,
{
    type Rejection = AuthenticatedRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match lookup::<P>(&parts.extensions)? {
            Outcome::Accepted(principal) => Ok(Some(Self(principal.clone()))),
            Outcome::Anonymous(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum_core::body::Body;
    use bearer_auth::{Challenge, MISSING_LAYER_BODY, UNAUTHENTICATED_BODY};
    use http::Request;
    use http_body_util::BodyExt;

    use super::*;

    /// A request's parts, with what the service would leave and what another
    /// middleware stored under the principal's own type.
    fn parts(outcome: Option<Outcome<u64>>, outer: Option<u64>) -> Parts {
        let mut request = Request::new(());
        if let Some(outcome) = outcome {
            request.extensions_mut().insert(outcome);
        }
        if let Some(outer) = outer {
            request.extensions_mut().insert(outer);
        }
        request.into_parts().0
    }

    fn anonymous() -> Option<Outcome<u64>> {
        let challenge = Challenge::with_realm("api").unwrap();
        Some(Outcome::Anonymous(Unauthenticated::new(challenge)))
    }

    async fn required(mut parts: Parts) -> Result<Authenticated<u64>, AuthenticatedRejection> {
        <Authenticated<u64> as FromRequestParts<()>>::from_request_parts(&mut parts, &()).await
    }

    async fn optional(
        mut parts: Parts,
    ) -> Result<Option<Authenticated<u64>>, AuthenticatedRejection> {
        <Authenticated<u64> as OptionalFromRequestParts<()>>::from_request_parts(&mut parts, &())
            .await
    }

    async fn body(response: Response) -> Vec<u8> {
        let body: Body = response.into_body();
        body.collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn principal_is_extracted_and_left_in_place() {
        let mut parts = parts(Some(Outcome::Accepted(7)), Some(424_242));
        let Authenticated(id) =
            <Authenticated<u64> as FromRequestParts<()>>::from_request_parts(&mut parts, &())
                .await
                .unwrap();
        assert_eq!(id, 7);
        assert_eq!(crate::principal::<u64>(&parts.extensions), Some(&7));
        assert_eq!(*optional(parts).await.unwrap().unwrap(), 7);
    }

    #[tokio::test]
    async fn marker_is_401_when_required_and_none_when_optional() {
        for outer in [None, Some(424_242)] {
            let rejection = required(parts(anonymous(), outer)).await.unwrap_err();
            assert_eq!(rejection.status(), 401);
            let response = rejection.into_response();
            assert_eq!(response.status(), 401);
            assert_eq!(
                response.headers()["www-authenticate"],
                r#"Bearer realm="api""#
            );
            assert_eq!(response.headers()["content-type"], "application/json");
            assert_eq!(body(response).await, UNAUTHENTICATED_BODY);
            assert!(optional(parts(anonymous(), outer)).await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn nothing_is_a_500_naming_the_principal_type() {
        // A `u64` that another middleware stored is not the service's doing.
        for outer in [None, Some(424_242)] {
            for rejection in [
                required(parts(None, outer)).await.unwrap_err(),
                optional(parts(None, outer)).await.unwrap_err(),
            ] {
                assert!(matches!(
                    rejection,
                    AuthenticatedRejection::MissingLayer { principal: "u64" }
                ));
                assert_eq!(
                    rejection.to_string(),
                    "no bearer-auth layer with principal type `u64` covers this route"
                );
                let response = rejection.into_response();
                assert_eq!(response.status(), 500);
                assert_eq!(
                    response.headers()["content-type"],
                    "text/plain; charset=utf-8"
                );
                assert_eq!(body(response).await, MISSING_LAYER_BODY);
            }
        }
    }

    #[test]
    fn into_inner_and_deref_give_the_principal() {
        let authenticated = Authenticated(7_u64);
        assert_eq!(*authenticated, 7);
        assert_eq!(authenticated.into_inner(), 7);
    }
}
