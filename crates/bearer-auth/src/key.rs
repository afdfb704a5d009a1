//! Laravel Sanctum compatible API keys: issuing, hashing, splitting.
//!
//! An issued key reads `{id}|{prefix}{entropy}{checksum}`: the key's numeric id, a `|`,
//! an optional configured prefix, 40 random characters from `[A-Za-z0-9]` drawn from the
//! operating system's CSPRNG, and the CRC-32 (`crc32b`) of those 40 characters as 8
//! lower-case hex digits. Only the SHA-256 of the part after the first `|` is stored, as
//! 64 lower-case hex digits, so a Sanctum application and this library can share one
//! `personal_access_tokens` table.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::{InvalidReason, Rejection};

/// How many random characters a key holds.
pub const ENTROPY_LEN: usize = 40;
/// How many hex digits the checksum takes.
pub const CHECKSUM_LEN: usize = 8;

const ALPHANUMERIC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The SHA-256 digest of a token's secret: what stores keep instead of the token.
///
/// Equality is constant time ([`subtle::ConstantTimeEq`]). `Debug` does not print the
/// digest.
///
/// ```
/// use bearer_auth::TokenHash;
///
/// let hash = TokenHash::of("s3cr3t");
/// assert_eq!(
///     hash.to_hex(),
///     "4e738ca5563c06cfd0018299933d58db1dd8bf97f6973dc99bf6cdc64b5550bd"
/// );
/// assert_eq!(TokenHash::from_hex(&hash.to_hex()), Some(hash));
/// ```
#[derive(Clone, Copy)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The digest of `secret` (the part after the first `|`, or the whole token).
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Wraps a digest.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest's bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lower-case hex digits, as Sanctum stores it.
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for b in self.0 {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        out
    }

    /// Reads 64 hex digits (either case). `None` for anything else.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0_u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Self(out))
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl ConstantTimeEq for TokenHash {
    /// Compares the digests as four 64-bit words, each in constant time: the same
    /// guarantee as a byte-by-byte comparison, with an eighth of its steps (4 instead
    /// of 32).
    fn ct_eq(&self, other: &Self) -> Choice {
        words::<4>(&self.0).ct_eq(&words::<4>(&other.0))
    }
}

/// The bytes as native-endian 64-bit words.
pub(crate) fn words<const N: usize>(bytes: &[u8]) -> [u64; N] {
    let mut out = [0_u64; N];
    for (word, chunk) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0_u8; 8];
        b.copy_from_slice(chunk);
        *word = u64::from_ne_bytes(b);
    }
    out
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for TokenHash {}

// Consistent with the constant-time `PartialEq`: equal digests have equal bytes.
impl std::hash::Hash for TokenHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(******)")
    }
}

/// A presented token split by Sanctum's rules.
#[derive(Clone, Copy)]
pub struct TokenParts<'a> {
    id: Option<u64>,
    secret: &'a str,
}

impl<'a> TokenParts<'a> {
    /// Splits `token` at its first `|`.
    ///
    /// With a `|`, the part before it must be one or more ASCII digits that fit a `u64`
    /// and the part after it must not be empty; otherwise the token is refused as
    /// malformed, before any store is asked. Without a `|`, the whole token is the secret
    /// and the key is looked up by its digest.
    ///
    /// ```
    /// use bearer_auth::TokenParts;
    ///
    /// let parts = TokenParts::split("42|abc").unwrap();
    /// assert_eq!(parts.id(), Some(42));
    /// assert_eq!(parts.secret(), "abc");
    /// assert_eq!(TokenParts::split("abc").unwrap().id(), None);
    /// assert!(TokenParts::split("x1|abc").is_err());
    /// ```
    pub fn split(token: &'a str) -> Result<Self, Rejection> {
        let malformed = || Rejection::InvalidToken(InvalidReason::Malformed);
        match token.split_once('|') {
            None if token.is_empty() => Err(malformed()),
            None => Ok(Self {
                id: None,
                secret: token,
            }),
            Some((id, secret)) => {
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || secret.is_empty() {
                    return Err(malformed());
                }
                let id = id.parse::<u64>().map_err(|_| malformed())?;
                Ok(Self {
                    id: Some(id),
                    secret,
                })
            }
        }
    }

    /// The key's id, when the token carried one.
    pub fn id(&self) -> Option<u64> {
        self.id
    }

    /// The secret: what is hashed and compared.
    pub fn secret(&self) -> &'a str {
        self.secret
    }

    /// The digest of the secret.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.secret)
    }
}

impl fmt::Debug for TokenParts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenParts")
            .field("id", &self.id)
            .field("secret", &"******")
            .finish()
    }
}

/// A key's plain text token, `{id}|{secret}`. Handed out once, at creation or
/// regeneration; only its digest is kept.
///
/// `Debug` is redacted, there is no `Display`, and the memory is zeroed on drop. Use
/// [`as_str`](Self::as_str) to show it to its owner.
pub struct PlainTextToken {
    token: Zeroizing<String>,
    secret_start: usize,
}

impl PlainTextToken {
    /// The whole token, `{id}|{secret}`.
    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// The part after the first `|`, whose digest is stored.
    pub fn secret(&self) -> &str {
        self.token.get(self.secret_start..).unwrap_or_default()
    }

    /// The digest of the secret, as stored.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.secret())
    }
}

impl fmt::Debug for PlainTextToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainTextToken(******)")
    }
}

impl ZeroizeOnDrop for PlainTextToken {}

/// A key's secret before the key has an id: `{prefix}{40 random}{crc32b}`.
///
/// A database gives a key its id when the row is inserted, after the secret and its
/// digest exist: draw the secret with [`KeyGenerator::generate_secret`], store its
/// [`hash`](Self::hash), then make the token with [`into_token`](Self::into_token) once
/// the id is known.
///
/// `Debug` is redacted, there is no `Display`, and the memory is zeroed on drop.
///
/// ```
/// use bearer_auth::KeyGenerator;
///
/// let secret = KeyGenerator::new().generate_secret().unwrap();
/// let digest = secret.hash(); // what the store keeps
/// let id = 42; // given by the store
/// let token = secret.into_token(id);
/// assert!(token.as_str().starts_with("42|"));
/// assert_eq!(token.hash(), digest);
/// ```
pub struct TokenSecret {
    secret: Zeroizing<String>,
}

impl TokenSecret {
    /// A secret of the caller's choosing, for the crate's tests.
    #[cfg(test)]
    pub(crate) fn for_test(secret: &str) -> Self {
        Self {
            secret: Zeroizing::new(secret.to_owned()),
        }
    }

    /// The secret: the part of the token after `|`.
    pub fn as_str(&self) -> &str {
        &self.secret
    }

    /// Its digest, as stored.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.secret)
    }

    /// The plain text token of the key `id`: `{id}|{secret}`. The secret is written
    /// once, into the token's own zeroized buffer; this value is zeroed as it is dropped.
    pub fn into_token(self, id: u64) -> PlainTextToken {
        let id = id.to_string();
        let mut token = Zeroizing::new(String::with_capacity(id.len() + 1 + self.secret.len()));
        token.push_str(&id);
        token.push('|');
        let secret_start = token.len();
        token.push_str(&self.secret);
        PlainTextToken {
            token,
            secret_start,
        }
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(******)")
    }
}

impl ZeroizeOnDrop for TokenSecret {}

/// Issues Sanctum-format keys.
///
/// ```
/// use bearer_auth::KeyGenerator;
///
/// let generator = KeyGenerator::with_prefix("ph_").unwrap();
/// let token = generator.generate(7).unwrap();
/// let (id, secret) = token.as_str().split_once('|').unwrap();
/// assert_eq!(id, "7");
/// assert_eq!(secret.len(), 3 + 40 + 8);
/// assert!(generator.checksum_matches(secret));
/// ```
#[derive(Debug, Clone, Default)]
pub struct KeyGenerator {
    prefix: Box<str>,
}

impl KeyGenerator {
    /// Keys without a prefix (Sanctum's default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys whose secret starts with `prefix` (Sanctum's `token_prefix`, e.g. for secret
    /// scanners). The prefix may hold `A-Z a-z 0-9 - . _ ~ + /`.
    pub fn with_prefix(prefix: &str) -> Result<Self, KeyError> {
        let ok = prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
        if !ok {
            return Err(KeyError::InvalidPrefix);
        }
        Ok(Self {
            prefix: prefix.into(),
        })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A new secret, `{prefix}{40 random}{crc32b}`, for a key whose id is not known yet
    /// (see [`TokenSecret`]).
    pub fn generate_secret(&self) -> Result<TokenSecret, KeyError> {
        let mut entropy = Zeroizing::new([0_u8; ENTROPY_LEN]);
        random_alphanumeric(&mut entropy[..])?;
        let checksum = crc32fast::hash(&entropy[..]);
        let mut secret = Zeroizing::new(String::with_capacity(
            self.prefix.len() + ENTROPY_LEN + CHECKSUM_LEN,
        ));
        secret.push_str(&self.prefix);
        secret.extend(entropy.iter().map(|&b| char::from(b)));
        // Written into the zeroized secret itself: no other copy of the checksum text.
        secret.extend(hex8(checksum).iter().map(|&b| char::from(b)));
        Ok(TokenSecret { secret })
    }

    /// A new plain text token for the key `id`: [`generate_secret`](Self::generate_secret)
    /// then [`TokenSecret::into_token`].
    pub fn generate(&self, id: u64) -> Result<PlainTextToken, KeyError> {
        Ok(self.generate_secret()?.into_token(id))
    }

    /// Whether `secret` (the part after `|`) is this generator's prefix, 40 alphanumeric
    /// characters and their correct CRC-32. Usable as an early reject before a store is
    /// asked; never required, since older Sanctum tokens have no checksum.
    pub fn checksum_matches(&self, secret: &str) -> bool {
        let Some(rest) = secret.strip_prefix(&*self.prefix) else {
            return false;
        };
        if rest.len() != ENTROPY_LEN + CHECKSUM_LEN {
            return false;
        }
        let (entropy, checksum) = rest.as_bytes().split_at(ENTROPY_LEN);
        let expected = Zeroizing::new(hex8(crc32fast::hash(entropy)));
        bool::from(expected[..].ct_eq(checksum))
    }
}

/// Fills `out` with characters drawn uniformly from `[A-Za-z0-9]` (rejection sampling
/// over bytes from the OS CSPRNG).
fn random_alphanumeric(out: &mut [u8]) -> Result<(), KeyError> {
    fill_alphanumeric(out, |buf| getrandom::fill(buf).map_err(KeyError::Entropy))
}

/// [`random_alphanumeric`] over the byte source `draw`. A draw of 64 bytes keeps 62 of
/// them on average and none with a probability of (8/256)^64: a source still short after
/// `out.len() + 8` draws is broken, and gets [`KeyError::Exhausted`] rather than a loop
/// without end.
fn fill_alphanumeric(
    out: &mut [u8],
    mut draw: impl FnMut(&mut [u8]) -> Result<(), KeyError>,
) -> Result<(), KeyError> {
    let mut buf = Zeroizing::new([0_u8; 64]);
    let mut filled = 0;
    for _ in 0..out.len() + 8 {
        if filled == out.len() {
            return Ok(());
        }
        draw(&mut buf[..])?;
        for c in buf.iter().filter_map(|&b| alphanumeric(b)) {
            if filled == out.len() {
                break;
            }
            out[filled] = c;
            filled += 1;
        }
    }
    if filled == out.len() {
        Ok(())
    } else {
        Err(KeyError::Exhausted)
    }
}

/// The character a random byte draws, or `None` for a byte that is rejected.
fn alphanumeric(b: u8) -> Option<u8> {
    // 248 = 4 * 62: bytes at or above it would bias the draw.
    const LIMIT: u8 = 248;
    (b < LIMIT).then(|| ALPHANUMERIC[usize::from(b % 62)])
}

/// `value` as 8 lower-case hex digits, on the stack (Sanctum's `%08x` of the CRC-32).
fn hex8(value: u32) -> [u8; CHECKSUM_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0_u8; CHECKSUM_LEN];
    for (i, digit) in out.iter_mut().enumerate() {
        let shift = 4 * (CHECKSUM_LEN - 1 - i);
        *digit = HEX[((value >> shift) & 0xf) as usize];
    }
    out
}

/// Why a key could not be issued.
#[non_exhaustive]
#[derive(Debug)]
pub enum KeyError {
    /// The operating system's random number generator failed.
    Entropy(getrandom::Error),
    /// The prefix holds characters a Bearer token cannot carry.
    InvalidPrefix,
    /// The random number generator kept giving output that could not be used (bytes the
    /// uniform draw rejects, or secrets whose digest another key already has), far past
    /// any chance: it is broken. Issuing gives up rather than drawing for ever.
    Exhausted,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Entropy(e) => write!(f, "the OS random number generator failed: {e}"),
            Self::InvalidPrefix => {
                f.write_str("a key prefix may hold only A-Z a-z 0-9 - . _ ~ + /")
            }
            Self::Exhausted => {
                f.write_str("the random number generator keeps giving unusable output")
            }
        }
    }
}

impl std::error::Error for KeyError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_that_keeps_giving_rejected_bytes_is_exhausted_not_looped_on() {
        let mut draws = 0;
        let mut out = [0_u8; 40];
        let result = fill_alphanumeric(&mut out, |buf| {
            draws += 1;
            buf.fill(0xff); // 255 >= 248: every byte rejected
            Ok(())
        });
        assert!(matches!(result, Err(KeyError::Exhausted)), "{result:?}");
        assert_eq!(draws, 48);
    }

    #[test]
    fn a_slow_but_working_source_fills_the_whole_secret() {
        // One usable byte per draw: 40 draws for 40 characters, within the bound of 48.
        let mut draws = 0_u8;
        let mut out = [0_u8; 40];
        fill_alphanumeric(&mut out, |buf| {
            buf.fill(0xff);
            buf[0] = draws; // byte n draws ALPHANUMERIC[n]
            draws += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(draws, 40);
        assert_eq!(&out[..], &ALPHANUMERIC[..40]);
    }

    #[test]
    fn a_failing_source_fails_the_draw() {
        let mut out = [0_u8; 40];
        let result = fill_alphanumeric(&mut out, |_| Err(KeyError::InvalidPrefix));
        assert!(matches!(result, Err(KeyError::InvalidPrefix)), "{result:?}");
        let mut empty = [0_u8; 0];
        assert!(fill_alphanumeric(&mut empty, |_| Err(KeyError::InvalidPrefix)).is_ok());
    }

    #[test]
    fn hex8_is_sanctums_lower_case_percent_08x() {
        for value in [0, 1, 0xc6c7_3a82, 0x0000_abcd, u32::MAX, 0x8000_0000] {
            assert_eq!(hex8(value), *format!("{value:08x}").as_bytes());
        }
    }

    // Digests and checksums below were computed outside Rust:
    //   printf %s SECRET | sha256sum
    //   python3 -c 'import zlib; print(format(zlib.crc32(b"..."), "08x"))'

    #[test]
    fn sha256_matches_sha256sum() {
        // printf %s 's3cr3t' | sha256sum
        assert_eq!(
            TokenHash::of("s3cr3t").to_hex(),
            "4e738ca5563c06cfd0018299933d58db1dd8bf97f6973dc99bf6cdc64b5550bd"
        );
        // printf %s '' | sha256sum
        assert_eq!(
            TokenHash::of("").to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn sanctum_token_hashes_the_part_after_the_pipe() {
        let secret = "ph_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789ABCDc6c73a82";
        // printf %s 'ph_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789ABCDc6c73a82' | sha256sum
        let expected = "7e5a7c7a48234da78fac7fedc9fc4b9abd70d2d8cb4113eace478bfebeb690a7";
        let parts =
            TokenParts::split("17|ph_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789ABCDc6c73a82").unwrap();
        assert_eq!(parts.id(), Some(17));
        assert_eq!(parts.secret(), secret);
        assert_eq!(parts.hash().to_hex(), expected);
    }

    #[test]
    fn crc32b_matches_zlib() {
        // python3 -c 'import zlib; print(format(zlib.crc32(b"aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789ABCD"), "08x"))'
        let entropy = "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789ABCD";
        assert_eq!(
            format!("{:08x}", crc32fast::hash(entropy.as_bytes())),
            "c6c73a82"
        );
        let generator = KeyGenerator::with_prefix("ph_").unwrap();
        assert!(generator.checksum_matches(&format!("ph_{entropy}c6c73a82")));
        assert!(!generator.checksum_matches(&format!("ph_{entropy}00000000")));
        assert!(!generator.checksum_matches(&format!("{entropy}c6c73a82")));
        assert!(!KeyGenerator::new().checksum_matches("short"));
    }

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        let h = TokenHash::of("x");
        assert_eq!(TokenHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(TokenHash::from_hex(&h.to_hex().to_uppercase()), Some(h));
        assert_eq!(TokenHash::from_hex("zz"), None);
        assert_eq!(TokenHash::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn hashing_a_digest_hashes_its_bytes() {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hasher = BuildHasherDefault::<DefaultHasher>::default();
        let digest = TokenHash::of("a");
        assert_eq!(hasher.hash_one(digest), hasher.hash_one(*digest.as_bytes()));
        assert_ne!(hasher.hash_one(digest), hasher.hash_one(TokenHash::of("b")));
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(TokenHash::of("a"), TokenHash::of("a"));
        assert_ne!(TokenHash::of("a"), TokenHash::of("b"));
        assert!(bool::from(TokenHash::of("a").ct_eq(&TokenHash::of("a"))));
    }

    #[test]
    fn debug_hides_digest_and_secrets() {
        assert_eq!(format!("{:?}", TokenHash::of("a")), "TokenHash(******)");
        let t = KeyGenerator::new().generate(1).unwrap();
        assert_eq!(format!("{t:?}"), "PlainTextToken(******)");
        let p = TokenParts::split("3|secret").unwrap();
        assert_eq!(
            format!("{p:?}"),
            r#"TokenParts { id: Some(3), secret: "******" }"#
        );
    }

    #[test]
    fn generated_tokens_have_sanctum_shape() {
        let generator = KeyGenerator::new();
        let token = generator.generate(123).unwrap();
        let (id, secret) = token.as_str().split_once('|').unwrap();
        assert_eq!(id, "123");
        assert_eq!(secret, token.secret());
        assert_eq!(secret.len(), 48);
        assert!(secret[..40].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(
            secret[40..]
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        );
        assert!(generator.checksum_matches(secret));
        assert_eq!(token.hash(), TokenHash::of(secret));
        // A generated token parses as a Bearer token.
        assert!(crate::BearerToken::from_token(token.as_str()).is_ok());
    }

    #[test]
    fn secret_is_made_before_the_id_and_keeps_its_digest() {
        let generator = KeyGenerator::with_prefix("ph_").unwrap();
        let secret = generator.generate_secret().unwrap();
        assert_eq!(secret.as_str().len(), 3 + 48);
        assert!(generator.checksum_matches(secret.as_str()));
        assert_eq!(format!("{secret:?}"), "TokenSecret(******)");
        let copy = secret.as_str().to_owned();
        let digest = secret.hash();
        let token = secret.into_token(18_446_744_073_709_551_615);
        assert_eq!(
            token.as_str(),
            format!("18446744073709551615|{copy}").as_str()
        );
        assert_eq!(token.secret(), copy);
        assert_eq!(token.hash(), digest);
        // No reallocation: the buffer was sized for the whole token at once.
        assert_eq!(token.token.capacity(), token.as_str().len());
    }

    #[test]
    fn generated_tokens_differ() {
        let g = KeyGenerator::new();
        let a = g.generate(1).unwrap();
        let b = g.generate(1).unwrap();
        assert_ne!(a.as_str(), b.as_str());
    }

    #[test]
    fn random_bytes_map_uniformly_and_the_biased_ones_are_rejected() {
        assert_eq!(alphanumeric(0), Some(b'A'));
        assert_eq!(alphanumeric(25), Some(b'Z'));
        assert_eq!(alphanumeric(26), Some(b'a'));
        assert_eq!(alphanumeric(61), Some(b'9'));
        assert_eq!(alphanumeric(62), Some(b'A'));
        // 247 = 3 * 62 + 61: the last byte kept.
        assert_eq!(alphanumeric(247), Some(b'9'));
        // From 248 = 4 * 62 on, a byte would make A-Z, a-d more likely: rejected.
        for b in 248..=255 {
            assert_eq!(alphanumeric(b), None);
        }
        // Each character is drawn by exactly four of the bytes kept.
        let mut hits = [0_u8; 256];
        for b in 0..=255 {
            if let Some(c) = alphanumeric(b) {
                hits[usize::from(c)] += 1;
            }
        }
        assert!(ALPHANUMERIC.iter().all(|&c| hits[usize::from(c)] == 4));
    }

    #[test]
    fn entropy_uses_the_whole_alphabet() {
        let mut seen = [false; 256];
        let g = KeyGenerator::new();
        for _ in 0..200 {
            for b in g.generate(1).unwrap().secret()[..40].bytes() {
                seen[usize::from(b)] = true;
            }
        }
        assert!(ALPHANUMERIC.iter().all(|&c| seen[usize::from(c)]));
    }

    #[test]
    fn key_errors_say_what_failed() {
        assert_eq!(
            KeyError::InvalidPrefix.to_string(),
            "a key prefix may hold only A-Z a-z 0-9 - . _ ~ + /"
        );
        let entropy = KeyError::Entropy(getrandom::Error::UNSUPPORTED);
        assert_eq!(
            entropy.to_string(),
            format!(
                "the OS random number generator failed: {}",
                getrandom::Error::UNSUPPORTED
            )
        );
    }

    #[test]
    fn prefix_is_validated() {
        assert!(matches!(
            KeyGenerator::with_prefix("a|b"),
            Err(KeyError::InvalidPrefix)
        ));
        assert!(matches!(
            KeyGenerator::with_prefix("a b"),
            Err(KeyError::InvalidPrefix)
        ));
        assert_eq!(KeyGenerator::with_prefix("ph_").unwrap().prefix(), "ph_");
    }

    #[test]
    fn split_follows_sanctum_rules() {
        let bad = |t: &str| {
            matches!(
                TokenParts::split(t),
                Err(Rejection::InvalidToken(InvalidReason::Malformed))
            )
        };
        assert!(bad("|abc"));
        assert!(bad("12|"));
        assert!(bad("1a|abc"));
        assert!(bad("-1|abc"));
        assert!(bad("+1|abc"));
        assert!(bad("99999999999999999999|abc")); // does not fit a u64
        assert!(bad(""));
        let p = TokenParts::split("007|a|b").unwrap();
        assert_eq!((p.id(), p.secret()), (Some(7), "a|b"));
        let p = TokenParts::split("plain").unwrap();
        assert_eq!((p.id(), p.secret()), (None, "plain"));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn reference(token: &str) -> Option<(Option<u64>, &str)> {
            match token.find('|') {
                None => (!token.is_empty()).then_some((None, token)),
                Some(i) => {
                    let (id, secret) = (&token[..i], &token[i + 1..]);
                    if id.is_empty() || secret.is_empty() || !id.chars().all(|c| c.is_ascii_digit())
                    {
                        return None;
                    }
                    id.parse().ok().map(|id| (Some(id), secret))
                }
            }
        }

        proptest! {
            #[test]
            fn split_matches_reference(token in "[0-9a|]{0,12}|\\PC{0,16}") {
                let ours = TokenParts::split(&token).ok().map(|p| (p.id(), p.secret()));
                prop_assert_eq!(ours, reference(&token));
            }

            /// The word-wise constant-time comparison against `==` on the bytes, with
            /// digests that differ in one byte as often as not.
            #[test]
            fn ct_eq_matches_byte_equality(
                a in any::<[u8; 32]>(),
                flip in any::<Option<(usize, u8)>>(),
            ) {
                let mut b = a;
                if let Some((at, bits)) = flip {
                    b[at % 32] ^= bits;
                }
                let ours = bool::from(TokenHash::from_bytes(a).ct_eq(&TokenHash::from_bytes(b)));
                prop_assert_eq!(ours, a == b);
            }
        }
    }
}
