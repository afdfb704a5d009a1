//! Fixtures shared by the in-process (`actix_web::test`) and real-server suites: keys for
//! every row of the response table, the routes under test, and the expected answers.

#![allow(dead_code)] // Each suite uses its own part of the fixtures.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use actix_web::{HttpResponse, dev::Service as _, web};
use bearer_auth::{
    AccessToken, BearerToken, MemoryStore, NewToken, Rejection, TokenHash, TokenVerifier,
    verifier_fn,
};
use bearer_auth_actix::{Authenticated, BearerAuthMiddleware, MaybeAuthenticated};

/// The principal type of every route under test.
pub(crate) type User = AccessToken<String>;

/// The token that makes the test verifier fail like a store that is down.
pub(crate) const BACKEND_DOWN: &str = "backend-down";

/// Counts the calls that reach the service wrapped by a `BearerAuthMiddleware`.
pub(crate) type Counter = Arc<AtomicUsize>;

pub(crate) fn calls(counter: &Counter) -> usize {
    counter.load(Ordering::SeqCst)
}

/// One issued key: its id and plain text token.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) id: u64,
    pub(crate) token: String,
}

impl Key {
    pub(crate) fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

/// A store with one key of each kind the response table needs.
pub(crate) struct Keys {
    pub(crate) store: MemoryStore<String>,
    /// Abilities `["*"]`.
    pub(crate) ordinary: Key,
    /// Abilities `["servers:read"]`.
    pub(crate) reader: Key,
    /// Abilities `["servers:write"]`.
    pub(crate) writer: Key,
    /// Abilities `["billing:read"]`.
    pub(crate) billing: Key,
    pub(crate) expired: Key,
    pub(crate) revoked: Key,
    /// Abilities `["*"]`, second factor pending.
    pub(crate) pending: Key,
}

impl Keys {
    pub(crate) fn new() -> Self {
        let store = MemoryStore::new();
        let issue = |new: NewToken<String>| {
            let issued = store.create(new).unwrap();
            Key {
                id: issued.id(),
                token: issued.plain_text_token().as_str().to_owned(),
            }
        };
        let ordinary = issue(NewToken::new("ordinary".to_owned(), "t"));
        let reader = issue(NewToken::new("reader".to_owned(), "t").abilities(["servers:read"]));
        let writer = issue(NewToken::new("writer".to_owned(), "t").abilities(["servers:write"]));
        let billing = issue(NewToken::new("billing".to_owned(), "t").abilities(["billing:read"]));
        let expired = issue(
            NewToken::new("expired".to_owned(), "t")
                .expires_at(SystemTime::now() - Duration::from_secs(60)),
        );
        let revoked = issue(NewToken::new("revoked".to_owned(), "t"));
        assert!(store.revoke(&"revoked".to_owned(), revoked.id));
        let pending = issue(NewToken::new("pending".to_owned(), "t").second_factor_pending(true));
        Self {
            store,
            ordinary,
            reader,
            writer,
            billing,
            expired,
            revoked,
            pending,
        }
    }

    /// The store's verifier, except that [`BACKEND_DOWN`] fails as a backend would.
    pub(crate) fn verifier(&self) -> impl TokenVerifier<Principal = User> + Clone + 'static {
        let store = self.store.clone();
        verifier_fn(move |token: BearerToken| {
            let store = store.clone();
            async move {
                if token.as_str() == BACKEND_DOWN {
                    return Err(Rejection::unavailable(std::io::Error::other(
                        "connection refused",
                    )));
                }
                store.verify(&token).await
            }
        })
    }

    /// Every secret of the fixture, and their digests: none may appear in a log.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let mut secrets = Vec::new();
        for key in [
            &self.ordinary,
            &self.reader,
            &self.writer,
            &self.billing,
            &self.expired,
            &self.revoked,
            &self.pending,
        ] {
            let secret = key.token.split_once('|').unwrap().1;
            secrets.push(secret.to_owned());
            secrets.push(TokenHash::of(secret).to_hex());
        }
        secrets
    }
}

/// What a handler answers for a principal.
pub(crate) fn principal_body(owner: &str, id: u64) -> String {
    format!("{owner}:{id}")
}

fn show(user: &User) -> HttpResponse {
    text(principal_body(user.owner(), user.id()))
}

fn text(body: impl Into<String>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(body.into())
}

/// Requires a principal.
pub(crate) async fn whoami(user: Authenticated<User>) -> HttpResponse {
    show(&user)
}

/// A principal if there is one.
pub(crate) async fn maybe(user: MaybeAuthenticated<User>) -> HttpResponse {
    match &*user {
        Some(user) => show(user),
        None => text("anonymous"),
    }
}

/// A principal if there is one, through actix-web's `Option<T>` extractor.
pub(crate) async fn option(user: Option<Authenticated<User>>) -> HttpResponse {
    match user {
        Some(user) => show(&user),
        None => text("anonymous"),
    }
}

/// An open route.
pub(crate) async fn health() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

/// The routes under test, each with its own `BearerAuthMiddleware` (`Resource::wrap`):
///
/// - `/rows`: requires `servers:read`; the response table's route. A counting service sits
///   between the middleware and the route.
/// - `/optional/maybe`, `/optional/option`, `/optional/required`: optional, with each
///   extractor.
/// - `/abilities/all`, `/abilities/any`: `servers:read` and/or `servers:write`.
/// - `/2fa/challenge`: accepts a pending second factor.
/// - `/realm`: the challenge carries `realm="api"`.
/// - `/uncovered/required`, `/uncovered/maybe`, `/uncovered/option`: no middleware.
pub(crate) fn routes<V>(
    cfg: &mut web::ServiceConfig,
    auth: &BearerAuthMiddleware<V>,
    counter: &Counter,
) where
    V: TokenVerifier<Principal = User> + 'static,
{
    let counter = Arc::clone(counter);
    cfg.service(
        web::resource("/rows")
            .wrap_fn(move |req, srv| {
                counter.fetch_add(1, Ordering::SeqCst);
                srv.call(req)
            })
            .wrap(auth.clone().require_all(["servers:read"]))
            .route(web::get().to(whoami)),
    )
    .service(
        web::resource("/optional/maybe")
            .wrap(auth.clone().optional())
            .route(web::get().to(maybe)),
    )
    .service(
        web::resource("/optional/option")
            .wrap(auth.clone().optional())
            .route(web::get().to(option)),
    )
    .service(
        web::resource("/optional/required")
            .wrap(auth.clone().optional().with_realm("api").unwrap())
            .route(web::get().to(whoami)),
    )
    .service(
        web::resource("/abilities/all")
            .wrap(auth.clone().require_all(["servers:read", "servers:write"]))
            .route(web::get().to(whoami)),
    )
    .service(
        web::resource("/abilities/any")
            .wrap(auth.clone().require_any(["servers:read", "servers:write"]))
            .route(web::get().to(whoami)),
    )
    .service(
        web::resource("/2fa/challenge")
            .wrap(auth.clone().accept_pending_second_factor())
            .route(web::get().to(whoami)),
    )
    .service(
        web::resource("/realm")
            .wrap(auth.clone().with_realm("api").unwrap())
            .route(web::get().to(whoami)),
    )
    .route("/uncovered/required", web::get().to(whoami))
    .route("/uncovered/maybe", web::get().to(maybe))
    .route("/uncovered/option", web::get().to(option))
    .route("/health", web::get().to(health));
}

/// One row of the response table: a request's `Authorization` headers and the exact
/// answer.
pub(crate) struct Row {
    pub(crate) name: &'static str,
    pub(crate) authorization: Vec<Vec<u8>>,
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    /// `None`: the response must not carry one.
    pub(crate) www_authenticate: Option<&'static str>,
    /// The reason logged for a refusal; `None` for an accepted request.
    pub(crate) reason: Option<&'static str>,
}

impl Row {
    /// Whether the request is let through to the wrapped service.
    pub(crate) fn accepted(&self) -> bool {
        self.reason.is_none()
    }

    /// The content type the response must have.
    pub(crate) fn content_type(&self) -> &'static str {
        if self.accepted() {
            "text/plain; charset=utf-8"
        } else {
            "application/json"
        }
    }
}

const UNAUTHENTICATED: &[u8] = br#"{"message":"Unauthenticated."}"#;
const MISSING: Option<&str> = Some("Bearer");
const INVALID: Option<&str> = Some(r#"Bearer error="invalid_token""#);

fn refused(
    name: &'static str,
    authorization: Vec<Vec<u8>>,
    status: u16,
    body: &[u8],
    www_authenticate: Option<&'static str>,
    reason: &'static str,
) -> Row {
    Row {
        name,
        authorization,
        status,
        body: body.to_vec(),
        www_authenticate,
        reason: Some(reason),
    }
}

fn one(value: impl Into<Vec<u8>>) -> Vec<Vec<u8>> {
    vec![value.into()]
}

/// Every row of DESIGN.md's response table, as requests to `/rows` (which requires
/// `servers:read`), and two accepted requests.
pub(crate) fn rows(keys: &Keys) -> Vec<Row> {
    let ordinary_id = keys.ordinary.id;
    vec![
        refused(
            "no header",
            vec![],
            401,
            UNAUTHENTICATED,
            MISSING,
            "missing",
        ),
        refused(
            "another scheme",
            one("Basic dXNlcjpwYXNz"),
            401,
            UNAUTHENTICATED,
            MISSING,
            "missing",
        ),
        refused(
            "scheme without token",
            one("Bearer"),
            401,
            UNAUTHENTICATED,
            INVALID,
            "malformed",
        ),
        refused(
            "space inside the token",
            one("Bearer abc def"),
            401,
            UNAUTHENTICATED,
            INVALID,
            "malformed",
        ),
        refused(
            "non-ASCII token",
            one(&b"Bearer caf\xc3\xa9"[..]),
            401,
            UNAUTHENTICATED,
            INVALID,
            "malformed",
        ),
        refused(
            "two Authorization headers",
            vec![
                keys.ordinary.bearer().into_bytes(),
                keys.ordinary.bearer().into_bytes(),
            ],
            401,
            UNAUTHENTICATED,
            INVALID,
            "malformed",
        ),
        refused(
            "id that is not a number",
            one("Bearer abc|secret"),
            401,
            UNAUTHENTICATED,
            INVALID,
            "malformed",
        ),
        refused(
            "unknown id",
            one(format!("Bearer 999999|{}", "x".repeat(48))),
            401,
            UNAUTHENTICATED,
            INVALID,
            "unknown",
        ),
        refused(
            "wrong secret",
            one(format!("Bearer {ordinary_id}|{}", "x".repeat(48))),
            401,
            UNAUTHENTICATED,
            INVALID,
            "unknown",
        ),
        refused(
            "expired key",
            one(keys.expired.bearer()),
            401,
            UNAUTHENTICATED,
            INVALID,
            "expired",
        ),
        refused(
            "revoked key",
            one(keys.revoked.bearer()),
            401,
            UNAUTHENTICATED,
            INVALID,
            "unknown",
        ),
        refused(
            "second factor pending",
            one(keys.pending.bearer()),
            403,
            br#"{"message":"Two-factor authentication required.","requires_2fa":true}"#,
            None,
            "second_factor",
        ),
        refused(
            "lacks the required ability",
            one(keys.billing.bearer()),
            403,
            br#"{"message":"Invalid ability provided."}"#,
            None,
            "ability",
        ),
        refused(
            "backend down",
            one(format!("Bearer {BACKEND_DOWN}")),
            503,
            br#"{"message":"Service Unavailable."}"#,
            None,
            "backend",
        ),
        Row {
            name: "valid key with every ability",
            authorization: one(keys.ordinary.bearer()),
            status: 200,
            body: principal_body("ordinary", keys.ordinary.id).into_bytes(),
            www_authenticate: None,
            reason: None,
        },
        Row {
            name: "valid key with the ability, lower-case scheme, extra spaces",
            authorization: one(format!("  bearer   {} ", keys.reader.token)),
            status: 200,
            body: principal_body("reader", keys.reader.id).into_bytes(),
            www_authenticate: None,
            reason: None,
        },
    ]
}

/// Checks a response against its row. `headers` are every header of the response
/// (lower-case names), except `date` for a response read from a real server, which must
/// also carry a `content-length` that matches the body (`on_the_wire`).
pub(crate) fn assert_row(
    row: &Row,
    status: u16,
    mut headers: Vec<(String, Vec<u8>)>,
    body: &[u8],
    on_the_wire: bool,
) {
    let name = row.name;
    assert_eq!(status, row.status, "{name}: status");
    assert_eq!(body, row.body.as_slice(), "{name}: body");
    headers.sort();
    let mut expected = vec![(
        "content-type".to_owned(),
        row.content_type().as_bytes().to_vec(),
    )];
    if let Some(challenge) = row.www_authenticate {
        expected.push(("www-authenticate".to_owned(), challenge.as_bytes().to_vec()));
    }
    if on_the_wire {
        expected.push((
            "content-length".to_owned(),
            body.len().to_string().into_bytes(),
        ));
    }
    expected.sort();
    assert_eq!(headers, expected, "{name}: headers");
}
