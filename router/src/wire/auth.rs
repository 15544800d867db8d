//! Password checks for `mysql_native_password` and `caching_sha2_password`, and the answers
//! the router's own backend connections give a server's login methods.
//!
//! The router knows each user's password (from its config), so it can compute what a client
//! holding the same password must send for a given scramble, and compare. For
//! `caching_sha2_password` this is always the "fast" path: the full-authentication exchange
//! (RSA or TLS) is never needed. A user given by its stored hash (`SHA1(SHA1(password))`) is
//! checked without the password: `mysql_native_password` only.
//!
//! As a client of a backend, the router also answers MariaDB's `client_ed25519`
//! ([`ed25519_response`]) and `caching_sha2_password`'s full authentication in the clear,
//! with the server's RSA public key ([`sha2_rsa_password`]).

use sha1::{Digest, Sha1};
use sha2::Sha256;

pub const NATIVE: &str = "mysql_native_password";
pub const CACHING_SHA2: &str = "caching_sha2_password";
/// MariaDB's `ed25519` (server plugin `auth_ed25519`): the client plugin's name.
pub const ED25519: &str = "client_ed25519";

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

/// `client_ed25519`'s answer to a server's nonce: the Ed25519 signature (64 bytes) of the
/// nonce with the key pair whose seed is the password itself (RFC 8032: the secret scalar and
/// nonce prefix are `SHA512(password)`'s halves), as MariaDB's client plugin signs it. The
/// server checks it against the public key it stores (`PASSWORD('…')` of `ed25519`).
pub fn ed25519_response(password: &[u8], nonce: &[u8]) -> [u8; 64] {
    mysql_common::scramble::create_response_for_ed25519(password, nonce)
}

/// `caching_sha2_password`'s full authentication without TLS: the password and a NUL, XORed
/// with the scramble (repeated), encrypted with the server's RSA public key `pem` (as a
/// MySQL server sends it: `BEGIN PUBLIC KEY`, or `BEGIN RSA PUBLIC KEY`) with OAEP padding
/// (SHA-1, as MySQL since 8.0.5 decrypts it). The `rsa` crate reads the key and encrypts: a key
/// from the network that is malformed or too short for the password is an error, not a panic.
///
/// # Errors
/// What is wrong with the key (or an empty scramble).
pub fn sha2_rsa_password(password: &[u8], scramble: &[u8], pem: &[u8]) -> Result<Vec<u8>, String> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    if scramble.is_empty() {
        return Err("no scramble to mix the password with".into());
    }
    let block: Vec<u8> = password
        .iter()
        .chain(std::iter::once(&0))
        .zip(scramble.iter().cycle())
        .map(|(p, s)| p ^ s)
        .collect();
    let text = std::str::from_utf8(pem)
        .map_err(|_| "the server's public key is not text")?
        .trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let key = rsa::RsaPublicKey::from_public_key_pem(text)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(text))
        .map_err(|e| format!("the server's public key cannot be read: {e}"))?;
    key.encrypt(
        &mut rand::thread_rng(),
        rsa::Oaep::new::<sha1::Sha1>(),
        &block,
    )
    .map_err(|e| match e {
        rsa::Error::MessageTooLong => format!(
            "a {}-bit RSA key is too short for a {}-byte password",
            rsa::traits::PublicKeyParts::size(&key) * 8,
            password.len()
        ),
        e => format!("encrypting the password with the server's public key: {e}"),
    })
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

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn ed25519_responses_are_rfc8032_signatures() {
        // RFC 8032, section 7.1, TEST 1 and TEST 2: what MariaDB calls the password is the
        // RFC's secret key (the seed SHA-512 expands), the server's nonce its message.
        let cases = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
                 5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
                 085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
        ];
        for (secret, message, signature) in cases {
            let got = ed25519_response(&hex(secret), &hex(message));
            assert_eq!(got.to_vec(), hex(signature), "secret {secret}");
        }
        // A 32-byte nonce, as the server sends, and a password of any length.
        let a = ed25519_response(b"pw", &[7u8; 32]);
        assert_eq!(a, ed25519_response(b"pw", &[7u8; 32]));
        assert_ne!(a, ed25519_response(b"pw", &[8u8; 32]));
        assert_ne!(a, ed25519_response(b"px", &[7u8; 32]));
    }

    /// What this checks: the block sent for `caching_sha2_password`'s full authentication in
    /// the clear is the password and a NUL XORed with the scramble, RSA-OAEP (SHA-1) encrypted
    /// with the public key so that its private key decrypts it back (done here by OpenSSL, as
    /// a MySQL server does with its own key), for keys in both PEM forms a server may send;
    /// and that keys that are malformed or too short are refused with a message rather than a
    /// panic. It does not show that a MySQL server accepts the exchange: there is no MySQL 8
    /// to test against here.
    #[test]
    fn rsa_full_authentication_block_decrypts_with_the_private_key() {
        let keys = test_rsa::Keys::new(2048);
        let scramble = b"Zb0\x01\x7f*q9Lm2?x8Pc4&Wd";
        let password = b"a password longer than the twenty-byte scramble";
        for pem in [keys.spki(), keys.pkcs1()] {
            let block = sha2_rsa_password(password, scramble, &pem).expect("encrypt");
            assert_eq!(block.len(), 256, "one RSA block of a 2048-bit key");
            let plain: Vec<u8> = keys
                .decrypt(&block)
                .iter()
                .zip(scramble.iter().cycle())
                .map(|(b, s)| b ^ s)
                .collect();
            let mut want = password.to_vec();
            want.push(0);
            assert_eq!(plain, want, "{}", String::from_utf8_lossy(&pem));
        }
        // A server's key text cut anywhere, or with any byte of its DER changed: refused or
        // used, never a panic.
        let pem = keys.spki();
        for cut in 0..pem.len() {
            let _ = sha2_rsa_password(b"pw", scramble, &pem[..cut]);
        }
        // Any byte of the key's text changed: refused or used, never a panic.
        for i in 0..pem.len() {
            for x in [0x01, 0x20, 0x80] {
                let mut bad = pem.clone();
                bad[i] ^= x;
                let _ = sha2_rsa_password(b"pw", scramble, &bad);
            }
        }
        assert!(sha2_rsa_password(b"pw", scramble, b"no key here").is_err());
        assert!(sha2_rsa_password(b"pw", b"", &pem).is_err());
        // A 512-bit key holds at most 64 - 42 = 22 bytes: a 21-byte password and its NUL.
        let small = test_rsa::Keys::new(512).spki();
        assert!(sha2_rsa_password(&[b'x'; 21], scramble, &small).is_ok());
        let e = sha2_rsa_password(&[b'x'; 22], scramble, &small).expect_err("too long");
        assert!(e.contains("too short"), "{e}");
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

/// RSA key pairs made with the `openssl` command, for tests of the full authentication.
#[cfg(test)]
pub(crate) mod test_rsa {
    use std::path::PathBuf;

    /// A private key and its public key, in a temporary directory.
    pub(crate) struct Keys {
        dir: tempfile::TempDir,
    }

    /// Runs `openssl` with `args`; panics with its stderr when it fails.
    fn openssl(args: &[&str]) {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("the openssl command (this test needs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    impl Keys {
        pub(crate) fn new(bits: u32) -> Keys {
            let k = Keys {
                dir: tempfile::tempdir().expect("tempdir"),
            };
            let key = k.path("key.pem");
            let bits = format!("rsa_keygen_bits:{bits}");
            openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                &bits,
                "-out",
                &key,
            ]);
            openssl(&["pkey", "-in", &key, "-pubout", "-out", &k.path("spki.pem")]);
            openssl(&[
                "rsa",
                "-in",
                &key,
                "-RSAPublicKey_out",
                "-out",
                &k.path("pkcs1.pem"),
            ]);
            k
        }

        fn path(&self, f: &str) -> String {
            let p: PathBuf = self.dir.path().join(f);
            p.display().to_string()
        }

        /// The public key as `BEGIN PUBLIC KEY` (what MySQL sends).
        pub(crate) fn spki(&self) -> Vec<u8> {
            std::fs::read(self.path("spki.pem")).expect("public key")
        }

        /// The public key as `BEGIN RSA PUBLIC KEY`.
        pub(crate) fn pkcs1(&self) -> Vec<u8> {
            std::fs::read(self.path("pkcs1.pem")).expect("public key")
        }

        /// Decrypts one RSA-OAEP (SHA-1) block with the private key, as a MySQL server does.
        pub(crate) fn decrypt(&self, block: &[u8]) -> Vec<u8> {
            let (enc, dec) = (self.path("enc.bin"), self.path("dec.bin"));
            std::fs::write(&enc, block).expect("write");
            openssl(&[
                "pkeyutl",
                "-decrypt",
                "-inkey",
                &self.path("key.pem"),
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-in",
                &enc,
                "-out",
                &dec,
            ]);
            std::fs::read(&dec).expect("decrypted")
        }
    }
}
