//! Two-factor authentication as Laravel Fortify does it: TOTP (RFC 6238: SHA-1, 6 digits,
//! 30-second steps, one step either side accepted) and eight recovery codes of the form
//! `Str::random(10)-Str::random(10)`, each usable once.
//!
//! That a code is used once is the caller's part: [`matching_step`] tells which time step
//! a code belongs to, and the caller claims that step in the database
//! ([`Db::claim_totp_step`](crate::db::Db::claim_totp_step)), which refuses a step at or
//! before the last one used.

use std::time::{SystemTime, UNIX_EPOCH};

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};
use zeroize::Zeroizing;

/// Seconds per TOTP step.
pub const STEP: u64 = 30;
/// Digits per TOTP code.
pub const DIGITS: usize = 6;
/// Steps accepted either side of the current one (Fortify's `window`).
pub const WINDOW: u64 = 1;
/// How many recovery codes are issued.
pub const RECOVERY_CODES: usize = 8;

/// Bytes of a new secret: 160 bits, RFC 4226's recommendation (32 base32 characters).
const SECRET_BYTES: usize = 20;

fn totp(secret: &[u8], issuer: &str, account: &str) -> TOTP {
    // Unchecked: Fortify's secrets are 16 base32 characters (80 bits), under the 128 bits
    // `TOTP::new` insists on, and they must keep working.
    TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        0,
        STEP,
        secret.to_vec(),
        Some(issuer.to_owned()),
        account.to_owned(),
    )
}

/// A new secret, in base32 (no padding) as authenticator apps and Fortify keep it.
pub fn generate_secret() -> Result<Zeroizing<String>, getrandom::Error> {
    let mut bytes = Zeroizing::new([0_u8; SECRET_BYTES]);
    getrandom::fill(bytes.as_mut())?;
    Ok(Zeroizing::new(
        Secret::Raw(bytes.to_vec()).to_encoded().to_string(),
    ))
}

/// The `otpauth://totp/…` URL of a secret, for a QR code (`None` if the secret is not
/// base32). The label is `issuer:account`.
pub fn otpauth_url(secret_base32: &str, issuer: &str, account: &str) -> Option<String> {
    let bytes = Zeroizing::new(decode_secret(secret_base32)?);
    Some(totp(&bytes, issuer, account).get_url())
}

/// The QR code of an `otpauth://` URL as an SVG image (black on white, with the quiet
/// zone), for an authenticator app to scan; `None` if the URL is too long for a QR code.
/// Rendered here, so that the secret is never sent to another service.
pub fn qr_code_svg(otpauth_url: &str) -> Option<String> {
    let code = qrcode::QrCode::new(otpauth_url.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build(),
    )
}

fn decode_secret(secret_base32: &str) -> Option<Vec<u8>> {
    let bytes = Secret::Encoded(secret_base32.trim().to_ascii_uppercase())
        .to_bytes()
        .ok()?;
    (!bytes.is_empty()).then_some(bytes)
}

/// The current time step.
pub fn current_step() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / STEP)
}

/// The code of `step` for a secret (`None` if the secret is not base32).
pub fn code_at(secret_base32: &str, step: u64) -> Option<String> {
    let bytes = Zeroizing::new(decode_secret(secret_base32)?);
    Some(totp(&bytes, "", "").generate(step.saturating_mul(STEP)))
}

/// The time step, within [`WINDOW`] of `now_step`, whose code is `code`; `None` if there
/// is none (or `code` is not six digits, or the secret is not base32). Each candidate is
/// compared in constant time.
pub fn matching_step(secret_base32: &str, code: &str, now_step: u64) -> Option<u64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bytes = Zeroizing::new(decode_secret(secret_base32)?);
    let totp = totp(&bytes, "", "");
    let mut found = None;
    for step in now_step.saturating_sub(WINDOW)..=now_step.saturating_add(WINDOW) {
        let expected = Zeroizing::new(totp.generate(step.saturating_mul(STEP)));
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

/// Eight new recovery codes, as Fortify's `RecoveryCode::generate()` makes them.
pub fn generate_recovery_codes() -> Result<Vec<String>, getrandom::Error> {
    (0..RECOVERY_CODES)
        .map(|_| Ok(format!("{}-{}", random_string(10)?, random_string(10)?)))
        .collect()
}

/// Laravel's `Str::random($n)`: `n` characters from `[A-Za-z0-9]`.
fn random_string(n: usize) -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut byte = [0_u8; 1];
        getrandom::fill(&mut byte)?;
        // A byte modulo 64 is uniform; the two values past the alphabet are drawn again,
        // so that each character is equally likely.
        if let Some(&c) = ALPHABET.get(usize::from(byte[0] % 64)) {
            out.push(char::from(c));
        }
    }
    Ok(out)
}

/// `codes` without `code`, if `code` is one of them (compared in constant time).
pub fn spend_recovery_code(codes: &[String], code: &str) -> Option<Vec<String>> {
    let mut found = None;
    for (i, candidate) in codes.iter().enumerate() {
        if bool::from(candidate.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(i);
        }
    }
    let i = found?;
    let mut rest = codes.to_vec();
    rest.remove(i);
    Some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 secret is the ASCII of "12345678901234567890";
    /// the 8-digit codes there end in these 6 digits.
    #[test]
    fn rfc_6238_vectors() {
        let secret = Secret::Raw(b"12345678901234567890".to_vec())
            .to_encoded()
            .to_string();
        for (time, code) in [
            (59_u64, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(code_at(&secret, time / STEP).unwrap(), code, "{time}");
        }
    }

    #[test]
    fn window_is_one_step_either_side() {
        let secret = generate_secret().unwrap();
        let now = 1_000_000;
        for step in [now - 1, now, now + 1] {
            let code = code_at(&secret, step).unwrap();
            assert_eq!(matching_step(&secret, &code, now), Some(step));
        }
        for step in [now - 2, now + 2] {
            let code = code_at(&secret, step).unwrap();
            // Another step's code may collide by chance (one in a million); these don't
            // for this check to be meaningful, so compare with the window's codes.
            let in_window = (now - 1..=now + 1).any(|s| code_at(&secret, s).unwrap() == code);
            assert_eq!(matching_step(&secret, &code, now).is_some(), in_window);
        }
    }

    #[test]
    fn malformed_codes_and_secrets_match_nothing() {
        let secret = generate_secret().unwrap();
        for code in ["", "12345", "1234567", "12345a", " 123456", "١٢٣٤٥٦"] {
            assert_eq!(matching_step(&secret, code, 5), None, "{code:?}");
        }
        assert_eq!(matching_step("not base32!", "123456", 5), None);
        assert_eq!(otpauth_url("", "app", "a@b.c"), None);
    }

    #[test]
    fn fortify_secret_of_80_bits_works() {
        let code = code_at("JBSWY3DPEHPK3PXP", 1).unwrap();
        assert_eq!(code.len(), 6);
        assert_eq!(matching_step("JBSWY3DPEHPK3PXP", &code, 1), Some(1));
    }

    #[test]
    fn otpauth_url_shape() {
        let url = otpauth_url("JBSWY3DPEHPK3PXP", "account_api", "ada@example.com").unwrap();
        assert_eq!(
            url,
            "otpauth://totp/account_api:ada%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=account_api"
        );
    }

    #[test]
    fn qr_codes_are_svg_images() {
        let url = otpauth_url("JBSWY3DPEHPK3PXP", "account_api", "ada@example.com").unwrap();
        let svg = qr_code_svg(&url).unwrap();
        assert!(
            svg.starts_with(
                r#"<?xml version="1.0" standalone="yes"?><svg xmlns="http://www.w3.org/2000/svg""#
            ),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>"), "{svg}");
        // Nothing that would run or load anything.
        assert!(!svg.contains("<script") && !svg.contains("href"), "{svg}");
        assert_eq!(qr_code_svg(&"x".repeat(8000)), None);
    }

    #[test]
    fn secrets_are_32_base32_chars() {
        let s = generate_secret().unwrap();
        assert_eq!(s.len(), 32);
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
        assert_ne!(*s, *generate_secret().unwrap());
    }

    #[test]
    fn recovery_codes_shape_and_spending() {
        let codes = generate_recovery_codes().unwrap();
        assert_eq!(codes.len(), 8);
        for code in &codes {
            let (a, b) = code.split_once('-').unwrap();
            assert_eq!((a.len(), b.len()), (10, 10));
            assert!(code.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
        }
        let rest = spend_recovery_code(&codes, &codes[3]).unwrap();
        assert_eq!(rest.len(), 7);
        assert!(!rest.contains(&codes[3]));
        assert!(spend_recovery_code(&rest, &codes[3]).is_none());
        assert!(spend_recovery_code(&codes, "").is_none());
    }
}
