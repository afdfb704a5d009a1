//! Encryption at rest in Laravel's encrypter format, so that a Laravel app holding the
//! same `APP_KEY` reads what this service writes, and the other way round.
//!
//! Laravel's `Crypt::encrypt` (`AES-256-CBC`, its default cipher):
//!
//! 1. `value = base64(AES-256-CBC(key, iv, PKCS#7(plaintext)))`, with a random 16-byte
//!    `iv`; the plaintext is PHP's `serialize($value)` for `encrypt()`, the bare string for
//!    `encryptString()`;
//! 2. `mac = hex(HMAC-SHA256(key, base64(iv) . value))`;
//! 3. the payload is `base64(json_encode(["iv", "value", "mac", "tag" => ""]))`, with
//!    unescaped slashes.
//!
//! Decryption checks the MAC in constant time before it decrypts. Fortify stores
//! `two_factor_secret` and `two_factor_recovery_codes` with `encrypt()`, so their
//! plaintext is a serialized PHP string (`s:16:"…";`): [`Encrypter::decrypt`] unwraps it,
//! and also accepts a value written with `encryptString()` (Laravel's `encrypted` cast).

use std::{fmt, path::Path};

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;
type HmacSha256 = Hmac<Sha256>;

/// Laravel's `APP_KEY` prefix for a base64-encoded key.
const BASE64_PREFIX: &str = "base64:";

/// Encrypts and decrypts values as Laravel's encrypter does, with one `APP_KEY`.
///
/// Its `Debug` does not show the key.
#[derive(Clone)]
pub struct Encrypter {
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Encrypter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Encrypter { key: ****** }")
    }
}

/// Why an `APP_KEY` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidAppKey;

impl fmt::Display for InvalidAppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "APP_KEY must be 32 bytes for AES-256-CBC: `base64:` and 32 bytes in base64 \
             (as `php artisan key:generate` writes it), or 32 characters",
        )
    }
}

impl std::error::Error for InvalidAppKey {}

/// Why a payload does not decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecryptError {
    /// Not a payload of Laravel's encrypter: not base64, not JSON, or fields missing.
    Payload,
    /// The MAC does not match: another key, or the payload was changed.
    Mac,
    /// The MAC matched but the ciphertext or its padding is wrong.
    Cipher,
}

impl fmt::Display for DecryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Payload => "the payload is invalid",
            Self::Mac => "the MAC is invalid",
            Self::Cipher => "the data could not be decrypted",
        })
    }
}

impl std::error::Error for DecryptError {}

/// Laravel's payload, in its field order.
#[derive(Serialize, Deserialize)]
struct Payload {
    iv: String,
    value: String,
    mac: String,
    #[serde(default)]
    tag: Option<String>,
}

impl Encrypter {
    /// An encrypter with this raw 32-byte key.
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key: Zeroizing::new(key),
        }
    }

    /// An encrypter with a key in `APP_KEY`'s form: `base64:` followed by 32 bytes in
    /// base64, or 32 characters used as they are (both of which Laravel accepts).
    pub fn from_app_key(app_key: &str) -> Result<Self, InvalidAppKey> {
        let app_key = app_key.trim();
        let bytes = match app_key.strip_prefix(BASE64_PREFIX) {
            Some(encoded) => Zeroizing::new(B64.decode(encoded).map_err(|_| InvalidAppKey)?),
            None => Zeroizing::new(app_key.as_bytes().to_vec()),
        };
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| InvalidAppKey)?;
        Ok(Self::new(key))
    }

    /// A new random key, and its `APP_KEY` form (`base64:…`), which is a secret.
    pub fn generate() -> Result<(Self, Zeroizing<String>), getrandom::Error> {
        let mut key = Zeroizing::new([0_u8; 32]);
        getrandom::fill(key.as_mut())?;
        let app_key = Zeroizing::new(format!("{BASE64_PREFIX}{}", B64.encode(key.as_ref())));
        Ok((Self::new(*key), app_key))
    }

    /// The key from `APP_KEY` when it is set, else from the file `path`, else a new key
    /// written to `path` with owner-only permissions. The key is never printed or
    /// logged; the caller may log the path.
    pub fn load_or_create(app_key: Option<&str>, path: &Path) -> Result<Self, KeyFileError> {
        if let Some(app_key) = app_key {
            return Ok(Self::from_app_key(app_key)?);
        }
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::from_app_key(&Zeroizing::new(text))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (encrypter, app_key) = Self::generate().map_err(KeyFileError::Random)?;
                write_owner_only(path, format!("{}\n", app_key.as_str()).as_bytes())?;
                Ok(encrypter)
            }
            Err(e) => Err(KeyFileError::Io(e)),
        }
    }

    /// Laravel's `encrypt($value)` of a string: PHP-serialized, then encrypted.
    pub fn encrypt(&self, value: &str) -> Result<String, getrandom::Error> {
        let serialized = Zeroizing::new(php_serialize_string(value));
        self.encrypt_string(serialized.as_bytes())
    }

    /// Laravel's `encryptString($value)`: encrypted as it is.
    pub fn encrypt_string(&self, plaintext: &[u8]) -> Result<String, getrandom::Error> {
        let mut iv = [0_u8; 16];
        getrandom::fill(&mut iv)?;
        Ok(self.encrypt_with_iv(plaintext, iv))
    }

    fn encrypt_with_iv(&self, plaintext: &[u8], iv: [u8; 16]) -> String {
        let ciphertext = Aes256CbcEnc::new(self.key.as_ref().into(), &iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
        let iv = B64.encode(iv);
        let value = B64.encode(ciphertext);
        let mac = hex(&self.mac(&iv, &value).finalize().into_bytes());
        let payload = Payload {
            iv,
            value,
            mac,
            tag: Some(String::new()),
        };
        // serde_json escapes no slash: `JSON_UNESCAPED_SLASHES`, as Laravel writes it.
        let json = serde_json::to_vec(&payload).unwrap_or_default();
        B64.encode(json)
    }

    /// Laravel's `decrypt($payload)` of a string: decrypted, then unserialized when it is
    /// a serialized PHP string (Laravel's `encrypt()`); a value written with
    /// `encryptString()` comes back as it is.
    pub fn decrypt(&self, payload: &str) -> Result<Zeroizing<String>, DecryptError> {
        let plaintext = self.decrypt_string(payload)?;
        let text = std::str::from_utf8(&plaintext).map_err(|_| DecryptError::Cipher)?;
        Ok(Zeroizing::new(
            php_unserialize_string(text).unwrap_or(text).to_owned(),
        ))
    }

    /// Laravel's `decryptString($payload)`: the plaintext bytes, as they were encrypted.
    pub fn decrypt_string(&self, payload: &str) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        let json = B64
            .decode(payload.trim())
            .map_err(|_| DecryptError::Payload)?;
        let payload: Payload = serde_json::from_slice(&json).map_err(|_| DecryptError::Payload)?;
        let iv: [u8; 16] = B64
            .decode(&payload.iv)
            .ok()
            .and_then(|iv| iv.try_into().ok())
            .ok_or(DecryptError::Payload)?;
        // AES-256-CBC has no tag: Laravel refuses a payload that carries one.
        if payload.tag.as_deref().is_some_and(|tag| !tag.is_empty()) {
            return Err(DecryptError::Payload);
        }
        let mac = unhex(&payload.mac).ok_or(DecryptError::Mac)?;
        self.mac(&payload.iv, &payload.value)
            .verify_slice(&mac)
            .map_err(|_| DecryptError::Mac)?;
        let ciphertext = B64
            .decode(&payload.value)
            .map_err(|_| DecryptError::Cipher)?;
        Aes256CbcDec::new(self.key.as_ref().into(), &iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| DecryptError::Cipher)
    }

    fn mac(&self, iv: &str, value: &str) -> HmacSha256 {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.key.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(iv.as_bytes());
        mac.update(value.as_bytes());
        mac
    }
}

/// Why the key file could not give a key.
#[derive(Debug)]
pub enum KeyFileError {
    /// The key (from `APP_KEY` or the file) is not a valid key.
    Invalid(InvalidAppKey),
    /// The file could not be read or written.
    Io(std::io::Error),
    /// No randomness for a new key.
    Random(getrandom::Error),
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(e) => e.fmt(f),
            Self::Io(e) => write!(f, "the key file: {e}"),
            Self::Random(e) => write!(f, "no randomness for a new key: {e}"),
        }
    }
}

impl std::error::Error for KeyFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Invalid(e) => Some(e),
            Self::Io(e) => Some(e),
            Self::Random(e) => Some(e),
        }
    }
}

impl From<InvalidAppKey> for KeyFileError {
    fn from(e: InvalidAppKey) -> Self {
        Self::Invalid(e)
    }
}

/// Creates `path` with `bytes`, readable and writable by its owner only, failing if it
/// exists.
fn write_owner_only(path: &Path, bytes: &[u8]) -> Result<(), KeyFileError> {
    use std::io::Write as _;

    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(KeyFileError::Io)?;
    file.write_all(bytes).map_err(KeyFileError::Io)?;
    file.sync_all().map_err(KeyFileError::Io)
}

/// PHP's `serialize()` of a string: `s:<length in bytes>:"<bytes>";`.
fn php_serialize_string(value: &str) -> String {
    format!("s:{}:\"{value}\";", value.len())
}

/// The string inside PHP's `serialize()` of a string, if `text` is exactly that.
fn php_unserialize_string(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("s:")?;
    let (len, rest) = rest.split_once(':')?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: usize = len.parse().ok()?;
    let rest = rest.strip_prefix('"')?;
    let inner = rest.get(..len)?;
    (rest.get(len..)? == "\";").then_some(inner)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `APP_KEY` of the vectors below.
    const APP_KEY: &str = "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn encrypter() -> Encrypter {
        Encrypter::from_app_key(APP_KEY).unwrap()
    }

    #[test]
    fn app_key_forms() {
        assert!(Encrypter::from_app_key(APP_KEY).is_ok());
        assert!(Encrypter::from_app_key("0123456789abcdef0123456789abcdef").is_ok());
        assert_eq!(
            Encrypter::from_app_key("base64:AAEC").unwrap_err(),
            InvalidAppKey
        );
        assert_eq!(Encrypter::from_app_key("short").unwrap_err(), InvalidAppKey);
        assert_eq!(
            Encrypter::from_app_key("base64:not base64!").unwrap_err(),
            InvalidAppKey
        );
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", encrypter()), "Encrypter { key: ****** }");
    }

    #[test]
    fn payload_has_laravel_fields_in_order() {
        let payload = encrypter().encrypt_with_iv(b"hello", [7; 16]);
        let json = String::from_utf8(B64.decode(payload).unwrap()).unwrap();
        assert!(
            json.starts_with(r#"{"iv":"BwcHBwcHBwcHBwcHBwcHBw==","value":""#),
            "{json}"
        );
        assert!(json.ends_with(r#"","tag":""}"#), "{json}");
        assert!(json.contains(r#"","mac":""#));
    }

    #[test]
    fn round_trip_serialized_and_plain() {
        let e = encrypter();
        let secret = e.encrypt("JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(e.decrypt(&secret).unwrap().as_str(), "JBSWY3DPEHPK3PXP");
        let plain = e.decrypt_string(&secret).unwrap();
        assert_eq!(plain.as_slice(), br#"s:16:"JBSWY3DPEHPK3PXP";"#);

        let raw = e.encrypt_string(b"[\"a\"]").unwrap();
        assert_eq!(e.decrypt(&raw).unwrap().as_str(), "[\"a\"]");
        // A random IV each time.
        assert_ne!(e.encrypt("x").unwrap(), e.encrypt("x").unwrap());
    }

    #[test]
    fn another_key_or_a_change_is_refused() {
        let e = encrypter();
        let payload = e.encrypt("secret").unwrap();
        let other = Encrypter::new([9; 32]);
        assert_eq!(other.decrypt(&payload).unwrap_err(), DecryptError::Mac);

        let json = B64.decode(&payload).unwrap();
        let mut p: Payload = serde_json::from_slice(&json).unwrap();
        p.value = B64.encode(b"0123456789abcdef");
        let tampered = B64.encode(serde_json::to_vec(&p).unwrap());
        assert_eq!(e.decrypt(&tampered).unwrap_err(), DecryptError::Mac);

        p.tag = Some("AAAA".into());
        let tagged = B64.encode(serde_json::to_vec(&p).unwrap());
        assert_eq!(e.decrypt(&tagged).unwrap_err(), DecryptError::Payload);

        for junk in ["", "!!!", "e30=", "bnVsbA=="] {
            assert_eq!(
                e.decrypt(junk).unwrap_err(),
                DecryptError::Payload,
                "{junk}"
            );
        }
    }

    /// A row as a Laravel app with Fortify writes it, made by PHP's own openssl, serialize,
    /// json_encode and hash_hmac (`testdata/fortify_row.php`).
    #[test]
    fn fortify_row_decrypts() {
        let row: serde_json::Value =
            serde_json::from_str(include_str!("testdata/fortify_row.json")).unwrap();
        let e = Encrypter::from_app_key(row["app_key"].as_str().unwrap()).unwrap();
        let secret = e
            .decrypt(row["two_factor_secret"].as_str().unwrap())
            .unwrap();
        assert_eq!(secret.as_str(), "JBSWY3DPEHPK3PXP");
        let codes = e
            .decrypt(row["two_factor_recovery_codes"].as_str().unwrap())
            .unwrap();
        let codes: Vec<String> = serde_json::from_str(&codes).unwrap();
        assert_eq!(codes.len(), 8);
        assert_eq!(codes[0], "aB3dE5gH7j-Kl9Mn0Pq2");
        assert_eq!(codes[7], "abcdefghij-klmnopqrst");
    }

    #[test]
    fn php_strings() {
        assert_eq!(php_serialize_string("é"), "s:2:\"é\";");
        assert_eq!(php_unserialize_string("s:2:\"é\";"), Some("é"));
        assert_eq!(php_unserialize_string("s:0:\"\";"), Some(""));
        assert_eq!(php_unserialize_string("s:3:\"ab\";"), None);
        assert_eq!(php_unserialize_string("s:1:\"ab\";"), None);
        assert_eq!(php_unserialize_string("s::\"\";"), None);
        assert_eq!(php_unserialize_string("s:+1:\"a\";"), None);
        assert_eq!(php_unserialize_string("i:5;"), None);
        assert_eq!(php_unserialize_string("[\"x\"]"), None);
    }

    #[test]
    fn key_file_is_created_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.key");
        let first = Encrypter::load_or_create(None, &path).unwrap();
        let payload = first.encrypt("kept").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("base64:") && text.ends_with('\n'));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = Encrypter::load_or_create(None, &path).unwrap();
        assert_eq!(again.decrypt(&payload).unwrap().as_str(), "kept");
        // APP_KEY wins over the file.
        let from_env = Encrypter::load_or_create(Some(APP_KEY), &path).unwrap();
        assert_eq!(from_env.decrypt(&payload).unwrap_err(), DecryptError::Mac);
    }
}
