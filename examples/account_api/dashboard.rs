//! The dashboard: one HTML page at `GET /`, its stylesheet at `GET /assets/app.css` and
//! its script at `GET /assets/app.js`, embedded in the binary (no build step, nothing
//! fetched from elsewhere). The page talks only to the JSON API, with the same Bearer
//! tokens and the same middleware as any other client: sign in (and the two-factor code
//! step) or register, then the API page (create a key, shown once; regenerate; revoke)
//! and two-factor sign-in.
//!
//! Every answer of the dashboard carries [`CONTENT_SECURITY_POLICY`] (no inline script or
//! style, nothing from another origin, no framing), `X-Content-Type-Options: nosniff` and
//! `Referrer-Policy: no-referrer`. The page keeps its login token in a JavaScript variable
//! only: never in storage, a cookie or a URL, so a reload signs out.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};

/// The page's `Content-Security-Policy`: scripts, styles, fetches and images from this
/// origin only (and `data:` images, for the QR code), no inline script or style, no
/// framing, no `<base>`, forms posted only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Where the stylesheet is served.
pub const CSS_PATH: &str = "/assets/app.css";
/// Where the script is served.
pub const JS_PATH: &str = "/assets/app.js";

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_CSS: &str = include_str!("dashboard/app.css");
const APP_JS: &str = include_str!("dashboard/app.js");

/// The dashboard's routes, to merge into the API's router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route(CSS_PATH, get(css))
        .route(JS_PATH, get(js))
}

/// An answer of the dashboard: the body, its type, and the security headers.
/// `cache_control`: the page is never stored (it may hold a key being shown), the assets
/// are checked again on every load (they change with the binary).
fn asset(body: &'static str, content_type: &'static str, cache_control: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    response
}

async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8", "no-store")
}

async fn css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8", "no-cache")
}

async fn js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8", "no-cache")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tag's attributes in `html`, roughly: enough to find inline script and style.
    fn tags(html: &str) -> impl Iterator<Item = &str> {
        html.split('<').skip(1).filter_map(|t| t.split('>').next())
    }

    #[test]
    fn no_inline_script_or_style() {
        for tag in tags(INDEX_HTML).filter(|t| !t.starts_with("!--")) {
            let lower = tag.to_ascii_lowercase();
            assert!(!lower.contains(" style="), "inline style: <{tag}>");
            assert!(
                !lower.split_whitespace().any(|a| a.starts_with("on")),
                "inline handler: <{tag}>"
            );
            assert!(!lower.starts_with("style"), "a <style> element: <{tag}>");
            if lower.starts_with("script") {
                assert!(lower.contains(" src=\"/assets/"), "inline script: <{tag}>");
            }
            assert!(!lower.contains("javascript:"), "<{tag}>");
        }
    }

    #[test]
    fn nothing_from_elsewhere() {
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("app.css", APP_CSS),
            ("app.js", APP_JS),
        ] {
            for needle in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(!text.contains(needle), "{name} contains {needle:?}");
            }
        }
    }

    #[test]
    fn the_token_stays_in_memory() {
        for needle in [
            "localStorage",
            "sessionStorage",
            "document.cookie",
            "indexedDB",
            "history.pushState",
            "history.replaceState",
            "location.hash",
            "innerHTML",
            "eval(",
        ] {
            assert!(!APP_JS.contains(needle), "app.js uses {needle}");
        }
    }
}
