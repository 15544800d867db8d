//! The shared token that the topology service and the routers' admin endpoints require for
//! every request that reads or changes state: where servers keep it and where the command line
//! finds it by itself.
//!
//! `tessera up` and `tessera topo serve` take the token from the environment (`--token-env`,
//! by default `TESSERA_TOPO_TOKEN`), else from the token file, which they create on first start
//! with a new random token (mode 0600, in a directory only its owner can enter). The file is
//! `$TESSERA_TOKEN_FILE`, else `$HOME/.tessera/topo-token`, else
//! `/tmp/tessera-<uid>/topo-token`.

use std::io::Write;
use std::path::PathBuf;

/// The environment variable the token is read from by default.
pub const TOKEN_ENV: &str = "TESSERA_TOPO_TOKEN";

/// Where the token file is (see the module doc).
pub fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os("TESSERA_TOKEN_FILE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h).join(".tessera").join("topo-token"),
        None => {
            // SAFETY: getuid has no preconditions.
            let uid = unsafe { libc_getuid() };
            std::env::temp_dir()
                .join(format!("tessera-{uid}"))
                .join("topo-token")
        }
    }
}

extern "C" {
    #[link_name = "getuid"]
    fn libc_getuid() -> u32;
}

/// The token a client sends: the environment variable `env` when set, else the token file's
/// content when there is one.
pub fn find(env: &str) -> Option<String> {
    if let Ok(t) = std::env::var(env) {
        if !t.is_empty() {
            return Some(t);
        }
    }
    let t = std::fs::read_to_string(default_path()).ok()?;
    let t = t.trim().to_string();
    (!t.is_empty()).then_some(t)
}

/// The token a server requires: as [`find`], else a new random one written to the token file.
///
/// # Errors
/// When the token file cannot be made.
pub fn ensure(env: &str) -> std::io::Result<String> {
    if let Some(t) = find(env) {
        return Ok(t);
    }
    let path = default_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    let mut raw = [0u8; 24];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut raw)?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(&path) {
        Ok(mut f) => {
            f.write_all(token.as_bytes())?;
            f.write_all(b"\n")?;
            Ok(token)
        }
        // Another process made it first: theirs is the token.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => find(env).ok_or(e),
        Err(e) => Err(e),
    }
}
