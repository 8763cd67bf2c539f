//! The state file: which access log file was read how far, so that a restarted
//! reconciler resumes there rather than rereading (and resending) the whole log. Written
//! after each batch the ledger acknowledged, to a temporary file renamed over the old
//! one, so a crash leaves the previous checkpoint or the new one, never half of one.
//! Resuming behind the true position only resends records the ledger already has.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::tail::Position;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    /// The access log's path when the checkpoint was written: a state file kept for
    /// another log is refused rather than applied.
    access_log: PathBuf,
    position: Position,
}

/// `Ok(None)`: no state file yet (a first run).
pub fn load(state: &Path, access_log: &Path) -> Result<Option<Position>, String> {
    let text = match std::fs::read_to_string(state) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot read the state file {}: {e}",
                state.display()
            ))
        }
    };
    let file: StateFile = serde_json::from_str(&text).map_err(|e| {
        format!(
            "the state file {} is not a reconcile checkpoint ({e}); remove it to read the \
             access log from its start",
            state.display()
        )
    })?;
    if file.access_log != access_log {
        return Err(format!(
            "the state file {} is the checkpoint of {}, not of {}",
            state.display(),
            file.access_log.display(),
            access_log.display()
        ));
    }
    Ok(Some(file.position))
}

pub fn save(state: &Path, access_log: &Path, position: Position) -> Result<(), String> {
    let text = serde_json::to_string(&StateFile {
        access_log: access_log.to_owned(),
        position,
    })
    .map_err(|e| e.to_string())?;
    let mut tmp = state.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, state)
    };
    write().map_err(|e| format!("cannot write the state file {}: {e}", state.display()))
}
