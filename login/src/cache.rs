//! The token cache: one JSON file per client, mode 0600 in a 0700 directory, written
//! atomically; a lock file beside it keeps two helpers (Claude Code may run several) from
//! spending the same refresh token, which a rotating IdP accepts once.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cached {
    /// Which token endpoint and client it came from: another's is not reused.
    pub token_url: String,
    pub client_id: String,
    pub access_token: String,
    /// Unix seconds.
    pub expires_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// `$XDG_CACHE_HOME/chokepoint/<client id>.json`, else `~/.cache/chokepoint/...`.
pub fn default_path(client_id: &str) -> Result<PathBuf, String> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".cache"),
            None => return Err("neither XDG_CACHE_HOME nor HOME is set: pass --cache-file".into()),
        },
    };
    let name: String = client_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(base.join("chokepoint").join(format!("{name}.json")))
}

/// What the file holds for this endpoint and client; a missing, unreadable or foreign file
/// is no cache.
pub fn load(path: &Path, token_url: &str, client_id: &str) -> Option<Cached> {
    let text = fs::read_to_string(path).ok()?;
    let cached: Cached = serde_json::from_str(&text).ok()?;
    (cached.token_url == token_url && cached.client_id == client_id).then_some(cached)
}

pub fn save(path: &Path, cached: &Cached) -> Result<(), String> {
    let err = |e: std::io::Error| format!("cannot write the token cache {}: {e}", path.display());
    ensure_dir(path).map_err(err)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    let body = serde_json::to_vec(cached).map_err(|e| e.to_string())?;
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&body)?;
            f.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(err)
}

pub fn remove(path: &Path) -> Result<bool, String> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

fn ensure_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir),
        None => Ok(()),
    }
}

/// An exclusive lock on `<cache>.lock`, held until dropped (the file closes).
pub struct Lock {
    _file: File,
}

pub fn lock(path: &Path) -> Result<Lock, String> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let err = |e: std::io::Error| format!("cannot lock {}: {e}", lock_path.display());
    ensure_dir(&lock_path).map_err(err)?;
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(err)?;
    // SAFETY: flock on a descriptor this function owns; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    Ok(Lock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn sample() -> Cached {
        Cached {
            token_url: "https://idp.example.com/token".into(),
            client_id: "cli".into(),
            access_token: "a.b.c".into(),
            expires_at: 42,
            refresh_token: Some("r".into()),
        }
    }

    #[test]
    fn saves_private_and_loads_only_for_the_same_client() {
        let dir =
            std::env::temp_dir().join(format!("chokepoint-login-cache-{}", std::process::id()));
        let path = dir.join("nested").join("cli.json");
        save(&path, &sample()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(
            load(&path, "https://idp.example.com/token", "cli"),
            Some(sample())
        );
        assert_eq!(load(&path, "https://other.example.com/token", "cli"), None);
        assert_eq!(load(&path, "https://idp.example.com/token", "robot"), None);
        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn default_path_is_under_the_cache_home_and_names_the_client_safely() {
        let p = default_path("../etc/x y").unwrap();
        assert!(p.ends_with("chokepoint/.._etc_x_y.json"), "{}", p.display());
    }
}
