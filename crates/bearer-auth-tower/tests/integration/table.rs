//! Every row of the response table, and the routes' own answers, as exact expectations.

use bearer_auth::{
    MISSING_ABILITY_BODY, MISSING_LAYER_BODY, SECOND_FACTOR_BODY, UNAUTHENTICATED_BODY,
    UNAVAILABLE_BODY,
};
use http::{
    HeaderName, Method,
    header::{CONTENT_LENGTH, CONTENT_TYPE, DATE, WWW_AUTHENTICATE},
};

use crate::fixture::{BACKEND_DOWN, Keys, Reply, user_body};

pub(crate) const JSON: &str = "application/json";
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
pub(crate) const BEARER: &str = "Bearer";
pub(crate) const INVALID_TOKEN: &str = r#"Bearer error="invalid_token""#;

/// What axum's router adds to every response.
pub(crate) const ROUTER: &[HeaderName] = &[CONTENT_LENGTH];
/// What a server adds on the wire.
pub(crate) const WIRE: &[HeaderName] = &[CONTENT_LENGTH, DATE];

/// What a request is expected to leave in the logs (target `bearer_auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Log {
    /// Nothing.
    Nothing,
    /// One refusal event with this reason.
    Refusal(&'static str),
    /// One event about an extractor on a route no layer covers.
    MissingLayer,
}

/// One request and its exact expected response.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) name: &'static str,
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) authorization: Vec<String>,
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) www_authenticate: Option<&'static str>,
    pub(crate) body: Vec<u8>,
    pub(crate) log: Log,
}

impl Row {
    pub(crate) fn authorization(&self) -> Vec<&str> {
        self.authorization.iter().map(String::as_str).collect()
    }

    /// Whether the layer lets the request through to the inner service.
    pub(crate) fn passes_layer(&self) -> bool {
        matches!(self.log, Log::Nothing | Log::MissingLayer)
    }

    /// Asserts status, body and every header. `added` are the headers that what carried
    /// the request adds: axum's router adds `content-length`, a server also `date`; a
    /// plain Tower stack adds none.
    pub(crate) fn check(&self, reply: &Reply, added: &[HeaderName]) {
        let name = self.name;
        assert_eq!(reply.status, self.status, "{name}: status");
        assert_eq!(
            String::from_utf8_lossy(&reply.body),
            String::from_utf8_lossy(&self.body),
            "{name}: body"
        );
        assert_eq!(
            reply.headers.get(CONTENT_TYPE).map(|v| v.as_bytes()),
            Some(self.content_type.as_bytes()),
            "{name}: content-type"
        );
        assert_eq!(
            reply.headers.get(WWW_AUTHENTICATE).map(|v| v.as_bytes()),
            self.www_authenticate.map(str::as_bytes),
            "{name}: www-authenticate"
        );
        let mut expected = vec![CONTENT_TYPE];
        if self.www_authenticate.is_some() {
            expected.push(WWW_AUTHENTICATE);
        }
        expected.extend(added.iter().cloned());
        if added.contains(&CONTENT_LENGTH) {
            assert_eq!(
                reply.headers[CONTENT_LENGTH],
                self.body.len().to_string(),
                "{name}: content-length"
            );
        }
        let mut names: Vec<_> = reply.headers.keys().map(|k| k.as_str()).collect();
        let mut expected: Vec<_> = expected.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        expected.sort_unstable();
        assert_eq!(names, expected, "{name}: header names");
        for name in names {
            assert_eq!(
                reply.headers.get_all(name).iter().count(),
                1,
                "{}: one `{name}` header",
                self.name
            );
        }
    }
}

struct Build {
    row: Row,
}

fn get(name: &'static str, path: &'static str, authorization: &[&str]) -> Build {
    request(name, Method::GET, path, authorization)
}

fn request(
    name: &'static str,
    method: Method,
    path: &'static str,
    authorization: &[&str],
) -> Build {
    Build {
        row: Row {
            name,
            method,
            path,
            authorization: authorization.iter().map(|v| (*v).to_owned()).collect(),
            status: 0,
            content_type: "",
            www_authenticate: None,
            body: Vec::new(),
            log: Log::Nothing,
        },
    }
}

impl Build {
    fn unauthenticated(mut self, challenge: &'static str, reason: &'static str) -> Row {
        self.row.status = 401;
        self.row.content_type = JSON;
        self.row.www_authenticate = Some(challenge);
        self.row.body = UNAUTHENTICATED_BODY.to_vec();
        self.row.log = Log::Refusal(reason);
        self.row
    }

    fn refused(mut self, status: u16, body: &[u8], reason: &'static str) -> Row {
        self.row.status = status;
        self.row.content_type = JSON;
        self.row.body = body.to_vec();
        self.row.log = Log::Refusal(reason);
        self.row
    }

    fn ok(mut self, body: impl Into<Vec<u8>>) -> Row {
        self.row.status = 200;
        self.row.content_type = TEXT;
        self.row.body = body.into();
        self.row
    }

    fn missing_layer(mut self) -> Row {
        self.row.status = 500;
        self.row.content_type = TEXT;
        self.row.body = MISSING_LAYER_BODY.to_vec();
        self.row.log = Log::MissingLayer;
        self.row
    }
}

/// Every row of DESIGN.md's response table on the routes of [`crate::fixture::app`], and
/// what the per-route options change.
pub(crate) fn rows(keys: &Keys) -> Vec<Row> {
    let bearer = |token: &str| format!("Bearer {token}");
    let ordinary = bearer(&keys.ordinary);
    let limited = bearer(&keys.limited);
    let expired = bearer(&keys.expired);
    let pending = bearer(&keys.pending);
    let revoked = bearer(&keys.revoked);
    let down = bearer(BACKEND_DOWN);
    let (secret_len, id) = (keys.ordinary.len(), keys.ordinary_id);
    let wrong_secret = format!("Bearer {id}|{}", "x".repeat(secret_len));
    let unknown_id = format!("Bearer 999|{}", "x".repeat(secret_len));
    let lowercase = format!("bearer   {}  ", keys.ordinary);
    let alice = user_body(keys.ordinary_id, "alice", r#"["*"]"#);
    let bob = user_body(keys.limited_id, "bob", r#"["servers:read"]"#);
    let dave = user_body(keys.pending_id, "dave", r#"["*"]"#);
    let user = "/v1/auth/user";
    let two_factor = "/v1/auth/two-factor-challenge";
    vec![
        // 401: missing credentials, bare challenge.
        get("no header", user, &[]).unauthenticated(BEARER, "missing"),
        get("empty header", user, &[""]).unauthenticated(BEARER, "missing"),
        get("basic scheme", user, &["Basic YWxpY2U6c2VjcmV0"]).unauthenticated(BEARER, "missing"),
        // 401: credentials sent and refused.
        get("scheme alone", user, &["Bearer"]).unauthenticated(INVALID_TOKEN, "malformed"),
        get("space in token", user, &["Bearer abc def"])
            .unauthenticated(INVALID_TOKEN, "malformed"),
        get("comma in token", user, &["Bearer abc,def"])
            .unauthenticated(INVALID_TOKEN, "malformed"),
        get("non-digit id", user, &["Bearer x1|secret"])
            .unauthenticated(INVALID_TOKEN, "malformed"),
        get("two headers", user, &[&ordinary, &ordinary])
            .unauthenticated(INVALID_TOKEN, "malformed"),
        get("unknown id", user, &[&unknown_id]).unauthenticated(INVALID_TOKEN, "unknown"),
        get("wrong secret", user, &[&wrong_secret]).unauthenticated(INVALID_TOKEN, "unknown"),
        get("no id, unknown secret", user, &["Bearer abcdef"])
            .unauthenticated(INVALID_TOKEN, "unknown"),
        get("expired", user, &[&expired]).unauthenticated(INVALID_TOKEN, "expired"),
        get("revoked", user, &[&revoked]).unauthenticated(INVALID_TOKEN, "unknown"),
        // 403: second factor pending, everywhere but the challenge route, before abilities.
        get("pending second factor", user, &[&pending]).refused(
            403,
            SECOND_FACTOR_BODY,
            "second_factor",
        ),
        get(
            "pending second factor, ability route",
            "/v1/servers",
            &[&pending],
        )
        .refused(403, SECOND_FACTOR_BODY, "second_factor"),
        request(
            "pending on challenge route",
            Method::POST,
            two_factor,
            &[&pending],
        )
        .ok(dave.clone()),
        request(
            "ordinary on challenge route",
            Method::POST,
            two_factor,
            &[&ordinary],
        )
        .ok(alice.clone()),
        request(
            "unknown on challenge route",
            Method::POST,
            two_factor,
            &[&unknown_id],
        )
        .unauthenticated(INVALID_TOKEN, "unknown"),
        request("none on challenge route", Method::POST, two_factor, &[])
            .unauthenticated(BEARER, "missing"),
        // 403: abilities.
        get("require_all, one missing", "/v1/servers", &[&limited]).refused(
            403,
            MISSING_ABILITY_BODY,
            "ability",
        ),
        get("require_all, wildcard", "/v1/servers", &[&ordinary]).ok(alice.clone()),
        get("require_any, one held", "/v1/servers/list", &[&limited]).ok(bob.clone()),
        get("require_any, wildcard", "/v1/servers/list", &[&ordinary]).ok(alice.clone()),
        // 503: the backend failed; never 401.
        get("backend down", user, &[&down]).refused(503, UNAVAILABLE_BODY, "backend"),
        get("backend down, optional route", "/v1/greet", &[&down]).refused(
            503,
            UNAVAILABLE_BODY,
            "backend",
        ),
        // 200: the handler sees the principal.
        get("ordinary key", user, &[&ordinary]).ok(alice.clone()),
        get("limited key, no requirement", user, &[&limited]).ok(bob),
        get("lowercase scheme, extra spaces", user, &[&lowercase]).ok(alice.clone()),
        // Optional routes.
        get("optional, no header", "/v1/greet", &[]).ok("hello stranger"),
        get(
            "optional, basic scheme",
            "/v1/greet",
            &["Basic YWxpY2U6c2VjcmV0"],
        )
        .ok("hello stranger"),
        get("optional, key", "/v1/greet", &[&ordinary]).ok("hello alice"),
        get("optional, unknown key", "/v1/greet", &[&unknown_id])
            .unauthenticated(INVALID_TOKEN, "unknown"),
        get("optional, malformed", "/v1/greet", &["Bearer a b"])
            .unauthenticated(INVALID_TOKEN, "malformed"),
        get("optional, pending second factor", "/v1/greet", &[&pending]).refused(
            403,
            SECOND_FACTOR_BODY,
            "second_factor",
        ),
        get(
            "optional route, required extractor, no header",
            "/v1/optional-strict",
            &[],
        )
        .unauthenticated_by_extractor(),
        get(
            "optional route, required extractor, key",
            "/v1/optional-strict",
            &[&ordinary],
        )
        .ok(alice.clone()),
        // Extractors on routes no layer covers: a programming error, 500.
        get("uncovered route", "/v1/uncovered", &[&ordinary]).missing_layer(),
        get(
            "uncovered route, optional extractor",
            "/v1/uncovered-optional",
            &[],
        )
        .missing_layer(),
        // Unprotected route.
        get("health", "/health", &[]).ok("ok"),
        get("health, bad token ignored", "/health", &["Bearer a b"]).ok("ok"),
    ]
}

impl Build {
    /// The 401 an `Authenticated<P>` extractor answers on an optional route that let a
    /// request without credentials through: the layer did not refuse it, so nothing is
    /// logged.
    fn unauthenticated_by_extractor(mut self) -> Row {
        self.row.status = 401;
        self.row.content_type = JSON;
        self.row.www_authenticate = Some(BEARER);
        self.row.body = UNAUTHENTICATED_BODY.to_vec();
        // The extractor's refusal is logged like the layer's.
        self.row.log = Log::Refusal("missing");
        self.row
    }
}
