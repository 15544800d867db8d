//! Password checks for `mysql_native_password` and `caching_sha2_password`.
//!
//! The router knows each user's password (from its config), so it can compute what a client
//! holding the same password must send for a given scramble, and compare. For
//! `caching_sha2_password` this is always the "fast" path: the full-authentication exchange
//! (RSA or TLS) is never needed.

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
    fn tokens_check() {
        let s = b"01234567890123456789";
        assert!(check(NATIVE, b"pw", s, &native_token(b"pw", s)));
        assert!(!check(NATIVE, b"pw", s, &native_token(b"px", s)));
        assert!(check(CACHING_SHA2, b"pw", s, &sha2_token(b"pw", s)));
        assert!(check(NATIVE, b"", s, b""));
        assert!(!check(NATIVE, b"pw", s, b""));
    }
}
