//! The chaos journal: what an experiment is about to change and how to undo it, written
//! durably (fsync of the file and of its directory) **before** any action, in the lab's state
//! directory — which outlives every report directory. The journal, not the lock, is the source
//! of truth for what must be restored: a run killed at any point leaves it behind, every
//! command that could touch the lab refuses to start while it is unfinished, and
//! [`recover`] (`clusterproof chaos recover`) finishes it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::proxmox::{ProxmoxClient, VmAction};

/// The file, in the state directory.
pub const FILE: &str = "chaos-journal.json";

/// Where the victim is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRef {
    /// The Proxmox node (host) it ran on when the plan was made.
    pub host: String,
    pub vmid: u32,
    pub name: String,
}

/// The HA resource of an HA-managed victim and the requested state to put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaState {
    pub sid: String,
    pub state: String,
}

/// The cluster-wide lock this run held (released by a recovery).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRef {
    pub namespace: String,
    pub name: String,
    pub holder: String,
}

/// How far the experiment got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Written before the power action is sent: it may or may not have reached Proxmox.
    Injecting,
    /// Proxmox accepted the action.
    Injected,
    /// The VM runs again (and its HA state is back): nothing left to undo.
    Restored,
}

/// One experiment's intent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub run_id: String,
    /// RFC 3339.
    pub started: String,
    pub pid: u32,
    /// The Kubernetes node.
    pub victim: String,
    pub vm: VmRef,
    /// `stop`, `shutdown`, `reset` or `suspend`.
    pub mode: String,
    pub ha: Option<HaState>,
    pub lock: Option<LockRef>,
    pub stage: Stage,
    /// What happened, in order (`<RFC 3339> <what>`).
    pub history: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write the chaos journal {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the chaos journal {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the chaos journal {path} is not readable JSON ({reason}); look at it, restore the VM it names by hand, then delete it"
    )]
    Corrupt { path: PathBuf, reason: String },
}

impl Journal {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE)
    }

    pub fn note(&mut self, what: impl AsRef<str>) {
        self.history.push(format!(
            "{} {}",
            chrono::Utc::now().to_rfc3339(),
            what.as_ref()
        ));
    }

    /// Write it durably: a temporary file in the same directory, fsync, rename over the
    /// journal, fsync of the directory — so a crash leaves the old or the new journal, whole.
    pub fn save(&self, state_dir: &Path) -> Result<(), JournalError> {
        let path = Self::path(state_dir);
        let fail = |source| JournalError::Write {
            path: path.clone(),
            source,
        };
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(state_dir).map_err(fail)?;
        let tmp = state_dir.join(format!(".{FILE}.tmp"));
        let text = serde_json::to_vec_pretty(self).expect("a journal serializes");
        let mut f = std::fs::File::create(&tmp).map_err(fail)?;
        f.write_all(&text).map_err(fail)?;
        f.sync_all().map_err(fail)?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(fail)?;
        sync_dir(state_dir).map_err(fail)?;
        Ok(())
    }

    /// The unfinished journal in `state_dir`, if any.
    pub fn load(state_dir: &Path) -> Result<Option<Journal>, JournalError> {
        let path = Self::path(state_dir);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(JournalError::Read { path, source }),
        };
        let j: Journal = serde_json::from_slice(&text).map_err(|e| JournalError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok((j.stage != Stage::Restored).then_some(j))
    }

    /// The experiment is over: remove the journal (durably).
    pub fn finish(state_dir: &Path) -> Result<(), JournalError> {
        let path = Self::path(state_dir);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(JournalError::Write { path, source }),
        }
        sync_dir(state_dir).map_err(|source| JournalError::Write { path, source })
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// The sentence every command that could touch the lab refuses with.
pub fn refusal(j: &Journal, state_dir: &Path, lab_path: &Path) -> String {
    format!(
        "an unfinished chaos experiment ({} of node {}, VM {} on {}, run {}, started {}) is recorded in {}; run `clusterproof chaos recover --lab {}` first",
        j.mode,
        j.victim,
        j.vm.vmid,
        j.vm.host,
        j.run_id,
        j.started,
        Journal::path(state_dir).display(),
        lab_path.display()
    )
}

/// Pacing of the recovery's Proxmox reads.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Between reads of a task's or a VM's status.
    pub every: Duration,
    /// How long one start (or resume) task may take.
    pub task: Duration,
    /// Start attempts before giving up.
    pub attempts: u32,
}

impl Pace {
    /// From the lab's restore deadline: attempts share it.
    pub fn within(restore_timeout: Duration) -> Pace {
        Pace {
            every: (restore_timeout / 600).clamp(Duration::from_millis(20), Duration::from_secs(1)),
            task: restore_timeout / 4,
            attempts: 3,
        }
    }
}

/// Bring the journal's VM back: its HA requested state as it was, then running (start a
/// stopped VM, resume a paused one, retrying a failed start task). The evidence lines say
/// what was done; the error, why the VM may still be down. Leaves the journal alone: the
/// caller records the outcome ([`Journal::save`] / [`Journal::finish`]).
pub async fn restore_vm(
    px: &ProxmoxClient,
    j: &Journal,
    pace: Pace,
) -> Result<Vec<String>, String> {
    let mut said = Vec::new();
    let vmid = j.vm.vmid;
    let host = px
        .vm_host(vmid)
        .await
        .map_err(|e| format!("cannot find VM {vmid}: {e}"))?
        .ok_or_else(|| {
            format!(
                "VM {vmid} ({}) is not in the Proxmox cluster any more",
                j.vm.name
            )
        })?;
    if host != j.vm.host {
        said.push(format!("VM {vmid} is now on {host} (was {})", j.vm.host));
    }
    if let Some(ha) = &j.ha {
        let now = px
            .ha_resources()
            .await
            .map_err(|e| format!("cannot read the HA resources: {e}"))?
            .into_iter()
            .find(|r| r.sid == ha.sid)
            .and_then(|r| r.state);
        if now.as_deref() != Some(ha.state.as_str()) {
            px.ha_set_state(&ha.sid, &ha.state).await.map_err(|e| {
                format!(
                    "cannot set HA resource {} back to {}: {e}",
                    ha.sid, ha.state
                )
            })?;
            said.push(format!(
                "HA resource {} set back to {} (was {})",
                ha.sid,
                ha.state,
                now.as_deref().unwrap_or("absent")
            ));
        }
    }
    for attempt in 1..=pace.attempts {
        let st = px
            .vm_status(&host, vmid)
            .await
            .map_err(|e| format!("cannot read VM {vmid}'s status: {e}"))?;
        let paused = matches!(
            st.qmpstatus.as_deref(),
            Some("paused" | "suspended" | "prelaunch")
        );
        let action = match (st.status.as_str(), paused) {
            ("running", false) => {
                said.push(format!("VM {vmid} ({}) is running", j.vm.name));
                return Ok(said);
            }
            ("running", true) => VmAction::Resume,
            _ => VmAction::Start,
        };
        let ha_managed = st.ha.as_ref().is_some_and(|h| h.managed == Some(true));
        if ha_managed && j.ha.is_some() && action == VmAction::Start {
            // HA starts it once its requested state is `started`: wait for that.
            wait_running(px, &host, vmid, pace).await?;
            said.push(format!("VM {vmid} ({}) started by Proxmox HA", j.vm.name));
            return Ok(said);
        }
        let upid = px
            .vm_action(&host, vmid, action)
            .await
            .map_err(|e| format!("{} of VM {vmid} refused: {e}", action.as_str()))?;
        match px
            .wait_task(&host, &upid, pace.every, pace.task)
            .await
            .map_err(|e| format!("cannot follow task {upid}: {e}"))?
        {
            Some(t) if t.succeeded() => {
                said.push(format!(
                    "{} of VM {vmid} ({}): task OK",
                    action.as_str(),
                    j.vm.name
                ));
            }
            Some(t) => {
                let why = t.exitstatus.unwrap_or_else(|| "no exit status".into());
                said.push(format!(
                    "{} of VM {vmid} failed (attempt {attempt} of {}): {why}{}",
                    action.as_str(),
                    pace.attempts,
                    if attempt < pace.attempts {
                        "; retrying"
                    } else {
                        ""
                    }
                ));
                continue;
            }
            None => {
                said.push(format!(
                    "{} task of VM {vmid} still running after {}",
                    action.as_str(),
                    humantime::format_duration(pace.task)
                ));
                continue;
            }
        }
        wait_running(px, &host, vmid, pace).await?;
        return Ok(said);
    }
    Err(format!(
        "VM {vmid} ({}) is not running after {} attempts: {}",
        j.vm.name,
        pace.attempts,
        said.join("; ")
    ))
}

async fn wait_running(px: &ProxmoxClient, host: &str, vmid: u32, pace: Pace) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + pace.task;
    loop {
        let st = px
            .vm_status(host, vmid)
            .await
            .map_err(|e| format!("cannot read VM {vmid}'s status: {e}"))?;
        let paused = matches!(
            st.qmpstatus.as_deref(),
            Some("paused" | "suspended" | "prelaunch")
        );
        if st.status == "running" && !paused {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "VM {vmid} is {}{} after {}",
                st.status,
                st.qmpstatus.map(|q| format!(" ({q})")).unwrap_or_default(),
                humantime::format_duration(pace.task)
            ));
        }
        tokio::time::sleep(pace.every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> Journal {
        Journal {
            run_id: "r1".into(),
            started: "2026-12-03T06:00:00Z".into(),
            pid: 1,
            victim: "talos-prod-01-workers-abc".into(),
            vm: VmRef {
                host: "pve1".into(),
                vmid: 104,
                name: "talos-prod-01-workers-abc".into(),
            },
            mode: "stop".into(),
            ha: None,
            lock: None,
            stage: Stage::Injecting,
            history: vec![],
        }
    }

    #[test]
    fn a_saved_journal_loads_back_until_finished() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert_eq!(Journal::load(&state).unwrap(), None);
        let mut j = journal();
        j.note("planned");
        j.save(&state).unwrap();
        assert_eq!(Journal::load(&state).unwrap(), Some(j.clone()));
        j.stage = Stage::Restored;
        j.save(&state).unwrap();
        assert_eq!(
            Journal::load(&state).unwrap(),
            None,
            "a restored journal is finished"
        );
        Journal::finish(&state).unwrap();
        assert!(!Journal::path(&state).exists());
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0);
    }

    #[test]
    fn a_corrupt_journal_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Journal::path(dir.path()), "{\"run_id\": ").unwrap();
        let e = Journal::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains(FILE) && e.contains("restore the VM"), "{e}");
    }

    #[test]
    fn the_refusal_says_how_to_recover() {
        let j = journal();
        let r = refusal(&j, Path::new("/s"), Path::new("lab.toml"));
        assert!(
            r.contains("clusterproof chaos recover --lab lab.toml"),
            "{r}"
        );
        assert!(r.contains("VM 104 on pve1"), "{r}");
    }
}
