//! Why a request is refused, and the exact response it gets.
//!
//! | rejection | status | body |
//! |---|---|---|
//! | [`Rejection::MissingCredentials`], [`Rejection::InvalidToken`] | 401 | `{"message":"Unauthenticated."}` |
//! | [`Rejection::SecondFactorRequired`] | 403 | `{"message":"Two-factor authentication required.","requires_2fa":true}` |
//! | [`Rejection::MissingAbility`] | 403 | `{"message":"Invalid ability provided."}` |
//! | [`Rejection::Unavailable`] | 503 | `{"message":"Service Unavailable."}` |
//!
//! Every response has `Content-Type: application/json`. A 401 also carries a
//! `WWW-Authenticate` challenge (see [`Challenge`]): `Bearer` when the request had no
//! Bearer credentials, `Bearer error="invalid_token"` when it had some and they were
//! refused (RFC 6750 §3).

use std::{error::Error as StdError, fmt};

use bytes::Bytes;
use http::{
    HeaderValue, Response, StatusCode,
    header::{CONTENT_TYPE, WWW_AUTHENTICATE},
};

use crate::parse::ParseError;

/// A boxed error from a verifier's backend, kept for logs.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The body of every 401 response.
pub const UNAUTHENTICATED_BODY: &[u8] = br#"{"message":"Unauthenticated."}"#;
/// The body of the 403 response for a token whose second factor is still pending.
pub const SECOND_FACTOR_BODY: &[u8] =
    br#"{"message":"Two-factor authentication required.","requires_2fa":true}"#;
/// The body of the 403 response for a token that lacks a required ability.
pub const MISSING_ABILITY_BODY: &[u8] = br#"{"message":"Invalid ability provided."}"#;
/// The body of the 503 response when the verifier's backend failed.
pub const UNAVAILABLE_BODY: &[u8] = br#"{"message":"Service Unavailable."}"#;

/// Why a presented token was refused. Only logs see the difference: every reason gets
/// the same 401 response.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidReason {
    /// The credentials do not follow the Bearer grammar (or the Sanctum `id|secret` split).
    Malformed,
    /// No key matches the token: an unknown id, or a known id with a wrong secret.
    Unknown,
    /// The key has expired.
    Expired,
    /// The key was revoked (for stores that remember revoked keys).
    Revoked,
    /// The token is longer than the bound
    /// ([`DEFAULT_MAX_TOKEN_LEN`](crate::DEFAULT_MAX_TOKEN_LEN) unless configured
    /// otherwise); it was refused before any copy or hash.
    TooLong,
}

impl InvalidReason {
    /// A short, stable name for logs: `malformed`, `unknown`, `expired`, `revoked` or
    /// `too_long`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::TooLong => "too_long",
        }
    }
}

/// Why a request was refused. Each variant knows its [status](Self::status), its exact
/// [body](Self::body) and, with a [`Challenge`], its headers.
///
/// ```
/// use bearer_auth::{Challenge, Rejection};
///
/// let response: http::Response<bytes::Bytes> =
///     Rejection::MissingCredentials.to_response(&Challenge::default());
/// assert_eq!(response.status(), 401);
/// assert_eq!(response.headers()["www-authenticate"], "Bearer");
/// assert_eq!(response.body().as_ref(), br#"{"message":"Unauthenticated."}"#);
/// ```
#[non_exhaustive]
#[derive(Debug)]
pub enum Rejection {
    /// The request carried no Bearer credentials (no `Authorization` header, or another
    /// scheme). 401 with a bare `Bearer` challenge.
    MissingCredentials,
    /// Bearer credentials were sent and refused. 401 with `error="invalid_token"`.
    InvalidToken(InvalidReason),
    /// The token is valid but its second factor is still pending. 403.
    SecondFactorRequired,
    /// The token is valid but lacks an ability the route requires. 403.
    MissingAbility,
    /// The verifier's backend failed (store down, timeout). 503: the client's key is
    /// not the problem. The source error is kept for logs and never sent to the client.
    Unavailable(BoxError),
}

impl Rejection {
    /// A [`Rejection::Unavailable`] carrying `error` as its source.
    pub fn unavailable<E>(error: E) -> Self
    where
        E: Into<BoxError>,
    {
        Self::Unavailable(error.into())
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingCredentials | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::SecondFactorRequired | Self::MissingAbility => StatusCode::FORBIDDEN,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The exact response body (JSON).
    pub fn body(&self) -> &'static [u8] {
        match self {
            Self::MissingCredentials | Self::InvalidToken(_) => UNAUTHENTICATED_BODY,
            Self::SecondFactorRequired => SECOND_FACTOR_BODY,
            Self::MissingAbility => MISSING_ABILITY_BODY,
            Self::Unavailable(_) => UNAVAILABLE_BODY,
        }
    }

    /// A short, stable name of the reason, for logs and metrics: `missing`, `malformed`,
    /// `unknown`, `expired`, `revoked`, `too_long`, `second_factor`, `ability` or
    /// `backend`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingCredentials => "missing",
            Self::InvalidToken(reason) => reason.as_str(),
            Self::SecondFactorRequired => "second_factor",
            Self::MissingAbility => "ability",
            Self::Unavailable(_) => "backend",
        }
    }

    /// Renders the documented response: status, `Content-Type: application/json`, the
    /// `WWW-Authenticate` challenge on 401, and the body. Both framework adapters send
    /// these bytes.
    pub fn to_response<B>(&self, challenge: &Challenge) -> Response<B>
    where
        B: From<Bytes>,
    {
        let mut response = Response::new(B::from(Bytes::from_static(self.body())));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(value) = challenge.for_rejection(self) {
            headers.insert(WWW_AUTHENTICATE, value.clone());
        }
        response
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingCredentials => f.write_str("no bearer credentials"),
            Self::InvalidToken(reason) => write!(f, "bearer token refused ({})", reason.as_str()),
            Self::SecondFactorRequired => f.write_str("second factor pending"),
            Self::MissingAbility => f.write_str("token lacks a required ability"),
            Self::Unavailable(source) => write!(f, "token verification unavailable: {source}"),
        }
    }
}

impl StdError for Rejection {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Unavailable(source) => Some(&**source as &(dyn StdError + 'static)),
            _ => None,
        }
    }
}

impl From<ParseError> for Rejection {
    fn from(error: ParseError) -> Self {
        match error {
            ParseError::Missing => Self::MissingCredentials,
            ParseError::Malformed => Self::InvalidToken(InvalidReason::Malformed),
            ParseError::TooLong => Self::InvalidToken(InvalidReason::TooLong),
        }
    }
}

/// The `WWW-Authenticate` values sent with a 401, with an optional `realm`.
///
/// Built once when a layer or middleware is configured; rendering a rejection only clones
/// a prepared header value.
///
/// ```
/// use bearer_auth::Challenge;
///
/// let challenge = Challenge::with_realm("api").unwrap();
/// assert_eq!(challenge.missing_credentials(), r#"Bearer realm="api""#);
/// assert_eq!(challenge.invalid_token(), r#"Bearer realm="api", error="invalid_token""#);
/// ```
#[derive(Debug, Clone)]
pub struct Challenge {
    missing: HeaderValue,
    invalid: HeaderValue,
}

impl Default for Challenge {
    fn default() -> Self {
        Self {
            missing: HeaderValue::from_static("Bearer"),
            invalid: HeaderValue::from_static(r#"Bearer error="invalid_token""#),
        }
    }
}

impl Challenge {
    /// The challenge without a realm: `Bearer` and `Bearer error="invalid_token"`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The challenge with `realm="…"` first, as RFC 6750 §3 shows it. The realm may hold
    /// printable ASCII (`"` and `\` are escaped); anything else is an [`InvalidRealm`].
    pub fn with_realm(realm: &str) -> Result<Self, InvalidRealm> {
        let mut quoted = String::with_capacity(realm.len() + 2);
        for c in realm.chars() {
            match c {
                '"' | '\\' => {
                    quoted.push('\\');
                    quoted.push(c);
                }
                ' '..='~' => quoted.push(c),
                _ => return Err(InvalidRealm(())),
            }
        }
        let missing = format!(r#"Bearer realm="{quoted}""#);
        let invalid = format!(r#"Bearer realm="{quoted}", error="invalid_token""#);
        Ok(Self {
            missing: HeaderValue::try_from(missing).map_err(|_| InvalidRealm(()))?,
            invalid: HeaderValue::try_from(invalid).map_err(|_| InvalidRealm(()))?,
        })
    }

    /// The value sent when the request had no Bearer credentials.
    pub fn missing_credentials(&self) -> &HeaderValue {
        &self.missing
    }

    /// The value sent when a Bearer token was presented and refused.
    pub fn invalid_token(&self) -> &HeaderValue {
        &self.invalid
    }

    /// The value a rejection is sent with, if any (only 401 responses carry one).
    pub fn for_rejection(&self, rejection: &Rejection) -> Option<&HeaderValue> {
        match rejection {
            Rejection::MissingCredentials => Some(&self.missing),
            Rejection::InvalidToken(_) => Some(&self.invalid),
            _ => None,
        }
    }
}

/// A realm that cannot be sent in a `WWW-Authenticate` header (control or non-ASCII
/// characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRealm(());

impl fmt::Display for InvalidRealm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("realm must be printable ASCII")
    }
}

impl StdError for InvalidRealm {}

#[cfg(test)]
mod tests {
    use super::*;

    type Header = (String, Vec<u8>);

    fn render(r: &Rejection, c: &Challenge) -> (u16, Vec<Header>, Vec<u8>) {
        let res: Response<Bytes> = r.to_response(c);
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        (res.status().as_u16(), headers, res.body().to_vec())
    }

    fn h(name: &str, value: &[u8]) -> Header {
        (name.to_owned(), value.to_vec())
    }

    #[test]
    fn missing_credentials_is_401_with_bare_challenge() {
        let (status, headers, body) = render(&Rejection::MissingCredentials, &Challenge::new());
        assert_eq!(status, 401);
        assert_eq!(body, b"{\"message\":\"Unauthenticated.\"}");
        assert_eq!(
            headers,
            vec![
                h("content-type", b"application/json"),
                h("www-authenticate", b"Bearer")
            ]
        );
    }

    #[test]
    fn invalid_token_is_401_with_invalid_token_error() {
        for reason in [
            InvalidReason::Malformed,
            InvalidReason::Unknown,
            InvalidReason::Expired,
            InvalidReason::Revoked,
            InvalidReason::TooLong,
        ] {
            let (status, headers, body) =
                render(&Rejection::InvalidToken(reason), &Challenge::new());
            assert_eq!(status, 401);
            assert_eq!(body, b"{\"message\":\"Unauthenticated.\"}");
            assert_eq!(
                headers,
                vec![
                    h("content-type", b"application/json"),
                    h("www-authenticate", b"Bearer error=\"invalid_token\""),
                ]
            );
        }
    }

    #[test]
    fn second_factor_is_403_without_challenge() {
        let (status, headers, body) = render(&Rejection::SecondFactorRequired, &Challenge::new());
        assert_eq!(status, 403);
        assert_eq!(
            body,
            b"{\"message\":\"Two-factor authentication required.\",\"requires_2fa\":true}"
        );
        assert_eq!(headers, vec![h("content-type", b"application/json")]);
    }

    #[test]
    fn missing_ability_is_403_without_challenge() {
        let (status, headers, body) = render(&Rejection::MissingAbility, &Challenge::new());
        assert_eq!(status, 403);
        assert_eq!(body, b"{\"message\":\"Invalid ability provided.\"}");
        assert_eq!(headers, vec![h("content-type", b"application/json")]);
    }

    #[test]
    fn unavailable_is_503_and_keeps_its_source() {
        let rejection = Rejection::unavailable(std::io::Error::other("db down"));
        let (status, headers, body) = render(&rejection, &Challenge::new());
        assert_eq!(status, 503);
        assert_eq!(body, b"{\"message\":\"Service Unavailable.\"}");
        assert_eq!(headers, vec![h("content-type", b"application/json")]);
        assert_eq!(rejection.source().unwrap().to_string(), "db down");
        assert_eq!(
            rejection.to_string(),
            "token verification unavailable: db down"
        );
    }

    #[test]
    fn realm_comes_first_and_params_are_comma_separated() {
        let c = Challenge::with_realm("example").unwrap();
        let (_, headers, _) = render(&Rejection::MissingCredentials, &c);
        assert_eq!(
            headers[1],
            h("www-authenticate", b"Bearer realm=\"example\"")
        );
        let (_, headers, _) = render(&Rejection::InvalidToken(InvalidReason::Unknown), &c);
        assert_eq!(
            headers[1],
            h(
                "www-authenticate",
                b"Bearer realm=\"example\", error=\"invalid_token\""
            )
        );
    }

    #[test]
    fn realm_quotes_are_escaped_and_control_bytes_refused() {
        let c = Challenge::with_realm(r#"a"b\c"#).unwrap();
        assert_eq!(c.missing_credentials(), r#"Bearer realm="a\"b\\c""#);
        assert_eq!(Challenge::with_realm("a\nb").unwrap_err(), InvalidRealm(()));
        assert_eq!(Challenge::with_realm("é").unwrap_err(), InvalidRealm(()));
        assert_eq!(
            InvalidRealm(()).to_string(),
            "realm must be printable ASCII"
        );
    }

    #[test]
    fn parse_errors_map_to_their_challenges() {
        assert!(matches!(
            Rejection::from(ParseError::Missing),
            Rejection::MissingCredentials
        ));
        assert!(matches!(
            Rejection::from(ParseError::Malformed),
            Rejection::InvalidToken(InvalidReason::Malformed)
        ));
        assert!(matches!(
            Rejection::from(ParseError::TooLong),
            Rejection::InvalidToken(InvalidReason::TooLong)
        ));
    }

    #[test]
    fn reasons_are_stable_names() {
        let names: Vec<_> = [
            Rejection::MissingCredentials,
            Rejection::InvalidToken(InvalidReason::Malformed),
            Rejection::InvalidToken(InvalidReason::Unknown),
            Rejection::InvalidToken(InvalidReason::Expired),
            Rejection::InvalidToken(InvalidReason::Revoked),
            Rejection::InvalidToken(InvalidReason::TooLong),
            Rejection::SecondFactorRequired,
            Rejection::MissingAbility,
            Rejection::unavailable("x"),
        ]
        .iter()
        .map(Rejection::reason)
        .collect();
        assert_eq!(
            names,
            [
                "missing",
                "malformed",
                "unknown",
                "expired",
                "revoked",
                "too_long",
                "second_factor",
                "ability",
                "backend"
            ]
        );
    }
}
