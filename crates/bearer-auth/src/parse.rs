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

/// The longest token accepted by default, in bytes: 1 KiB.
///
/// A Laravel Sanctum token is about 50 bytes and a signed JWT rarely passes a few hundred,
/// while hashing and copying a token costs time in proportion to its length: a token a
/// client may make as long as its server reads headers (about 400 KB with hyper) would
/// cost over a thousand times the work of an ordinary one. Longer tokens are refused as
/// [`ParseError::TooLong`] before any copy or hash. Change the bound with
/// [`BearerToken::parse_with_max_len`] or
/// [`Authenticator::with_max_token_len`](crate::Authenticator::with_max_token_len).
pub const DEFAULT_MAX_TOKEN_LEN: usize = 1024;

/// Room for what surrounds a token in a field value: leading whitespace, the scheme, the
/// spaces after it, trailing whitespace. A Bearer value longer than the bound plus this
/// is refused without being read to its end.
const FRAMING_LEN: usize = 64;

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
    /// Bearer credentials whose token is longer than the bound
    /// ([`DEFAULT_MAX_TOKEN_LEN`] unless configured otherwise). Answered like
    /// [`Malformed`](Self::Malformed); only logs tell them apart.
    TooLong,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "no bearer credentials in the request",
            Self::Malformed => "malformed bearer credentials",
            Self::TooLong => "bearer token longer than the accepted bound",
        })
    }
}

impl std::error::Error for ParseError {}

/// A Bearer token read from a request, borrowed from the header it came in.
///
/// What the adapters hand to [`TokenVerifier::verify_now`](crate::TokenVerifier::verify_now):
/// the token's bytes stay where the request holds them, so checking a token that is
/// answered at once makes no copy of the secret and allocates nothing. When a verifier
/// must be awaited, [`into_owned`](Self::into_owned) makes the one copy an owned
/// [`BearerToken`] needs (zeroed when dropped).
///
/// It is a secret like [`BearerToken`]: its [`Debug`] output is `Bearer ******`, and it has
/// no `Display` and no `PartialEq`. Being a reference, it is `Copy`: copying it copies a
/// pointer, never the token.
///
/// ```
/// use bearer_auth::BearerTokenRef;
/// use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
///
/// let mut headers = HeaderMap::new();
/// headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer 7|s3cr3t"));
/// let token = BearerTokenRef::from_headers(&headers).unwrap();
/// assert_eq!(token.as_str(), "7|s3cr3t");
/// assert_eq!(format!("{token:?}"), "Bearer ******");
/// // The same bytes as the header's, not a copy of them.
/// assert!(std::ptr::eq(token.as_str().as_ptr(), headers[AUTHORIZATION].as_bytes()[7..].as_ptr()));
/// ```
///
/// The rules, and the length bound, are [`BearerToken`]'s: see [its docs](BearerToken#length).
#[derive(Clone, Copy)]
pub struct BearerTokenRef<'a> {
    token: &'a str,
}

impl<'a> BearerTokenRef<'a> {
    /// Reads the token from a request's headers: exactly one `Authorization` header,
    /// a token of at most [`DEFAULT_MAX_TOKEN_LEN`] bytes. See [`BearerToken::from_headers`].
    pub fn from_headers(headers: &'a HeaderMap) -> Result<Self, ParseError> {
        Self::from_header_values(
            headers
                .get_all(AUTHORIZATION)
                .iter()
                .map(HeaderValue::as_bytes),
        )
    }

    /// Reads the token from the values of every `Authorization` header of a request, in
    /// order. See [`BearerToken::from_header_values`].
    pub fn from_header_values<I>(values: I) -> Result<Self, ParseError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        Self::from_header_values_with_max_len(values, DEFAULT_MAX_TOKEN_LEN)
    }

    /// [`from_header_values`](Self::from_header_values) with a bound of `max_len` bytes
    /// on the token instead of [`DEFAULT_MAX_TOKEN_LEN`].
    pub fn from_header_values_with_max_len<I>(values: I, max_len: usize) -> Result<Self, ParseError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut values = values.into_iter();
        let first = values.next().ok_or(ParseError::Missing)?;
        if values.next().is_some() {
            return Err(ParseError::Malformed);
        }
        Self::parse_with_max_len(first, max_len)
    }

    /// Reads the token from one `Authorization` header value, with the default bound.
    pub fn from_header_value(value: &'a HeaderValue) -> Result<Self, ParseError> {
        Self::parse(value.as_bytes())
    }

    /// Reads the token from the raw bytes of one `Authorization` header value. See
    /// [`BearerToken::parse`].
    pub fn parse(value: &'a [u8]) -> Result<Self, ParseError> {
        Self::parse_with_max_len(value, DEFAULT_MAX_TOKEN_LEN)
    }

    /// [`parse`](Self::parse) with a bound of `max_len` bytes on the token instead of
    /// [`DEFAULT_MAX_TOKEN_LEN`]. See [`BearerToken::parse_with_max_len`].
    pub fn parse_with_max_len(value: &'a [u8], max_len: usize) -> Result<Self, ParseError> {
        if value.len() > max_len.saturating_add(FRAMING_LEN) {
            return Err(classify_long_value(value));
        }
        // From here on, every scan is bounded by `max_len + FRAMING_LEN`.
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
        Self::from_token_bytes(token, max_len)
    }

    /// Wraps a bare token (without the `Bearer ` scheme), checking it against the same
    /// character set and default bound as [`parse`](Self::parse).
    pub fn from_token(token: &'a str) -> Result<Self, ParseError> {
        Self::from_token_with_max_len(token, DEFAULT_MAX_TOKEN_LEN)
    }

    /// [`from_token`](Self::from_token) with a bound of `max_len` bytes instead of
    /// [`DEFAULT_MAX_TOKEN_LEN`].
    pub fn from_token_with_max_len(token: &'a str, max_len: usize) -> Result<Self, ParseError> {
        Self::from_token_bytes(token.as_bytes(), max_len)
    }

    fn from_token_bytes(token: &'a [u8], max_len: usize) -> Result<Self, ParseError> {
        // The length is not secret; refusing on it first bounds the work below.
        if token.len() > max_len {
            return Err(ParseError::TooLong);
        }
        if !is_b64token(token) {
            return Err(ParseError::Malformed);
        }
        // All bytes are ASCII at this point, so the conversion cannot fail.
        let token = std::str::from_utf8(token).map_err(|_| ParseError::Malformed)?;
        Ok(Self { token })
    }

    /// The token, without the scheme, for verifiers.
    pub fn as_str(&self) -> &'a str {
        self.token
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

    /// An owned copy of the token, for a verifier that must be awaited: the one copy of
    /// the secret the adapters make, and only then. Zeroed when dropped.
    pub fn into_owned(self) -> BearerToken {
        BearerToken {
            token: self.token.to_owned(),
        }
    }
}

impl fmt::Debug for BearerTokenRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bearer ******")
    }
}

impl<'a> From<&'a BearerToken> for BearerTokenRef<'a> {
    fn from(token: &'a BearerToken) -> Self {
        token.as_borrowed()
    }
}

/// A Bearer token read from a request, owned.
///
/// The token is a secret: its [`Debug`] output is `Bearer ******`, it has no `Display` and
/// no `PartialEq` (compare digests in constant time instead, see
/// [`TokenHash`](crate::TokenHash)), and its memory is zeroed when it is dropped.
///
/// Owning its copy of the token, it can outlive the request, as an awaited verification
/// needs ([`TokenVerifier::verify`](crate::TokenVerifier::verify)). Where the token is
/// checked at once, [`BearerTokenRef`] reads the same token without copying it.
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
///
/// # Length
///
/// A token longer than a bound ([`DEFAULT_MAX_TOKEN_LEN`] unless the `_with_max_len`
/// functions are given another) is refused as [`ParseError::TooLong`] before its
/// characters are checked, copied or hashed. So that no part of a value is read past the
/// bound, a Bearer field value longer than the bound plus 64 bytes (room for the scheme,
/// the spaces after it and the whitespace around the value) is refused the same way
/// after only its first bytes are read. A value of another scheme stays
/// [`ParseError::Missing`] whatever its length. The work done on a value is thus
/// proportional to its length up to the bound, and constant past it.
pub struct BearerToken {
    token: String,
}

impl BearerToken {
    /// Reads the token from a request's headers.
    ///
    /// Exactly one `Authorization` header must be present; two or more are refused as
    /// [`ParseError::Malformed`], whatever they hold. A token longer than
    /// [`DEFAULT_MAX_TOKEN_LEN`] is refused as [`ParseError::TooLong`].
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ParseError> {
        BearerTokenRef::from_headers(headers).map(BearerTokenRef::into_owned)
    }

    /// Reads the token from the values of every `Authorization` header of a request, in
    /// order. This is the entry point for frameworks with their own header types.
    ///
    /// A token longer than [`DEFAULT_MAX_TOKEN_LEN`] is refused as
    /// [`ParseError::TooLong`]; [`from_header_values_with_max_len`](Self::from_header_values_with_max_len)
    /// takes another bound.
    pub fn from_header_values<'a, I>(values: I) -> Result<Self, ParseError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        BearerTokenRef::from_header_values(values).map(BearerTokenRef::into_owned)
    }

    /// [`from_header_values`](Self::from_header_values) with a bound of `max_len` bytes
    /// on the token instead of [`DEFAULT_MAX_TOKEN_LEN`].
    pub fn from_header_values_with_max_len<'a, I>(
        values: I,
        max_len: usize,
    ) -> Result<Self, ParseError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        BearerTokenRef::from_header_values_with_max_len(values, max_len)
            .map(BearerTokenRef::into_owned)
    }

    /// Reads the token from one `Authorization` header value, with the default bound.
    pub fn from_header_value(value: &HeaderValue) -> Result<Self, ParseError> {
        Self::parse(value.as_bytes())
    }

    /// Reads the token from the raw bytes of one `Authorization` header value.
    ///
    /// Whitespace around the value, the scheme and the spaces after it are handled with
    /// ordinary branches (they are not secret); the token's own bytes are checked with a
    /// loop whose work depends only on their number.
    ///
    /// A token longer than [`DEFAULT_MAX_TOKEN_LEN`] is refused as
    /// [`ParseError::TooLong`] (see [Length](Self#length)).
    pub fn parse(value: &[u8]) -> Result<Self, ParseError> {
        Self::parse_with_max_len(value, DEFAULT_MAX_TOKEN_LEN)
    }

    /// [`parse`](Self::parse) with a bound of `max_len` bytes on the token instead of
    /// [`DEFAULT_MAX_TOKEN_LEN`].
    ///
    /// A token of `max_len` bytes is accepted, one of `max_len + 1` is refused as
    /// [`ParseError::TooLong`] before its characters are checked or copied. A Bearer value
    /// longer than `max_len + 64` bytes is refused as `TooLong` after reading no more than
    /// its first 64 bytes, whatever its token; a value of another scheme stays
    /// [`ParseError::Missing`] whatever its length.
    ///
    /// ```
    /// use bearer_auth::{BearerToken, ParseError};
    ///
    /// let value = format!("Bearer {}", "a".repeat(16));
    /// assert_eq!(BearerToken::parse_with_max_len(value.as_bytes(), 16).unwrap().len(), 16);
    /// assert_eq!(
    ///     BearerToken::parse_with_max_len(value.as_bytes(), 15).unwrap_err(),
    ///     ParseError::TooLong
    /// );
    /// ```
    pub fn parse_with_max_len(value: &[u8], max_len: usize) -> Result<Self, ParseError> {
        BearerTokenRef::parse_with_max_len(value, max_len).map(BearerTokenRef::into_owned)
    }

    /// Wraps a bare token (without the `Bearer ` scheme), checking it against the same
    /// character set as [`parse`](Self::parse) and the same default bound,
    /// [`DEFAULT_MAX_TOKEN_LEN`]. Useful for tokens that arrive some other way than an
    /// `Authorization` header.
    pub fn from_token(token: &str) -> Result<Self, ParseError> {
        Self::from_token_with_max_len(token, DEFAULT_MAX_TOKEN_LEN)
    }

    /// [`from_token`](Self::from_token) with a bound of `max_len` bytes instead of
    /// [`DEFAULT_MAX_TOKEN_LEN`].
    pub fn from_token_with_max_len(token: &str, max_len: usize) -> Result<Self, ParseError> {
        BearerTokenRef::from_token_with_max_len(token, max_len).map(BearerTokenRef::into_owned)
    }

    /// The token borrowed, without a copy: what
    /// [`TokenVerifier::verify_now`](crate::TokenVerifier::verify_now) takes.
    pub fn as_borrowed(&self) -> BearerTokenRef<'_> {
        BearerTokenRef { token: &self.token }
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

/// The answer for a value longer than the bound plus [`FRAMING_LEN`], reading at most
/// its first `FRAMING_LEN + SCHEME.len() + 1` bytes: `TooLong` for Bearer credentials (and
/// for a value that starts with more whitespace than any client sends), `Missing` for
/// another scheme, as [`BearerToken::parse`] would answer on a short value.
fn classify_long_value(value: &[u8]) -> ParseError {
    let lead = value
        .iter()
        .take(FRAMING_LEN)
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    if lead == FRAMING_LEN {
        return ParseError::TooLong;
    }
    let rest = &value[lead..];
    match rest.split_at_checked(SCHEME.len()) {
        Some((scheme, after)) if scheme.eq_ignore_ascii_case(SCHEME) => match after.first() {
            // `BearerAbc…`: another scheme.
            Some(b) if !matches!(b, b' ' | b'\t') => ParseError::Missing,
            _ => ParseError::TooLong,
        },
        _ => ParseError::Missing,
    }
}

fn trim_leading_spaces(mut v: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = v {
        v = rest;
    }
    v
}

/// Every byte of a word: `0x01` in each byte.
const LANES: u64 = u64::from_le_bytes([0x01; 8]);
/// The high bit of every byte of a word.
const HIGH: u64 = u64::from_le_bytes([0x80; 8]);

/// For each byte of a word whose bytes had their high bit set (`x | HIGH`), the high bit
/// set where the byte (below 0x80) is `>= c`, for `c <= 0x80`; only high bits are set.
///
/// Each byte is `0x80 + b`, at least `c`: subtracting `c` never borrows from the next
/// byte, and leaves the high bit set exactly when `b >= c`.
#[inline(always)]
fn at_least(high_set: u64, c: u8) -> u64 {
    high_set.wrapping_sub(LANES * u64::from(c)) & HIGH
}

/// The high bit of each byte of the word in `lo..=hi`.
#[inline(always)]
fn within(high_set: u64, lo: u8, hi: u8) -> u64 {
    at_least(high_set, lo) & !at_least(high_set, hi + 1)
}

/// The high bit of each byte of the word equal to `c`.
#[inline(always)]
fn equal(high_set: u64, c: u8) -> u64 {
    within(high_set, c, c)
}

/// Classifies the 8 bytes of `word` (little-endian: byte `i` in bits `8i..8i + 8`): the
/// high bit of each byte that is a token character other than padding, the high bit of
/// each that is padding, and the high bit of each that is neither.
#[inline(always)]
fn classify(word: u64) -> (u64, u64, u64) {
    let non_ascii = word & HIGH;
    let high_set = word | HIGH;
    // Letters: setting bit 5 maps `A..=Z` onto `a..=z` and no other byte into it.
    let letter = within(high_set | (LANES * 0x20), b'a', b'z');
    let char68 = letter
        // `-`, `.`, `/` and the digits are one run of ASCII.
        | within(high_set, b'-', b'9')
        | equal(high_set, b'+')
        | equal(high_set, b'_')
        | equal(high_set, b'~')
        | equal(high_set, b'|');
    let pad = equal(high_set, b'=');
    // A non-ASCII byte may look like anything above: it is refused on its own bit.
    let other = (!(char68 | pad) & HIGH) | non_ascii;
    (char68 & !non_ascii, pad & !non_ascii, other)
}

/// Whether `token` is a non-empty RFC 6750 `b64token` (with `|` allowed).
///
/// The bytes are read 8 at a time as one `u64` and classified with the same arithmetic
/// on every byte at once (SWAR): no branch, lookup table or early exit on a byte's value,
/// so the work depends on the token's length only. A last, shorter group is read into a
/// zeroed word and only its bytes count. Padding must be a suffix: a padding byte
/// followed by a token character is refused, within a word and across two.
pub(crate) fn is_b64token(token: &[u8]) -> bool {
    // The length is not secret.
    let [first, ..] = token else {
        return false;
    };
    // Padding first: nothing before it.
    let mut bad = equal(u64::from(*first) | HIGH, b'=') & 0x80;
    // The high bit of the previous word's last byte, if it was padding.
    let mut pad_before = 0_u64;
    let mut chunks = token.chunks_exact(8);
    let mut check = |word: u64, lanes: u64| {
        let (char68, pad, other) = classify(word);
        let (char68, pad) = (char68 & lanes, pad & lanes);
        bad |= other & lanes;
        // Padding right before a token character: byte `i + 1`'s class moved onto
        // byte `i`, and the previous word's last byte onto this one's first.
        bad |= pad & (char68 >> 8);
        bad |= pad_before & char68 & 0x80;
        pad_before = (pad >> 56) & 0x80;
    };
    for chunk in chunks.by_ref() {
        let mut bytes = [0_u8; 8];
        bytes.copy_from_slice(chunk);
        check(u64::from_le_bytes(bytes), u64::MAX);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut bytes = [0_u8; 8];
        bytes[..rest.len()].copy_from_slice(rest);
        // The high bits of the bytes that are the token's.
        let lanes = HIGH & (u64::MAX >> (64 - 8 * rest.len()));
        check(u64::from_le_bytes(bytes), lanes);
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
        assert_eq!(parse(&v).unwrap_err(), ParseError::TooLong);
        // Without a bound, its inner space makes it malformed.
        assert_eq!(
            BearerToken::parse_with_max_len(&v, usize::MAX).unwrap_err(),
            ParseError::Malformed
        );
        // The same length, all valid, is refused for its length alone, unless the bound
        // allows it.
        let mut ok = b"Bearer ".to_vec();
        ok.resize(64 * 1024, b'a');
        assert_eq!(parse(&ok).unwrap_err(), ParseError::TooLong);
        assert_eq!(
            BearerToken::parse_with_max_len(&ok, usize::MAX)
                .unwrap()
                .len(),
            64 * 1024 - 7
        );
    }

    fn bearer_of(len: usize) -> Vec<u8> {
        let mut v = b"Bearer ".to_vec();
        v.resize(7 + len, b'a');
        v
    }

    #[test]
    fn accepts_token_exactly_at_the_default_bound() {
        assert_eq!(DEFAULT_MAX_TOKEN_LEN, 1024);
        let t = parse(&bearer_of(DEFAULT_MAX_TOKEN_LEN)).unwrap();
        assert_eq!(t.len(), DEFAULT_MAX_TOKEN_LEN);
        let from_headers = BearerToken::from_headers(&headers(&[&bearer_of(1024)])).unwrap();
        assert_eq!(from_headers.len(), 1024);
        let bare = "a".repeat(DEFAULT_MAX_TOKEN_LEN);
        assert_eq!(BearerToken::from_token(&bare).unwrap().len(), 1024);
    }

    #[test]
    fn refuses_token_one_past_the_default_bound() {
        let value = bearer_of(DEFAULT_MAX_TOKEN_LEN + 1);
        assert_eq!(parse(&value).unwrap_err(), ParseError::TooLong);
        assert_eq!(
            BearerToken::from_headers(&headers(&[&value])).unwrap_err(),
            ParseError::TooLong
        );
        assert_eq!(
            BearerToken::from_header_values([&value[..]]).unwrap_err(),
            ParseError::TooLong
        );
        let bare = "a".repeat(DEFAULT_MAX_TOKEN_LEN + 1);
        assert_eq!(
            BearerToken::from_token(&bare).unwrap_err(),
            ParseError::TooLong
        );
    }

    #[test]
    fn a_custom_bound_accepts_its_length_and_refuses_one_more() {
        for max in [1, 16, 40, 2048] {
            let at = bearer_of(max);
            let past = bearer_of(max + 1);
            assert_eq!(
                BearerToken::parse_with_max_len(&at, max).unwrap().len(),
                max
            );
            assert_eq!(
                BearerToken::parse_with_max_len(&past, max).unwrap_err(),
                ParseError::TooLong
            );
            assert_eq!(
                BearerToken::from_header_values_with_max_len([&at[..]], max)
                    .unwrap()
                    .len(),
                max
            );
            assert_eq!(
                BearerToken::from_header_values_with_max_len([&past[..]], max).unwrap_err(),
                ParseError::TooLong
            );
            let bare = "a".repeat(max);
            assert_eq!(
                BearerToken::from_token_with_max_len(&bare, max)
                    .unwrap()
                    .len(),
                max
            );
            assert_eq!(
                BearerToken::from_token_with_max_len(&format!("{bare}a"), max).unwrap_err(),
                ParseError::TooLong
            );
        }
    }

    #[test]
    fn length_is_refused_before_the_characters_are_checked() {
        // Past the bound, a token of forbidden bytes is too long, not malformed: its
        // bytes were not looked at.
        let mut v = b"Bearer ".to_vec();
        v.extend_from_slice(&[b'\x00'; 17]);
        assert_eq!(
            BearerToken::parse_with_max_len(&v, 16).unwrap_err(),
            ParseError::TooLong
        );
        assert_eq!(
            BearerToken::parse_with_max_len(&v, 17).unwrap_err(),
            ParseError::Malformed
        );
    }

    #[test]
    fn two_headers_are_malformed_whatever_the_bound() {
        let short = bearer_of(4);
        assert_eq!(
            BearerToken::from_header_values_with_max_len([&short[..], &short[..]], 1).unwrap_err(),
            ParseError::Malformed
        );
    }

    #[test]
    fn framing_within_64_bytes_is_read_and_past_it_refused() {
        let max = 32;
        let token = "a".repeat(max);
        // 1 + 6 + 56 + 32 + 1 = max + 64 bytes: every byte is read, the token is accepted.
        let framed = format!("\tBearer{}{token} ", " ".repeat(56));
        assert_eq!(framed.len(), max + 64);
        assert_eq!(
            BearerToken::parse_with_max_len(framed.as_bytes(), max)
                .unwrap()
                .as_str(),
            token
        );
        // One more space: the value is refused for its length alone.
        let longer = format!("\tBearer{}{token} ", " ".repeat(57));
        assert_eq!(
            BearerToken::parse_with_max_len(longer.as_bytes(), max).unwrap_err(),
            ParseError::TooLong
        );
    }

    #[test]
    fn a_long_value_of_another_scheme_stays_missing() {
        let long = "x".repeat(400 * 1024);
        for value in [
            format!("Basic {long}"),
            format!("  Negotiate {long}"),
            format!("BearerX {long}"),
            format!("Bear{long}"),
            // Six letters and a space, as `Bearer `: the scheme's name decides.
            format!("Digest {long}"),
            format!("Bearex\t{long}"),
            long.clone(),
        ] {
            assert_eq!(
                parse(value.as_bytes()).unwrap_err(),
                ParseError::Missing,
                "{}",
                &value[..12]
            );
        }
        for value in [
            format!("Bearer {long}"),
            format!("  bearer {long}"),
            format!("BEARER\t{long}"),
            format!("{}Bearer {long}", " ".repeat(64)),
            format!("Bearer{}", " ".repeat(4096)),
            " ".repeat(4096),
        ] {
            assert_eq!(
                parse(value.as_bytes()).unwrap_err(),
                ParseError::TooLong,
                "{}",
                &value[..12]
            );
        }
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        assert_eq!(
            ParseError::Missing.to_string(),
            "no bearer credentials in the request"
        );
        assert_eq!(
            ParseError::Malformed.to_string(),
            "malformed bearer credentials"
        );
        assert_eq!(
            ParseError::TooLong.to_string(),
            "bearer token longer than the accepted bound"
        );
    }

    #[test]
    fn a_parsed_token_is_never_empty() {
        let t = BearerToken::from_token("a").unwrap();
        assert!(!t.is_empty());
        assert_eq!(t.len(), 1);
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

    /// [`reference`] with a bound, written from the module docs: a Bearer value longer
    /// than the bound plus 64 bytes is too long (or missing, for another scheme); else a
    /// token longer than the bound is too long before its characters are looked at.
    fn reference_bounded(value: &[u8], max: usize) -> Result<String, ParseError> {
        let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
        if value.len() > max + 64 {
            let lead = value.iter().take_while(|b| is_ows(b)).count();
            if lead >= 64 {
                return Err(ParseError::TooLong);
            }
            let rest = &value[lead..];
            let bearer = rest.len() >= 6
                && rest[..6].eq_ignore_ascii_case(b"bearer")
                && rest.get(6).is_none_or(is_ows);
            return Err(if bearer {
                ParseError::TooLong
            } else {
                ParseError::Missing
            });
        }
        let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
        let end = value
            .iter()
            .rposition(|b| !is_ows(b))
            .map_or(start, |i| i + 1);
        let trimmed = &value[start..end.max(start)];
        if trimmed.len() > 7 && trimmed[..6].eq_ignore_ascii_case(b"bearer") && trimmed[6] == b' ' {
            let token_len = trimmed[7..].iter().skip_while(|b| **b == b' ').count();
            if token_len > max {
                return Err(ParseError::TooLong);
            }
        }
        reference(value)
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
        fn bounded_parse_matches_reference(value in header_like(), max in 0_usize..30) {
            prop_assert_eq!(
                BearerToken::parse_with_max_len(&value, max).map(|t| t.as_str().to_owned()),
                reference_bounded(&value, max)
            );
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
