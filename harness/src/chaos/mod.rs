//! The chaos experiment's safety machinery (DESIGN §4): the cluster-wide [`lock`], the
//! durable [`journal`] of what must be undone, and [`recover`], which finishes a journal a
//! killed run left behind. The experiment itself is `scenarios::chaos::node_failure`.

pub mod journal;
pub mod lock;

use crate::scenario::Lab;
use journal::{Journal, JournalError, Pace, Stage};

/// What [`recover`] did.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The journal that was finished (`None`: there was nothing to recover).
    pub journal: Option<Journal>,
    pub evidence: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("this run has no Proxmox connection; the journal's VM cannot be restored")]
    NoProxmox,
    #[error("{0}")]
    Restore(String),
}

/// Finish the unfinished journal in the lab's state directory, if any: the VM running
/// again with its HA state as it was, the killed run's lock released, the journal removed.
pub async fn recover(lab: &Lab) -> Result<Recovered, RecoverError> {
    let state = &lab.spec.lab.state_dir;
    let Some(mut j) = Journal::load(state)? else {
        // A journal recorded as restored but not yet removed (killed in between) is done.
        Journal::finish(state)?;
        return Ok(Recovered::default());
    };
    let px = lab.proxmox.as_ref().ok_or(RecoverError::NoProxmox)?;
    let mut evidence = restore_vm_and_record(px, &mut j, lab).await?;
    if let Some(l) = &j.lock {
        match lab.kube().await {
            Ok(k) => match lock::release_if_held(k.client(), &l.holder).await {
                Ok(()) => evidence.push(format!(
                    "lock {}/{} of {} released",
                    l.namespace, l.name, l.holder
                )),
                Err(e) => evidence.push(format!("lock not released (it expires by itself): {e}")),
            },
            Err(e) => evidence.push(format!("lock not released (it expires by itself): {e}")),
        }
    }
    Journal::finish(state)?;
    Ok(Recovered {
        journal: Some(j),
        evidence,
    })
}

/// Restore the journal's VM and record that in the journal (durably) — the one path the
/// scenario's own restore, the runner's restore stage and `chaos recover` share.
pub async fn restore_vm_and_record(
    px: &crate::proxmox::ProxmoxClient,
    j: &mut Journal,
    lab: &Lab,
) -> Result<Vec<String>, RecoverError> {
    let state = &lab.spec.lab.state_dir;
    let pace = Pace::within(lab.spec.lab.chaos.restore_timeout);
    match journal::restore_vm(px, j, pace).await {
        Ok(lines) => {
            for l in &lines {
                j.note(l);
            }
            j.stage = Stage::Restored;
            j.save(state)?;
            Ok(lines)
        }
        Err(why) => {
            j.note(format!("restore failed: {why}"));
            j.save(state)?;
            Err(RecoverError::Restore(why))
        }
    }
}
