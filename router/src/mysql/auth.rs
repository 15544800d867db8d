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

/// `SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password)))`, empty for an empty password.
pub fn native_token(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password);
    let stage2 = Sha1::digest(stage1);
    let mut h = Sha1::new();
    h.update(scramble);
    h.update(stage2);
    let stage3 = h.finalize();
    stage1
        .iter()
        .zip(stage3.iter())
        .map(|(a, b)| a ^ b)
        .collect()
}

/// `SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble)`, empty for an empty
/// password.
pub fn sha2_token(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha256::digest(password);
    let stage2 = Sha256::digest(stage1);
    let mut h = Sha256::new();
    h.update(stage2);
    h.update(scramble);
    let stage3 = h.finalize();
    stage1
        .iter()
        .zip(stage3.iter())
        .map(|(a, b)| a ^ b)
        .collect()
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
