//! The expected table: every request of the matrix, the answer both servers must give,
//! and, where one server's HTTP layer answers before the middleware sees the request,
//! that server's own answer and why.

use bearer_auth::{
    MISSING_ABILITY_BODY, SECOND_FACTOR_BODY, UNAUTHENTICATED_BODY, UNAVAILABLE_BODY,
};

use crate::{
    fixture::{BACKEND_DOWN, GRAMMAR_OWNER, Key, Keys, routes},
    servers::Server,
    wire::{Answer, Reply},
};

/// What a case expects of a server.
#[derive(Debug, Clone)]
pub(crate) enum Expect {
    /// The handler ran: 200, `application/json`, this body.
    Handler(String),
    /// The middleware refused the request with the documented response.
    Refused(Refusal),
    /// The HTTP server answered by itself, before any middleware: this status, no
    /// `Content-Type`, no challenge, an empty body. The text says why.
    Server(u16, &'static str),
}

/// The documented refusals (DESIGN.md, "Responses").
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refusal {
    /// 401, `WWW-Authenticate: Bearer`: no Bearer credentials.
    Missing,
    /// 401, `WWW-Authenticate: Bearer error="invalid_token"`: credentials refused.
    Invalid,
    /// 403: the second factor is pending.
    SecondFactor,
    /// 403: an ability is missing.
    Ability,
    /// 503: the verifier's backend failed.
    Unavailable,
}

impl Expect {
    /// The reply this expectation stands for.
    pub(crate) fn reply(&self) -> Reply {
        const JSON: &[u8] = b"application/json";
        let answer = match self {
            Self::Handler(body) => Answer {
                status: 200,
                content_type: vec![JSON.to_vec()],
                www_authenticate: Vec::new(),
                body: body.clone().into_bytes(),
            },
            Self::Refused(refusal) => {
                let (status, challenge, body): (u16, Option<&[u8]>, &[u8]) = match refusal {
                    Refusal::Missing => (401, Some(b"Bearer"), UNAUTHENTICATED_BODY),
                    Refusal::Invalid => (
                        401,
                        Some(br#"Bearer error="invalid_token""#),
                        UNAUTHENTICATED_BODY,
                    ),
                    Refusal::SecondFactor => (403, None, SECOND_FACTOR_BODY),
                    Refusal::Ability => (403, None, MISSING_ABILITY_BODY),
                    Refusal::Unavailable => (503, None, UNAVAILABLE_BODY),
                };
                Answer {
                    status,
                    content_type: vec![JSON.to_vec()],
                    www_authenticate: challenge.map(<[u8]>::to_vec).into_iter().collect(),
                    body: body.to_vec(),
                }
            }
            Self::Server(status, _) => Answer {
                status: *status,
                content_type: Vec::new(),
                www_authenticate: Vec::new(),
                body: Vec::new(),
            },
        };
        Reply::Response(answer)
    }

    /// A short label for the summary table.
    pub(crate) fn label(&self) -> String {
        match self {
            Self::Handler(_) => "200 handler".to_owned(),
            Self::Refused(refusal) => match refusal {
                Refusal::Missing => "401 Bearer".to_owned(),
                Refusal::Invalid => "401 invalid_token".to_owned(),
                Refusal::SecondFactor => "403 2fa".to_owned(),
                Refusal::Ability => "403 ability".to_owned(),
                Refusal::Unavailable => "503".to_owned(),
            },
            Self::Server(status, _) => format!("{status} by the server"),
        }
    }
}

/// One server answering otherwise than the case's [`Expect`], and why.
#[derive(Debug, Clone)]
pub(crate) struct Override {
    pub(crate) server: Server,
    pub(crate) expect: Expect,
}

/// One request of the matrix.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) request: Vec<u8>,
    /// What both servers answer, unless overridden.
    pub(crate) expect: Expect,
    pub(crate) overrides: Vec<Override>,
}

impl Case {
    /// What `server` must answer.
    pub(crate) fn expect_for(&self, server: Server) -> &Expect {
        self.overrides
            .iter()
            .find(|o| o.server == server)
            .map_or(&self.expect, |o| &o.expect)
    }
}

/// A raw request, built line by line.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    method: &'static str,
    path: &'static str,
    http10: bool,
    host: bool,
    lines: Vec<Vec<u8>>,
    body: Option<(Vec<u8>, bool)>,
}

pub(crate) fn get(path: &'static str) -> Request {
    Request {
        method: "GET",
        path,
        http10: false,
        host: true,
        lines: Vec::new(),
        body: None,
    }
}

pub(crate) fn post(path: &'static str) -> Request {
    Request {
        method: "POST",
        ..get(path)
    }
}

impl Request {
    /// Adds `Authorization: <value>`, the value's bytes as they are.
    pub(crate) fn auth(self, value: impl AsRef<[u8]>) -> Self {
        self.line([b"Authorization: ", value.as_ref()].concat())
    }

    /// Adds `Authorization: Bearer <token>`.
    pub(crate) fn bearer(self, token: &str) -> Self {
        self.auth(format!("Bearer {token}"))
    }

    /// Adds a raw header line (without its CRLF).
    pub(crate) fn line(mut self, line: impl Into<Vec<u8>>) -> Self {
        self.lines.push(line.into());
        self
    }

    /// HTTP/1.0, without `Connection: close` (a 1.0 connection closes by default).
    pub(crate) fn http10(mut self) -> Self {
        self.http10 = true;
        self
    }

    /// No `Host` header.
    pub(crate) fn without_host(mut self) -> Self {
        self.host = false;
        self
    }

    /// A body framed by `Content-Length`.
    pub(crate) fn body(mut self, body: &[u8]) -> Self {
        self.body = Some((body.to_vec(), false));
        self
    }

    /// A body framed by `Transfer-Encoding: chunked`, in one chunk.
    pub(crate) fn chunked(mut self, body: &[u8]) -> Self {
        self.body = Some((body.to_vec(), true));
        self
    }

    /// The request's bytes.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let version = if self.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        let mut out = format!("{} {} {version}\r\n", self.method, self.path).into_bytes();
        if self.host {
            out.extend_from_slice(b"Host: 127.0.0.1\r\n");
        }
        for line in &self.lines {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        if !self.http10 {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        match &self.body {
            None => out.extend_from_slice(b"\r\n"),
            Some((body, false)) => {
                out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
                out.extend_from_slice(body);
            }
            Some((body, true)) => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
                out.extend_from_slice(body);
                out.extend_from_slice(b"\r\n0\r\n\r\n");
            }
        }
        out
    }

    /// How many header fields the request has.
    fn header_count(&self) -> usize {
        usize::from(self.host)
            + self.lines.len()
            + usize::from(!self.http10)
            + usize::from(self.body.is_some())
    }
}

/// `GET /v1/auth/user` with `Authorization: Bearer aaa…` whose whole head is exactly
/// `total` bytes.
pub(crate) fn head_of(total: usize) -> Vec<u8> {
    let fixed = get(routes::USER).bearer("").bytes().len();
    let token = "a".repeat(total - fixed);
    let bytes = get(routes::USER).bearer(&token).bytes();
    assert_eq!(bytes.len(), total);
    bytes
}

/// `GET /v1/auth/user` with `key` and filler fields up to `total` header fields in all.
pub(crate) fn fields(key: &Key, total: usize) -> Vec<u8> {
    let mut request = get(routes::USER).bearer(&key.token);
    let mut i = 0;
    while request.header_count() < total {
        request = request.line(format!("X-Filler-{i}: {i}"));
        i += 1;
    }
    assert_eq!(request.header_count(), total);
    request.bytes()
}

/// The longest head actix-web always reads: its `MAX_BUFFER_SIZE`.
pub(crate) const ACTIX_HEAD_ALWAYS_READ: usize = 131_072;
/// The shortest head actix-web never reads: past twice its `MAX_BUFFER_SIZE`.
pub(crate) const ACTIX_HEAD_NEVER_READ: usize = 2 * ACTIX_HEAD_ALWAYS_READ + 1;
/// The longest head hyper always reads: its default `max_buf_size`.
pub(crate) const HYPER_HEAD_ALWAYS_READ: usize = 8192 + 4096 * 100;
/// The shortest head hyper never reads: past the 512 KiB its read buffer can reach.
pub(crate) const HYPER_HEAD_NEVER_READ: usize = 512 * 1024 + 1;

// Why a server answers by itself.
const CONTROL_BYTE: &str = "hyper and actix-http both parse heads with httparse, which refuses a \
     field value holding a control byte other than HTAB (RFC 9110 §5.5): 400 before any \
     middleware";
const BARE_LF: &str = "httparse takes a bare LF for the end of the line (RFC 9112 §2.2 allows \
     it); the next line has no colon: 400 before any middleware";
const SPACE_BEFORE_COLON: &str = "RFC 9112 §5.1: no whitespace between field name and colon; \
     httparse refuses it: 400 before any middleware";
const OBS_FOLD: &str = "RFC 9112 §5.2: obs-fold in a request is refused; httparse does so: 400 \
     before any middleware";
const ACTIX_HEAD: &str = "actix-http answers 431 once it holds 128 KiB (MAX_BUFFER_SIZE = \
     131_072, h1/decoder.rs) of a head that is still incomplete; its buffer doubles, so one \
     read may take it to 256 KiB: a head of up to 128 KiB always passes, one over 256 KiB \
     never does";
const HYPER_HEAD: &str = "hyper answers 431 once it holds max_buf_size (8192 + 4096 * 100 = \
     417_792 bytes by default, proto/h1/io.rs; axum::serve keeps it) of a head that is still \
     incomplete; a read fills the buffer's spare capacity, up to 512 KiB: a head of up to \
     417,792 bytes always passes, one over 512 KiB never does";
const ACTIX_FIELDS: &str = "actix-http parses at most 96 header fields (MAX_HEADERS, \
     h1/decoder.rs); more is 431";
const HYPER_FIELDS: &str = "hyper parses at most 100 header fields (DEFAULT_MAX_HEADERS, \
     proto/h1/role.rs); more is 431";
const ACTIX_HOST: &str = "actix-http refuses an HTTP/1.1 request without Host (RFC 9112 §3.2) \
     with 400; hyper lets it through to the middleware";

/// The whole table.
pub(crate) fn cases(keys: &Keys) -> Vec<Case> {
    use Refusal::{Ability, Invalid, Missing, SecondFactor, Unavailable};
    use routes::{HEALTH, OPTIONAL, SERVERS, TWO_FACTOR, USER};

    let mut cases = Vec::new();
    let mut add = |name: &str, request: Vec<u8>, expect: Expect, overrides: Vec<Override>| {
        cases.push(Case {
            name: name.to_owned(),
            request,
            expect,
            overrides,
        });
    };
    let refused = Expect::Refused;
    let ok = |route: &str, owner: Option<&str>| Expect::Handler(routes::body(route, owner));
    let grammar = ok("user", Some(GRAMMAR_OWNER));
    let health = Expect::Handler(routes::HEALTH_BODY.to_owned());
    let server = Expect::Server;
    let actix = |expect: Expect| {
        vec![Override {
            server: Server::Actix,
            expect,
        }]
    };
    let auth = |value: &[u8]| get(USER).auth(value).bytes();

    // The grammar's accepted forms (the verifier accepts `abc`, `abc==`, `12|AbC-._~+/9`).
    add(
        "accept: Bearer abc",
        auth(b"Bearer abc"),
        grammar.clone(),
        vec![],
    );
    add(
        "accept: bearer abc",
        auth(b"bearer abc"),
        grammar.clone(),
        vec![],
    );
    add(
        "accept: BEARER abc",
        auth(b"BEARER abc"),
        grammar.clone(),
        vec![],
    );
    add(
        "accept: bEaReR abc",
        auth(b"bEaReR abc"),
        grammar.clone(),
        vec![],
    );
    add(
        "accept: Bearer   abc",
        auth(b"Bearer   abc"),
        grammar.clone(),
        vec![],
    );
    add(
        "accept: Bearer abc==",
        auth(b"Bearer abc=="),
        grammar.clone(),
        vec![],
    );
    add(
        "accept: Bearer 12|AbC-._~+/9",
        auth(b"Bearer 12|AbC-._~+/9"),
        grammar.clone(),
        vec![],
    );
    add(
        "accept: '  Bearer abc  '",
        auth(b"  Bearer abc  "),
        grammar.clone(),
        vec![],
    );
    add(
        "accept: '\\tBearer abc\\t'",
        auth(b"\tBearer abc\t"),
        grammar.clone(),
        vec![],
    );
    add(
        "accept: field name in lower case",
        get(USER).line("authorization: Bearer abc").bytes(),
        grammar.clone(),
        vec![],
    );
    add(
        "accept: field name in upper case",
        get(USER).line("AUTHORIZATION: Bearer abc").bytes(),
        grammar.clone(),
        vec![],
    );
    add(
        "accept: no space after the colon",
        get(USER).line("Authorization:Bearer abc").bytes(),
        grammar.clone(),
        vec![],
    );

    // The grammar's refusals.
    add(
        "refuse: no header",
        get(USER).bytes(),
        refused(Missing),
        vec![],
    );
    add("refuse: empty value", auth(b""), refused(Missing), vec![]);
    add(
        "refuse: whitespace-only value",
        auth(b"   \t "),
        refused(Missing),
        vec![],
    );
    add("refuse: Bearer", auth(b"Bearer"), refused(Invalid), vec![]);
    add(
        "refuse: 'Bearer '",
        auth(b"Bearer "),
        refused(Invalid),
        vec![],
    );
    add(
        "refuse: 'Bearer    '",
        auth(b"Bearer    "),
        refused(Invalid),
        vec![],
    );
    add(
        "refuse: Basic dXNlcjpwYXNz",
        auth(b"Basic dXNlcjpwYXNz"),
        refused(Missing),
        vec![],
    );
    add(
        "refuse: Token abc",
        auth(b"Token abc"),
        refused(Missing),
        vec![],
    );
    add(
        "refuse: BearerAbc",
        auth(b"BearerAbc"),
        refused(Missing),
        vec![],
    );
    add(
        "refuse: one-byte value",
        auth(b"B"),
        refused(Missing),
        vec![],
    );
    add(
        "refuse: Bearer\\tabc",
        auth(b"Bearer\tabc"),
        refused(Invalid),
        vec![],
    );
    add(
        "refuse: Bearer a b",
        auth(b"Bearer a b"),
        refused(Invalid),
        vec![],
    );
    add(
        "refuse: Bearer a\\tb",
        auth(b"Bearer a\tb"),
        refused(Invalid),
        vec![],
    );
    add(
        "refuse: Bearer a,b",
        auth(b"Bearer a,b"),
        refused(Invalid),
        vec![],
    );
    add(
        "refuse: two credentials in one field",
        auth(b"Bearer abc, Bearer abc"),
        refused(Invalid),
        vec![],
    );
    add(
        "refuse: Bearer a=b",
        auth(b"Bearer a=b"),
        refused(Invalid),
        vec![],
    );
    add(
        "refuse: Bearer ==",
        auth(b"Bearer =="),
        refused(Invalid),
        vec![],
    );
    add(
        "refuse: Bearer a\"b",
        auth(b"Bearer a\"b"),
        refused(Invalid),
        vec![],
    );
    add(
        "refuse: Bearer \"abc\"",
        auth(b"Bearer \"abc\""),
        refused(Invalid),
        vec![],
    );
    add(
        "refuse: well-formed, unknown",
        auth(b"Bearer abd"),
        refused(Invalid),
        vec![],
    );

    // Bytes >= 0x80 (obs-text): the servers let them through; the grammar refuses them.
    add(
        "obs-text: 0x80 after token",
        auth(b"Bearer abc\x80"),
        refused(Invalid),
        vec![],
    );
    add(
        "obs-text: UTF-8 e-acute",
        auth(b"Bearer ab\xc3\xa9"),
        refused(Invalid),
        vec![],
    );
    add(
        "obs-text: 0xff token",
        auth(b"Bearer \xff"),
        refused(Invalid),
        vec![],
    );
    add(
        "obs-text: in the scheme",
        auth(b"B\xe9arer abc"),
        refused(Missing),
        vec![],
    );
    add(
        "obs-text: whole value",
        auth(b"\xfe\xff"),
        refused(Missing),
        vec![],
    );

    // Control bytes: both HTTP parsers refuse the head; the middleware never sees it.
    add(
        "control: 0x01",
        auth(b"Bearer ab\x01c"),
        server(400, CONTROL_BYTE),
        vec![],
    );
    add(
        "control: NUL",
        auth(b"Bearer a\x00bc"),
        server(400, CONTROL_BYTE),
        vec![],
    );
    add(
        "control: DEL",
        auth(b"Bearer abc\x7f"),
        server(400, CONTROL_BYTE),
        vec![],
    );
    add(
        "control: VT",
        auth(b"Bearer abc\x0b"),
        server(400, CONTROL_BYTE),
        vec![],
    );
    add(
        "control: ESC",
        auth(b"Bearer \x1babc"),
        server(400, CONTROL_BYTE),
        vec![],
    );
    add(
        "control: bare CR",
        auth(b"Bearer a\rbc"),
        server(400, CONTROL_BYTE),
        vec![],
    );
    add(
        "control: bare LF",
        auth(b"Bearer a\nbc"),
        server(400, BARE_LF),
        vec![],
    );
    add(
        "broken: space before colon",
        get(USER).line("Authorization : Bearer abc").bytes(),
        server(400, SPACE_BEFORE_COLON),
        vec![],
    );
    add(
        "broken: obs-fold",
        get(USER).line("Authorization: Bearer\r\n abc").bytes(),
        server(400, OBS_FOLD),
        vec![],
    );

    // Duplicated headers: refused whatever they hold.
    let two = |a: &str, b: &str| get(USER).line(a).line(b);
    add(
        "duplicate: Bearer abc twice",
        two("Authorization: Bearer abc", "Authorization: Bearer abc").bytes(),
        refused(Invalid),
        vec![],
    );
    let valid = format!("Authorization: Bearer {}", keys.ordinary.token);
    add(
        "duplicate: a valid key twice",
        two(&valid, &valid).bytes(),
        refused(Invalid),
        vec![],
    );
    add(
        "duplicate: Basic then Bearer",
        two("Authorization: Basic dXNlcjpwYXNz", &valid).bytes(),
        refused(Invalid),
        vec![],
    );
    add(
        "duplicate: Bearer then empty",
        two(&valid, "Authorization:").bytes(),
        refused(Invalid),
        vec![],
    );
    add(
        "duplicate: names in different case",
        two("authorization: Bearer abc", "AUTHORIZATION: Bearer abc").bytes(),
        refused(Invalid),
        vec![],
    );
    add(
        "duplicate: three fields",
        two(&valid, &valid).line(valid.clone()).bytes(),
        refused(Invalid),
        vec![],
    );
    add(
        "duplicate: on the optional route",
        get(OPTIONAL)
            .line("Authorization: Basic dXNlcjpwYXNz")
            .line("Authorization: Basic dXNlcjpwYXNz")
            .bytes(),
        refused(Invalid),
        vec![],
    );

    // Value sizes, from 0 bytes to past both servers' limits.
    add(
        "size: 1-byte token",
        auth(b"Bearer x"),
        refused(Invalid),
        vec![],
    );
    for kib in [1, 8, 16, 64] {
        let token = "a".repeat(kib * 1024 - "Bearer ".len());
        add(
            &format!("size: {kib} KiB value"),
            get(USER).bearer(&token).bytes(),
            refused(Invalid),
            vec![],
        );
    }
    let mut spaced = "a".repeat(64 * 1024 - "Bearer  b".len());
    spaced.push_str(" b");
    add(
        "size: 64 KiB value, space near the end",
        get(USER).bearer(&spaced).bytes(),
        refused(Invalid),
        vec![],
    );
    add(
        "size: head of 128 KiB (actix always reads it)",
        head_of(ACTIX_HEAD_ALWAYS_READ),
        refused(Invalid),
        vec![],
    );
    add(
        "size: head of 256 KiB + 1 (actix never reads it)",
        head_of(ACTIX_HEAD_NEVER_READ),
        refused(Invalid),
        actix(server(431, ACTIX_HEAD)),
    );
    add(
        "size: head of 417792 bytes (hyper always reads it)",
        head_of(HYPER_HEAD_ALWAYS_READ),
        refused(Invalid),
        actix(server(431, ACTIX_HEAD)),
    );
    add(
        "size: head of 512 KiB + 1 (hyper never reads it)",
        head_of(HYPER_HEAD_NEVER_READ),
        server(431, HYPER_HEAD),
        actix(server(431, ACTIX_HEAD)),
    );
    add(
        "size: head of 1 MiB",
        head_of(1024 * 1024),
        server(431, HYPER_HEAD),
        actix(server(431, ACTIX_HEAD)),
    );

    // Header field counts around both servers' limits.
    let user_ok = ok("user", Some("ordinary"));
    add(
        "fields: 96 (actix's limit)",
        fields(&keys.ordinary, 96),
        user_ok.clone(),
        vec![],
    );
    add(
        "fields: 97",
        fields(&keys.ordinary, 97),
        user_ok.clone(),
        actix(server(431, ACTIX_FIELDS)),
    );
    add(
        "fields: 100 (hyper's limit)",
        fields(&keys.ordinary, 100),
        user_ok.clone(),
        actix(server(431, ACTIX_FIELDS)),
    );
    add(
        "fields: 101",
        fields(&keys.ordinary, 101),
        server(431, HYPER_FIELDS),
        actix(server(431, ACTIX_FIELDS)),
    );

    // Every kind of key on every route.
    let on = |path: &'static str, key: &str| {
        if path == TWO_FACTOR {
            post(path).bearer(key).bytes()
        } else {
            get(path).bearer(key).bytes()
        }
    };
    let ordinary = keys.ordinary.token.as_str();
    add(
        "ordinary key: user",
        on(USER, ordinary),
        user_ok.clone(),
        vec![],
    );
    add(
        "ordinary key: servers",
        on(SERVERS, ordinary),
        ok("servers", Some("ordinary")),
        vec![],
    );
    add(
        "ordinary key: two-factor",
        on(TWO_FACTOR, ordinary),
        ok("two-factor", Some("ordinary")),
        vec![],
    );
    add(
        "ordinary key: optional",
        on(OPTIONAL, ordinary),
        ok("optional", Some("ordinary")),
        vec![],
    );
    add(
        "ordinary key: health",
        on(HEALTH, ordinary),
        health.clone(),
        vec![],
    );
    add(
        "ordinary key: secret alone, no id",
        on(USER, keys.ordinary.secret()),
        user_ok.clone(),
        vec![],
    );
    add(
        "reader key: servers",
        on(SERVERS, &keys.reader.token),
        ok("servers", Some("reader")),
        vec![],
    );
    let billing = keys.billing.token.as_str();
    add(
        "missing ability: user",
        on(USER, billing),
        ok("user", Some("billing")),
        vec![],
    );
    add(
        "missing ability: servers",
        on(SERVERS, billing),
        refused(Ability),
        vec![],
    );
    add(
        "missing ability: two-factor",
        on(TWO_FACTOR, billing),
        ok("two-factor", Some("billing")),
        vec![],
    );
    add(
        "missing ability: optional",
        on(OPTIONAL, billing),
        ok("optional", Some("billing")),
        vec![],
    );

    let unknown = format!("999|{}", keys.ordinary.secret());
    add(
        "unknown id: user",
        on(USER, &unknown),
        refused(Invalid),
        vec![],
    );
    add(
        "unknown id: optional",
        on(OPTIONAL, &unknown),
        refused(Invalid),
        vec![],
    );
    let other_id = format!("{}|{}", keys.reader.id, keys.ordinary.secret());
    add(
        "another key's id: user",
        on(USER, &other_id),
        refused(Invalid),
        vec![],
    );
    let letters_id = format!("abc|{}", keys.ordinary.secret());
    add(
        "non-digit id: user",
        on(USER, &letters_id),
        refused(Invalid),
        vec![],
    );
    let wrong = format!("{}|{}", keys.ordinary.id, "x".repeat(48));
    add(
        "wrong secret: user",
        on(USER, &wrong),
        refused(Invalid),
        vec![],
    );
    add(
        "wrong secret: servers",
        on(SERVERS, &wrong),
        refused(Invalid),
        vec![],
    );
    add(
        "wrong secret: two-factor",
        on(TWO_FACTOR, &wrong),
        refused(Invalid),
        vec![],
    );

    let expired = keys.expired.token.as_str();
    add("expired: user", on(USER, expired), refused(Invalid), vec![]);
    add(
        "expired: two-factor",
        on(TWO_FACTOR, expired),
        refused(Invalid),
        vec![],
    );
    add(
        "expired: optional",
        on(OPTIONAL, expired),
        refused(Invalid),
        vec![],
    );
    let revoked = keys.revoked.token.as_str();
    add("revoked: user", on(USER, revoked), refused(Invalid), vec![]);
    add(
        "revoked: two-factor",
        on(TWO_FACTOR, revoked),
        refused(Invalid),
        vec![],
    );
    add(
        "regenerated, old token",
        on(USER, &keys.rotated_old.token),
        refused(Invalid),
        vec![],
    );
    add(
        "regenerated, new token",
        on(USER, &keys.rotated_new.token),
        ok("user", Some("rotated")),
        vec![],
    );

    let pending = keys.pending.token.as_str();
    add(
        "pending 2fa: user",
        on(USER, pending),
        refused(SecondFactor),
        vec![],
    );
    add(
        "pending 2fa: servers",
        on(SERVERS, pending),
        refused(SecondFactor),
        vec![],
    );
    add(
        "pending 2fa: two-factor",
        on(TWO_FACTOR, pending),
        ok("two-factor", Some("pending")),
        vec![],
    );
    add(
        "pending 2fa: optional",
        on(OPTIONAL, pending),
        refused(SecondFactor),
        vec![],
    );
    add(
        "pending 2fa: health",
        on(HEALTH, pending),
        health.clone(),
        vec![],
    );

    add(
        "backend down: user",
        on(USER, BACKEND_DOWN),
        refused(Unavailable),
        vec![],
    );
    add(
        "backend down: servers",
        on(SERVERS, BACKEND_DOWN),
        refused(Unavailable),
        vec![],
    );
    add(
        "backend down: two-factor",
        on(TWO_FACTOR, BACKEND_DOWN),
        refused(Unavailable),
        vec![],
    );
    add(
        "backend down: optional",
        on(OPTIONAL, BACKEND_DOWN),
        refused(Unavailable),
        vec![],
    );
    add(
        "backend down: health",
        on(HEALTH, BACKEND_DOWN),
        health.clone(),
        vec![],
    );

    add(
        "no header: servers",
        get(SERVERS).bytes(),
        refused(Missing),
        vec![],
    );
    add(
        "no header: two-factor",
        post(TWO_FACTOR).bytes(),
        refused(Missing),
        vec![],
    );
    add(
        "no header: optional",
        get(OPTIONAL).bytes(),
        ok("optional", None),
        vec![],
    );
    add(
        "no header: health",
        get(HEALTH).bytes(),
        health.clone(),
        vec![],
    );
    add(
        "Basic on the optional route",
        get(OPTIONAL).auth(b"Basic dXNlcjpwYXNz").bytes(),
        ok("optional", None),
        vec![],
    );
    add(
        "malformed on the optional route",
        get(OPTIONAL).auth(b"Bearer a b").bytes(),
        refused(Invalid),
        vec![],
    );

    // HTTP/1.0 and HTTP/1.1.
    add(
        "HTTP/1.0: valid key",
        get(USER).bearer(ordinary).http10().bytes(),
        user_ok.clone(),
        vec![],
    );
    add(
        "HTTP/1.0: without Host",
        get(USER).bearer(ordinary).http10().without_host().bytes(),
        user_ok.clone(),
        vec![],
    );
    add(
        "HTTP/1.0: no header",
        get(USER).http10().bytes(),
        refused(Missing),
        vec![],
    );
    add(
        "HTTP/1.0: malformed",
        get(USER).auth(b"Bearer a,b").http10().bytes(),
        refused(Invalid),
        vec![],
    );
    add(
        "HTTP/1.0: pending 2fa",
        get(USER).bearer(pending).http10().bytes(),
        refused(SecondFactor),
        vec![],
    );
    add(
        "HTTP/1.0: backend down",
        get(USER).bearer(BACKEND_DOWN).http10().bytes(),
        refused(Unavailable),
        vec![],
    );
    add(
        "HTTP/1.0: optional, anonymous",
        get(OPTIONAL).http10().bytes(),
        ok("optional", None),
        vec![],
    );
    add(
        "HTTP/1.0: health",
        get(HEALTH).http10().bytes(),
        health.clone(),
        vec![],
    );
    add(
        "HTTP/1.1: without Host, valid key",
        get(USER).bearer(ordinary).without_host().bytes(),
        user_ok.clone(),
        actix(server(400, ACTIX_HOST)),
    );
    add(
        "HTTP/1.1: without Host, no header",
        get(USER).without_host().bytes(),
        refused(Missing),
        actix(server(400, ACTIX_HOST)),
    );

    // Request bodies on the two-factor route.
    add(
        "body: Content-Length, pending 2fa",
        post(TWO_FACTOR)
            .bearer(pending)
            .body(br#"{"code":"123456"}"#)
            .bytes(),
        ok("two-factor", Some("pending")),
        vec![],
    );
    add(
        "body: chunked, pending 2fa",
        post(TWO_FACTOR)
            .bearer(pending)
            .chunked(br#"{"code":"123456"}"#)
            .bytes(),
        ok("two-factor", Some("pending")),
        vec![],
    );
    add(
        "body: Content-Length, no header",
        post(TWO_FACTOR).body(br#"{"code":"123456"}"#).bytes(),
        refused(Missing),
        vec![],
    );
    add(
        "body: HTTP/1.0, invalid key",
        post(TWO_FACTOR).bearer(&wrong).body(b"{}").http10().bytes(),
        refused(Invalid),
        vec![],
    );

    cases
}
