//! Password checks for `mysql_native_password` and `caching_sha2_password`.
//!
//! The router knows each user's password (from its config), so it can compute what a client
//! holding the same password must send for a given scramble, and compare. For
//! `caching_sha2_password` this is always the "fast" path: the full-authentication exchange
//! (RSA or TLS) is never needed. A user given by its stored hash (`SHA1(SHA1(password))`) is
//! checked without the password: `mysql_native_password` only.

use sha1::{Digest, Sha1};
use sha2::Sha256;

pub const NATIVE: &str = "mysql_native_password";
pub const CACHING_SHA2: &str = "caching_sha2_password";

/// `H(password) XOR H(...)`, the shape both plugins share: `stage3` hashes the scramble with
/// `H(H(password))` in the plugin's order. Empty for an empty password.
fn token<D: Digest>(password: &[u8], scramble: &[u8], scramble_first: bool) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = D::digest(password);
    let stage2 = D::digest(&stage1);
    let mut h = D::new();
    if scramble_first {
        h.update(scramble);
        h.update(&stage2);
    } else {
        h.update(&stage2);
        h.update(scramble);
    }
    let stage3 = h.finalize();
    stage1
        .iter()
        .zip(stage3.iter())
        .map(|(a, b)| a ^ b)
        .collect()
}

/// `SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password)))`, empty for an empty password.
pub fn native_token(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    token::<Sha1>(password, scramble, true)
}

/// `SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble)`, empty for an empty
/// password.
pub fn sha2_token(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    token::<Sha256>(password, scramble, false)
}

/// Compares in time independent of where the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `mysql_native_password`'s stored form of a password, as MariaDB's `PASSWORD()` writes it:
/// `*` and `SHA1(SHA1(password))` in upper-case hex.
pub fn native_hash(password: &[u8]) -> String {
    let h = Sha1::digest(Sha1::digest(password));
    let hex: String = h.iter().map(|b| format!("{b:02X}")).collect();
    format!("*{hex}")
}

/// Reads a [`native_hash`] (`*` and 40 hex digits) back to its 20 bytes.
pub fn parse_native_hash(s: &str) -> Option<[u8; 20]> {
    let hex = s.strip_prefix('*')?;
    if hex.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Returns whether a `mysql_native_password` `token` for `scramble` proves the password whose
/// stored form is `stored` (`SHA1(SHA1(password))`): the token XOR `SHA1(scramble + stored)`
/// is `SHA1(password)`, whose SHA1 must be `stored`. The password itself is never needed.
pub fn check_native_hash(stored: &[u8; 20], scramble: &[u8], token: &[u8]) -> bool {
    let token = if token.len() == 21 && token.last() == Some(&0) {
        &token[..20]
    } else {
        token
    };
    if token.len() != 20 {
        return false;
    }
    let mut h = Sha1::new();
    h.update(scramble);
    h.update(stored);
    let mask = h.finalize();
    let stage1: Vec<u8> = token.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect();
    constant_time_eq(&Sha1::digest(&stage1), stored)
}

/// Returns whether `token`, sent with `plugin` for `scramble`, proves `password`.
pub fn check(plugin: &str, password: &[u8], scramble: &[u8], token: &[u8]) -> bool {
    let expected = match plugin {
        NATIVE => native_token(password, scramble),
        CACHING_SHA2 => sha2_token(password, scramble),
        _ => return false,
    };
    // Some clients send a trailing NUL after the token.
    let token = if token.len() == expected.len() + 1 && token.last() == Some(&0) {
        &token[..expected.len()]
    } else {
        token
    };
    constant_time_eq(&expected, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hashes_check_native_tokens() {
        let s = b"01234567890123456789";
        // MariaDB: SELECT PASSWORD('pw') = '*D821809F681A40A6E379B50D0463EFAE20BDD122'.
        assert_eq!(
            native_hash(b"pw"),
            "*D821809F681A40A6E379B50D0463EFAE20BDD122"
        );
        let stored = parse_native_hash(&native_hash(b"pw")).expect("hash");
        assert!(check_native_hash(&stored, s, &native_token(b"pw", s)));
        assert!(!check_native_hash(&stored, s, &native_token(b"px", s)));
        assert!(!check_native_hash(&stored, s, b""));
        assert!(parse_native_hash("D821809F").is_none());
    }

    #[test]
    fn tokens_check() {
        let s = b"01234567890123456789";
        assert!(check(NATIVE, b"pw", s, &native_token(b"pw", s)));
        assert!(!check(NATIVE, b"pw", s, &native_token(b"px", s)));
        assert!(check(CACHING_SHA2, b"pw", s, &sha2_token(b"pw", s)));
        assert!(check(NATIVE, b"", s, b""));
        assert!(!check(NATIVE, b"pw", s, b""));
    }
}
