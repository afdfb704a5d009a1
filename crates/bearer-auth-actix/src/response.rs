//! Carrying the core's rendering (`http` 1.x types) into an actix-web response (actix-web
//! 4 has its own status and header types), byte for byte.

use actix_web::{
    HttpResponse,
    http::{
        StatusCode,
        header::{HeaderName, HeaderValue},
    },
};
use bytes::Bytes;

/// Rebuilds `response` as an actix-web response: the same status code, the same header
/// names and values (a repeated name keeps its values in order), the same body bytes.
/// Only the order of *different* header names may change: actix-web's header map does
/// not keep it, and HTTP gives it no meaning.
///
/// Every status and header of an `http` 1.x response is also valid for actix-web's types
/// (both follow RFC 9110), so the fallbacks below are not expected to run; they exist so
/// that library code never panics, and they log at `error` if they ever do.
pub(crate) fn to_actix(response: &http::Response<Bytes>) -> HttpResponse {
    let status = match StatusCode::from_u16(response.status().as_u16()) {
        Ok(status) => status,
        Err(_) => {
            tracing::error!(
                target: "bearer_auth",
                status = response.status().as_u16(),
                "bearer-auth response has a status actix-web cannot send; answering 500"
            );
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    let mut converted = HttpResponse::with_body(status, response.body().clone());
    let headers = converted.headers_mut();
    for (name, value) in response.headers() {
        match (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            (Ok(name), Ok(value)) => headers.append(name, value),
            _ => tracing::error!(
                target: "bearer_auth",
                header = name.as_str(),
                "bearer-auth response header actix-web cannot send; dropped"
            ),
        }
    }
    converted.map_into_boxed_body()
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;
    use bearer_auth::{Challenge, InvalidReason, Rejection};

    use super::*;

    type Rendered = (u16, Vec<(String, Vec<u8>)>, Vec<u8>);

    /// Header names sorted; the values of one name stay in their order (stable sort).
    fn sorted(mut headers: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
        headers.sort_by(|a, b| a.0.cmp(&b.0));
        headers
    }

    fn core(response: &http::Response<Bytes>) -> Rendered {
        let headers = sorted(
            response
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
        );
        (
            response.status().as_u16(),
            headers,
            response.body().to_vec(),
        )
    }

    fn actix(response: HttpResponse) -> Rendered {
        let status = response.status().as_u16();
        let headers = sorted(
            response
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect(),
        );
        let body = response.into_body().try_into_bytes().unwrap().to_vec();
        (status, headers, body)
    }

    #[test]
    fn every_rejection_is_carried_byte_for_byte() {
        for challenge in [Challenge::new(), Challenge::with_realm("api").unwrap()] {
            for rejection in [
                Rejection::MissingCredentials,
                Rejection::InvalidToken(InvalidReason::Malformed),
                Rejection::InvalidToken(InvalidReason::Unknown),
                Rejection::InvalidToken(InvalidReason::Expired),
                Rejection::InvalidToken(InvalidReason::Revoked),
                Rejection::SecondFactorRequired,
                Rejection::MissingAbility,
                Rejection::unavailable("store down"),
            ] {
                let rendered: http::Response<Bytes> = rejection.to_response(&challenge);
                assert_eq!(actix(to_actix(&rendered)), core(&rendered), "{rejection}");
            }
        }
    }

    #[test]
    fn the_401_keeps_its_exact_headers() {
        let rendered: http::Response<Bytes> =
            Rejection::InvalidToken(InvalidReason::Unknown).to_response(&Challenge::new());
        let (status, headers, body) = actix(to_actix(&rendered));
        assert_eq!(status, 401);
        assert_eq!(
            headers,
            [
                ("content-type".to_owned(), b"application/json".to_vec()),
                (
                    "www-authenticate".to_owned(),
                    br#"Bearer error="invalid_token""#.to_vec()
                ),
            ]
        );
        assert_eq!(body, br#"{"message":"Unauthenticated."}"#);
    }

    #[test]
    fn repeated_header_names_are_kept_in_order() {
        let rendered = http::Response::builder()
            .status(418)
            .header("x-a", "1")
            .header("x-a", "2")
            .header("x-b", "tab\there")
            .body(Bytes::from_static(b"\x00\xffbytes"))
            .unwrap();
        assert_eq!(actix(to_actix(&rendered)), core(&rendered));
    }

    #[test]
    fn the_missing_layer_500_is_carried_too() {
        let rendered: http::Response<Bytes> = bearer_auth::missing_layer_response("u64");
        let (status, headers, body) = actix(to_actix(&rendered));
        assert_eq!(status, 500);
        assert_eq!(
            headers,
            [(
                "content-type".to_owned(),
                b"text/plain; charset=utf-8".to_vec()
            )]
        );
        assert_eq!(body, bearer_auth::MISSING_LAYER_BODY);
    }
}
