//! The chaos experiment's safety machinery (DESIGN §4): the cluster-wide [`lock`], the
//! durable [`journal`] of what must be undone, and [`recover`], which finishes a journal a
//! killed run left behind. The experiment itself is `scenarios::chaos::node_failure`.

pub mod journal;
pub mod lock;

use crate::scenario::Lab;

/// The chaos canary's Deployment and Service (in [`canary_namespace`]).
pub const CANARY: &str = "clusterproof-canary";

/// The canary's namespace: beside the verify probe's.
pub fn canary_namespace(lab: &crate::model::lab::LabFile) -> String {
    format!("{}-canary", lab.verify.probe_namespace)
}

/// Delete a canary a killed run left behind (nothing if there is none).
async fn remove_leftover_canary(lab: &Lab) -> Option<String> {
    use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
    let k = lab.kube().await.ok()?;
    let ns = canary_namespace(&lab.spec.lab);
    let dp = kube::api::DeleteParams::background();
    let d: kube::Api<Deployment> = kube::Api::namespaced(k.client(), &ns);
    let s: kube::Api<Service> = kube::Api::namespaced(k.client(), &ns);
    let gone_d = d.delete(CANARY, &dp).await.is_ok();
    let gone_s = s.delete(CANARY, &Default::default()).await.is_ok();
    (gone_d || gone_s).then(|| format!("removed the canary {ns}/{CANARY} a killed run left"))
}
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
        // A run killed after taking the lock and before writing its journal changed nothing
        // but the lock: release it when its holder was a process of this host that is gone.
        let mut evidence = Vec::new();
        if let Ok(k) = lab.kube().await
            && let Ok(Some(h)) = lock::holder(k.client()).await
            && lock::holder_is_dead_here(&h)
            && lock::release_if_held(k.client(), &h).await.is_ok()
        {
            evidence.push(format!("released the lock of a killed run ({h})"));
        }
        if !evidence.is_empty() {
            evidence.extend(remove_leftover_canary(lab).await);
        }
        return Ok(Recovered {
            journal: None,
            evidence,
        });
    };
    let px = lab.proxmox.as_ref().ok_or(RecoverError::NoProxmox)?;
    let mut evidence = restore_vm_and_record(px, &mut j, lab).await?;
    // Back means the node is back: wait (watching) for it to be Ready, bounded.
    if let Ok(k) = lab.kube().await {
        let within = lab.spec.lab.chaos.restore_timeout;
        let victim = j.victim.clone();
        match k
            .wait_nodes(&format!("node {victim} Ready"), within, |nodes| {
                nodes.iter().any(|n| {
                    n.metadata.name.as_deref() == Some(victim.as_str())
                        && crate::kube::node_ready(n) == Some("True")
                })
            })
            .await
        {
            Ok(_) => evidence.push(format!("node {victim} Ready again")),
            Err(e) => evidence.push(format!("the VM runs, but {e}")),
        }
    }
    evidence.extend(remove_leftover_canary(lab).await);
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
