//! Child processes of the stack: started with their output in a log file, tied to the
//! supervisor's life, and stopped by PID (SIGTERM, then SIGKILL).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Managed {
    pub name: String,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Managed {
    /// Spawns `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> std::io::Result<Managed> {
        let out = File::options().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        // Own process group: a terminal's Ctrl-C reaches only the supervisor, which then
        // stops everything in order. PDEATHSIG: if the supervisor dies without cleaning up
        // (SIGKILL), the kernel still stops the child, so nothing is orphaned.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.process_group(0);
        let child = cmd.spawn().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot start {name} ({:?}): {e}", cmd.get_program()),
            )
        })?;
        Ok(Managed {
            name: name.to_string(),
            log: log.to_path_buf(),
            child: Some(child),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(description)` when the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL. Always reaps the child.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGKILL now: a crash, not a shutdown.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last `max` bytes of the log, for failure reports.
    pub fn log_tail(&self, max: u64) -> String {
        tail(&self.log, max)
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

pub fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut s = String::new();
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    s.push_str(&String::from_utf8_lossy(&buf));
    s
}

/// Waits for a file a child writes once it is bound (`--addr-file`), then reads it.
pub fn wait_for_file(path: &Path, proc: &mut Managed, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.trim().is_empty() {
                return Ok(s.trim().to_string());
            }
        }
        if let Some(status) = proc.exited() {
            return Err(format!(
                "{} exited ({status}) before it was ready; its log ({}):\n{}",
                proc.name,
                proc.log.display(),
                proc.log_tail(4000)
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} was not ready after {timeout:?}; its log ({}):\n{}",
                proc.name,
                proc.log.display(),
                proc.log_tail(4000)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
