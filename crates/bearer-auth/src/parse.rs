//! Reading `Authorization: Bearer <token>` from a request.
//!
//! The grammar is RFC 6750's `b64token`, widened with `|` so that Laravel Sanctum tokens
//! (`id|secret`) are accepted:
//!
//! ```text
//! credentials = "Bearer" 1*SP token      ; scheme matched case-insensitively
//! token       = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" / "|" ) *"="
//! ```
//!
//! Whitespace (SP or HTAB) around the whole field value is ignored. Anything else is
//! refused: no header, another scheme, an empty token, a space, tab or comma inside the
//! token, non-ASCII or control bytes, or more than one `Authorization` header.

use std::fmt;

use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Why a request carries no usable Bearer token.
///
/// The two cases differ only in the `WWW-Authenticate` challenge they earn (RFC 6750 §3):
/// a request with no credentials gets a bare `Bearer` challenge, a request whose Bearer
/// credentials could not be read gets `error="invalid_token"`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// No `Authorization` header, an empty one, or one of another scheme (`Basic …`).
    Missing,
    /// Bearer credentials that do not follow the grammar, or several `Authorization` headers.
    Malformed,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "no bearer credentials in the request",
            Self::Malformed => "malformed bearer credentials",
        })
    }
}

impl std::error::Error for ParseError {}

/// A Bearer token read from a request.
///
/// The token is a secret: its [`Debug`] output is `Bearer ******`, it has no `Display` and
/// no `PartialEq` (compare digests in constant time instead, see
/// [`TokenHash`](crate::TokenHash)), and its memory is zeroed when it is dropped.
///
/// ```
/// use bearer_auth::BearerToken;
/// use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
///
/// let mut headers = HeaderMap::new();
/// headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer 7|s3cr3t"));
/// let token = BearerToken::from_headers(&headers).unwrap();
/// assert_eq!(token.as_str(), "7|s3cr3t");
/// assert_eq!(format!("{token:?}"), "Bearer ******");
/// ```
pub struct BearerToken {
    token: String,
}

impl BearerToken {
    /// Reads the token from a request's headers.
    ///
    /// Exactly one `Authorization` header must be present; two or more are refused as
    /// [`ParseError::Malformed`], whatever they hold.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ParseError> {
        Self::from_header_values(
            headers
                .get_all(AUTHORIZATION)
                .iter()
                .map(HeaderValue::as_bytes),
        )
    }

    /// Reads the token from the values of every `Authorization` header of a request, in
    /// order. This is the entry point for frameworks with their own header types.
    pub fn from_header_values<'a, I>(values: I) -> Result<Self, ParseError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut values = values.into_iter();
        let first = values.next().ok_or(ParseError::Missing)?;
        if values.next().is_some() {
            return Err(ParseError::Malformed);
        }
        Self::parse(first)
    }

    /// Reads the token from one `Authorization` header value.
    pub fn from_header_value(value: &HeaderValue) -> Result<Self, ParseError> {
        Self::parse(value.as_bytes())
    }

    /// Reads the token from the raw bytes of one `Authorization` header value.
    ///
    /// Whitespace around the value, the scheme and the spaces after it are handled with
    /// ordinary branches (they are not secret); the token's own bytes are checked with a
    /// loop whose work depends only on their number.
    pub fn parse(value: &[u8]) -> Result<Self, ParseError> {
        let value = trim_ows(value);
        if value.is_empty() {
            return Err(ParseError::Missing);
        }
        let Some((scheme, rest)) = value.split_at_checked(SCHEME.len()) else {
            return Err(ParseError::Missing);
        };
        if !scheme.eq_ignore_ascii_case(SCHEME) {
            return Err(ParseError::Missing);
        }
        match rest.first() {
            // `Bearer` alone: the scheme without its token.
            None => return Err(ParseError::Malformed),
            Some(b' ') => {}
            // `Bearer\tabc`: only spaces may separate scheme and token.
            Some(b'\t') => return Err(ParseError::Malformed),
            // `BearerAbc`: another scheme whose name merely starts with "Bearer".
            Some(_) => return Err(ParseError::Missing),
        }
        let token = trim_leading_spaces(rest);
        Self::from_token_bytes(token)
    }

    /// Wraps a bare token (without the `Bearer ` scheme), checking it against the same
    /// character set as [`parse`](Self::parse). Useful for tokens that arrive some other
    /// way than an `Authorization` header.
    pub fn from_token(token: &str) -> Result<Self, ParseError> {
        Self::from_token_bytes(token.as_bytes())
    }

    fn from_token_bytes(token: &[u8]) -> Result<Self, ParseError> {
        if !is_b64token(token) {
            return Err(ParseError::Malformed);
        }
        // All bytes are ASCII at this point, so the conversion cannot fail.
        let token = String::from_utf8(token.to_vec()).map_err(|_| ParseError::Malformed)?;
        Ok(Self { token })
    }

    /// The token, without the scheme, for verifiers.
    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// The token's length in bytes.
    pub fn len(&self) -> usize {
        self.token.len()
    }

    /// Always `false`: a parsed token holds at least one character. Present for symmetry
    /// with [`len`](Self::len).
    pub fn is_empty(&self) -> bool {
        self.token.is_empty()
    }
}

impl Clone for BearerToken {
    fn clone(&self) -> Self {
        Self {
            token: self.token.clone(),
        }
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bearer ******")
    }
}

impl Drop for BearerToken {
    fn drop(&mut self) {
        self.token.zeroize();
    }
}

impl ZeroizeOnDrop for BearerToken {}

const SCHEME: &[u8] = b"Bearer";

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn trim_leading_spaces(mut v: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = v {
        v = rest;
    }
    v
}

/// 1 when `lo <= b <= hi`, else 0, with arithmetic only: no comparison and no branch
/// on `b`.
#[inline(always)]
fn in_range(b: u8, lo: u8, hi: u8) -> u8 {
    // `b - lo` wraps beyond `hi - lo` for every byte outside the range, so the saturating
    // subtraction is zero exactly for the bytes inside it.
    let over = b.wrapping_sub(lo).saturating_sub(hi - lo);
    // `x | -x` has its top bit set for every `x` but 0.
    ((over | over.wrapping_neg()) >> 7) ^ 1
}

#[inline(always)]
fn is_byte(b: u8, c: u8) -> u8 {
    in_range(b, c, c)
}

/// 1 for a `b64token` character other than padding (RFC 6750, plus `|`), else 0.
#[inline(always)]
fn is_char68(b: u8) -> u8 {
    in_range(b, b'A', b'Z')
        | in_range(b, b'a', b'z')
        // `-`, `.`, `/` and the digits are one run of ASCII.
        | in_range(b, b'-', b'9')
        | is_byte(b, b'+')
        | is_byte(b, b'_')
        | is_byte(b, b'~')
        | is_byte(b, b'|')
}

/// Whether `token` is a non-empty RFC 6750 `b64token` (with `|` allowed).
///
/// Every byte, and every pair of neighbouring bytes, is classified with the same
/// arithmetic and the verdict is accumulated, so the work depends on the token's length
/// only: no branch or early exit on a byte's value. The two loops carry nothing from one
/// byte to the next but the verdict, so the compiler turns them into vector code.
pub(crate) fn is_b64token(token: &[u8]) -> bool {
    // The length is not secret.
    let [first, ..] = token else {
        return false;
    };
    // Padding with nothing before it.
    let mut bad = is_byte(*first, b'=');
    // A byte that is neither a token character nor padding.
    for &b in token {
        bad |= (is_char68(b) | is_byte(b, b'=')) ^ 1;
    }
    // A token character right after padding: with every byte a token character or
    // padding, this is exactly "padding that is not a suffix".
    for (&b, &next) in token.iter().zip(&token[1..]) {
        bad |= is_byte(b, b'=') & is_char68(next);
    }
    std::hint::black_box(bad) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(v: &[u8]) -> Result<String, ParseError> {
        BearerToken::parse(v).map(|t| t.as_str().to_owned())
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        map
    }

    // Accepted.
    #[test]
    fn accepts_canonical_scheme() {
        assert_eq!(parse(b"Bearer abc").unwrap(), "abc");
    }
    #[test]
    fn accepts_lower_case_scheme() {
        assert_eq!(parse(b"bearer abc").unwrap(), "abc");
    }
    #[test]
    fn accepts_upper_case_scheme() {
        assert_eq!(parse(b"BEARER abc").unwrap(), "abc");
    }
    #[test]
    fn accepts_several_spaces_after_scheme() {
        assert_eq!(parse(b"Bearer   abc").unwrap(), "abc");
    }
    #[test]
    fn accepts_trailing_padding() {
        assert_eq!(parse(b"Bearer abc==").unwrap(), "abc==");
    }
    #[test]
    fn accepts_sanctum_token_and_every_symbol() {
        assert_eq!(parse(b"Bearer 12|AbC-._~+/9").unwrap(), "12|AbC-._~+/9");
    }
    #[test]
    fn accepts_surrounding_whitespace() {
        assert_eq!(parse(b"  Bearer abc  ").unwrap(), "abc");
        assert_eq!(parse(b"\tBearer abc\t").unwrap(), "abc");
    }
    #[test]
    fn accepts_from_header_map() {
        let t = BearerToken::from_headers(&headers(&[b"Bearer abc"])).unwrap();
        assert_eq!(t.as_str(), "abc");
    }

    // Refused.
    #[test]
    fn refuses_no_header() {
        assert_eq!(
            BearerToken::from_headers(&HeaderMap::new()).unwrap_err(),
            ParseError::Missing
        );
    }
    #[test]
    fn refuses_empty_value() {
        assert_eq!(parse(b"").unwrap_err(), ParseError::Missing);
        assert_eq!(
            BearerToken::from_headers(&headers(&[b""])).unwrap_err(),
            ParseError::Missing
        );
    }
    #[test]
    fn refuses_scheme_without_token() {
        assert_eq!(parse(b"Bearer").unwrap_err(), ParseError::Malformed);
    }
    #[test]
    fn refuses_scheme_and_space_without_token() {
        assert_eq!(parse(b"Bearer ").unwrap_err(), ParseError::Malformed);
        assert_eq!(parse(b"Bearer    ").unwrap_err(), ParseError::Malformed);
    }
    #[test]
    fn refuses_other_scheme() {
        assert_eq!(
            parse(b"Basic dXNlcjpwYXNz").unwrap_err(),
            ParseError::Missing
        );
    }
    #[test]
    fn refuses_scheme_glued_to_token() {
        assert_eq!(parse(b"BearerAbc").unwrap_err(), ParseError::Missing);
    }
    #[test]
    fn refuses_tab_after_scheme() {
        assert_eq!(parse(b"Bearer\tabc").unwrap_err(), ParseError::Malformed);
    }
    #[test]
    fn refuses_inner_space() {
        assert_eq!(parse(b"Bearer a b").unwrap_err(), ParseError::Malformed);
    }
    #[test]
    fn refuses_comma() {
        assert_eq!(parse(b"Bearer a,b").unwrap_err(), ParseError::Malformed);
    }
    #[test]
    fn refuses_padding_inside_token() {
        assert_eq!(parse(b"Bearer a=b").unwrap_err(), ParseError::Malformed);
    }
    #[test]
    fn refuses_padding_only_token() {
        assert_eq!(parse(b"Bearer ==").unwrap_err(), ParseError::Malformed);
    }
    #[test]
    fn refuses_quote() {
        assert_eq!(parse(b"Bearer a\"b").unwrap_err(), ParseError::Malformed);
    }
    #[test]
    fn refuses_non_ascii_bytes() {
        assert_eq!(
            parse(b"Bearer ab\xc3\xa9").unwrap_err(),
            ParseError::Malformed
        );
        assert_eq!(parse(b"Bearer \x80abc").unwrap_err(), ParseError::Malformed);
        assert_eq!(parse(b"Bearer abc\xff").unwrap_err(), ParseError::Malformed);
    }
    #[test]
    fn refuses_control_bytes() {
        assert_eq!(parse(b"Bearer ab\x01c").unwrap_err(), ParseError::Malformed);
        assert_eq!(parse(b"Bearer abc\x7f").unwrap_err(), ParseError::Malformed);
        assert_eq!(parse(b"Bearer a\x00bc").unwrap_err(), ParseError::Malformed);
    }
    #[test]
    fn refuses_two_authorization_headers() {
        let two = headers(&[b"Bearer abc", b"Bearer abc"]);
        assert_eq!(
            BearerToken::from_headers(&two).unwrap_err(),
            ParseError::Malformed
        );
        let mixed = headers(&[b"Basic dXNlcjpwYXNz", b"Bearer abc"]);
        assert_eq!(
            BearerToken::from_headers(&mixed).unwrap_err(),
            ParseError::Malformed
        );
    }
    #[test]
    fn refuses_64_kib_value_without_panic() {
        let mut v = b"Bearer ".to_vec();
        v.resize(64 * 1024, b'a');
        v.push(b' ');
        v.push(b'b');
        assert_eq!(parse(&v).unwrap_err(), ParseError::Malformed);
        // The same length, all valid, is accepted: length alone is not refused here.
        let mut ok = b"Bearer ".to_vec();
        ok.resize(64 * 1024, b'a');
        assert_eq!(parse(&ok).unwrap().len(), 64 * 1024 - 7);
    }

    #[test]
    fn debug_is_redacted() {
        let t = BearerToken::from_token("1|secret").unwrap();
        assert_eq!(format!("{t:?}"), "Bearer ******");
        assert_eq!(format!("{t:#?}"), "Bearer ******");
    }

    #[test]
    fn from_token_checks_charset() {
        assert!(BearerToken::from_token("a b").is_err());
        assert!(BearerToken::from_token("").is_err());
        assert_eq!(BearerToken::from_token("x==").unwrap().as_str(), "x==");
    }

    #[test]
    fn zeroizes_on_drop_marker() {
        fn assert_zeroize_on_drop<T: ZeroizeOnDrop>() {}
        assert_zeroize_on_drop::<BearerToken>();
    }

    /// A reference implementation written for clarity, not for constant time.
    fn reference(value: &[u8]) -> Result<String, ParseError> {
        let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
        let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
        let end = value
            .iter()
            .rposition(|b| !is_ows(b))
            .map_or(start, |i| i + 1);
        let value = &value[start..end.max(start)];
        if value.len() < 6 || !value[..6].eq_ignore_ascii_case(b"bearer") {
            return Err(ParseError::Missing);
        }
        let rest = &value[6..];
        match rest.first() {
            None | Some(b'\t') => return Err(ParseError::Malformed),
            Some(b' ') => {}
            Some(_) => return Err(ParseError::Missing),
        }
        let token = std::str::from_utf8(rest).map_err(|_| ParseError::Malformed)?;
        let token = token.trim_start_matches(' ');
        let body = token.trim_end_matches('=');
        let body_ok = !body.is_empty()
            && body
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~+/|".contains(c));
        if body_ok {
            Ok(token.to_owned())
        } else {
            Err(ParseError::Malformed)
        }
    }

    fn header_like() -> impl Strategy<Value = Vec<u8>> {
        let alphabet: Vec<u8> = b" \t=|-._~+/,\"aZ09\x00\x7f\x80\xff".to_vec();
        let tail = prop::collection::vec(
            prop_oneof![prop::sample::select(alphabet), any::<u8>()],
            0..24,
        );
        let prefix = prop::sample::select(vec![
            &b""[..],
            b"Bearer ",
            b"bearer  ",
            b" BEARER ",
            b"Bearer",
            b"Bearer\t",
            b"Basic ",
        ]);
        (prefix, tail).prop_map(|(p, t)| [p, &t[..]].concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn matches_reference_on_arbitrary_bytes(value in prop::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(parse(&value), reference(&value));
        }

        #[test]
        fn matches_reference_on_header_like_bytes(value in header_like()) {
            prop_assert_eq!(parse(&value), reference(&value));
        }

        #[test]
        fn charset_check_matches_reference(token in prop::collection::vec(any::<u8>(), 0..72)) {
            prop_assert_eq!(is_b64token(&token), charset_reference(&token));
        }

        /// Mostly valid tokens of every length up to past four chunks, with padding
        /// anywhere: the cases random bytes hardly reach.
        #[test]
        fn charset_check_matches_reference_near_valid(token in "[A-Za-z0-9|=._~+/ -]{0,70}") {
            prop_assert_eq!(is_b64token(token.as_bytes()), charset_reference(token.as_bytes()));
        }

        #[test]
        fn charset_check_accepts_padded_tokens(body in "[A-Za-z0-9|._~+/-]{1,70}", pad in 0_usize..20) {
            let token = format!("{body}{}", "=".repeat(pad));
            prop_assert!(is_b64token(token.as_bytes()));
        }
    }

    fn charset_reference(token: &[u8]) -> bool {
        std::str::from_utf8(token).ok().is_some_and(|t| {
            let body = t.trim_end_matches('=');
            !body.is_empty()
                && body
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._~+/|".contains(c))
        })
    }
}
