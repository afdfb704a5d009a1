//! Marking the `Authorization` header sensitive: [`mark_authorization_sensitive`], and
//! how the middleware does it on a request an outer middleware may share.

use std::panic::{AssertUnwindSafe, catch_unwind};

use actix_web::{
    dev::ServiceRequest,
    http::header::{AUTHORIZATION, HeaderMap},
};
use bearer_auth::ErrorLogThrottle;

/// Marks every `Authorization` value of `headers` sensitive (`HeaderValue::set_sensitive`:
/// actix-web's header values are the `http` 0.2 crate's), so that the `Debug` of the
/// headers, or of a request holding them, shows `Sensitive` instead of the key. The
/// values themselves, their order and every other header are left as they are.
///
/// [`BearerAuthMiddleware`](crate::BearerAuthMiddleware) does this to every request it
/// lets through. Call it in your outermost middleware to mark the header for every
/// middleware too, refused requests included (see
/// [the crate docs](crate#the-authorization-header-in-logs)).
///
/// ```
/// use actix_web::http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
/// use bearer_auth_actix::mark_authorization_sensitive;
///
/// let mut headers = HeaderMap::new();
/// headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer first-secret"));
/// headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer second-secret"));
/// mark_authorization_sensitive(&mut headers);
///
/// assert!(headers.get_all(AUTHORIZATION).all(|value| value.is_sensitive()));
/// assert_eq!(headers.get_all(AUTHORIZATION).count(), 2);
/// assert!(!format!("{headers:?}").contains("secret"));
/// ```
pub fn mark_authorization_sensitive(headers: &mut HeaderMap) {
    // One lookup and no allocation for the usual single value. Several values, rare, are
    // taken out and put back in order: actix-web's map has no mutable access to all of a
    // name's values.
    if headers.get_all(AUTHORIZATION).nth(1).is_some() {
        for mut value in headers.remove(AUTHORIZATION) {
            value.set_sensitive(true);
            headers.append(AUTHORIZATION, value);
        }
    } else if let Some(value) = headers.get_mut(AUTHORIZATION) {
        value.set_sensitive(true);
    }
}

/// Marks the `Authorization` values of a request the middleware lets through, if it has
/// any and if actix-web lets them be changed; logs at `error` (through `error_log`, once
/// per interval) when it does not.
///
/// `ServiceRequest::headers_mut` panics when another `HttpRequest` clone of the request is
/// alive: an outer middleware on the same resource that keeps one while it calls the
/// service. actix-web offers no way to tell beforehand, and its `unwrap` fails before
/// anything is changed, so the panic is caught here and the request goes on unmarked
/// rather than being dropped. Under `panic = "abort"` nothing can be caught: see
/// [`BearerAuthMiddleware`](crate::BearerAuthMiddleware#requests-shared-by-an-outer-middleware).
///
/// `one_value`: the caller knows the request has one `Authorization` value at most (an
/// accepted token was read from it: a request with several is refused before), which
/// saves a lookup; otherwise they are counted here.
pub(crate) fn mark_request(
    req: &mut ServiceRequest,
    error_log: &ErrorLogThrottle,
    one_value: bool,
) {
    debug_assert!(!one_value || req.headers().get_all(AUTHORIZATION).count() <= 1);
    let several = if one_value {
        false
    } else {
        let mut values = req.headers().get_all(AUTHORIZATION);
        match (values.next(), values.next()) {
            // Nothing to mark: the request need not be changed at all.
            (None, _) => return,
            (Some(_), next) => next.is_some(),
        }
    };
    // `AssertUnwindSafe`: the panic, if any, happens before the request is touched. The
    // borrow is moved into the closure (`{ req }`), so the headers can outlive the call.
    let req = &mut *req;
    let headers = catch_unwind(AssertUnwindSafe(move || { req }.headers_mut()));
    match headers {
        // The usual single value: one more lookup, the one that changes it.
        Ok(headers) if !several => {
            if let Some(value) = headers.get_mut(AUTHORIZATION) {
                value.set_sensitive(true);
            }
        }
        Ok(headers) => mark_authorization_sensitive(headers),
        Err(_) => {
            if let Some(suppressed) = error_log.admit(SHARED_REQUEST) {
                tracing::error!(
                    target: "bearer_auth",
                    suppressed,
                    "Authorization header left unmarked: a middleware outside \
                     BearerAuthMiddleware keeps a clone of the request while calling it"
                );
            }
        }
    }
}

/// The kind of the error event of [`mark_request`], in the authenticator's throttle.
const SHARED_REQUEST: &str = "bearer-auth-actix: shared request";

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix_web::{
        http::header::{ACCEPT, HeaderValue},
        test::TestRequest,
    };

    use super::*;

    #[test]
    fn every_authorization_value_is_marked_sensitive_and_nothing_else() {
        let error_log = ErrorLogThrottle::new(Duration::ZERO);
        for count in 0..=5 {
            let mut req = TestRequest::default()
                .insert_header((ACCEPT, "application/json"))
                .to_srv_request();
            for i in 0..count {
                let value = HeaderValue::try_from(format!("Bearer key-{i}")).unwrap();
                req.headers_mut().append(AUTHORIZATION, value);
            }
            mark_request(&mut req, &error_log, false);
            let headers = req.headers();
            let values: Vec<_> = headers.get_all(AUTHORIZATION).collect();
            assert_eq!(values.len(), count);
            assert!(values.iter().all(|value| value.is_sensitive()), "{count}");
            assert!(!headers.get(ACCEPT).unwrap().is_sensitive());
            let shown = format!("{headers:?}\n{req:?}");
            assert!(!shown.contains("key-"), "{shown}");
            // The values themselves are unchanged, in order.
            for (i, value) in values.iter().enumerate() {
                assert_eq!(value.as_bytes(), format!("Bearer key-{i}").as_bytes());
            }
        }
    }

    #[test]
    fn a_shared_request_is_left_as_it_is_instead_of_panicking() {
        let error_log = ErrorLogThrottle::new(Duration::from_secs(3600));
        let mut req = TestRequest::default()
            .insert_header((AUTHORIZATION, "Bearer key-1"))
            .to_srv_request();
        let kept = req.request().clone();
        mark_request(&mut req, &error_log, false);
        mark_request(&mut req, &error_log, false);
        assert!(!req.headers().get(AUTHORIZATION).unwrap().is_sensitive());
        assert_eq!(req.headers().get(AUTHORIZATION).unwrap(), "Bearer key-1");
        // Logged once, counted the second time.
        assert_eq!(error_log.admit(SHARED_REQUEST), None);
        // Once the clone is gone, the request is marked.
        drop(kept);
        mark_request(&mut req, &error_log, false);
        assert!(req.headers().get(AUTHORIZATION).unwrap().is_sensitive());
    }

    #[test]
    fn a_shared_request_without_authorization_needs_no_change() {
        let error_log = ErrorLogThrottle::new(Duration::from_secs(3600));
        let mut req = TestRequest::default().to_srv_request();
        let _kept = req.request().clone();
        mark_request(&mut req, &error_log, false);
        // Nothing was tried, nothing logged.
        assert_eq!(error_log.admit(SHARED_REQUEST), Some(0));
    }
}
