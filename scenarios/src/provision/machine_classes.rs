//! `provision::machine_classes` — Step 1: apply the machine classes.
//!
//! Proves (deployment plan): Step 1 "Apply Machine Classes" and its validation "Both
//! matrix-control-plane and matrix-worker appear in output" (names from the lab's class files).
//!
//! `omnictl apply -f FILE` for every class file, then `omnictl get machineclasses -o json` must
//! list every class id. Applying an unchanged class is a no-op in Omni.

use futures::future::BoxFuture;
use harness::scenario::{Context, Meta, Need, Outcome, Phase, Scenario, Verdict};

pub struct MachineClasses;

/// What this scenario is (the catalog reads it).
pub static META: Meta = Meta {
    id: "provision::machine_classes",
    module: module_path!(),
    phase: Phase::Provision,
    proves: "Step 1: Apply Machine Classes (validation: every class appears in omnictl get machineclasses)",
    needs: &[Need::Spec, Need::Omni],
    after: &[],
};

impl Scenario for MachineClasses {
    fn meta(&self) -> &'static Meta {
        &META
    }
    fn run<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Outcome> {
        Box::pin(async move { run(cx).await.unwrap_or_else(|o| o) })
    }
}

async fn run(cx: &Context) -> Result<Outcome, Outcome> {
    super::may_change(cx)?;
    let omni = cx.lab.omni()?;
    let spec = &cx.lab.spec;
    for f in &spec.class_files {
        cx.events
            .observe(format!("omnictl apply -f {}", f.path.display()));
        if let Err(e) = omni.apply(&f.path).await {
            return Ok(Outcome::new(
                Verdict::Fail,
                format!("omnictl apply -f {} failed: {e}", f.path.display()),
            ));
        }
    }
    let listed = omni.get("machineclasses", None).await.map_err(|e| {
        Outcome::new(
            Verdict::Fail,
            format!("omnictl get machineclasses failed: {e}"),
        )
    })?;
    let ids: Vec<&str> = listed.iter().map(|r| r.metadata.id.as_str()).collect();
    let missing: Vec<&str> = spec
        .classes()
        .map(|c| c.id.value.as_str())
        .filter(|id| !ids.contains(id))
        .collect();
    if missing.is_empty() {
        Ok(Outcome::pass(format!(
            "applied; omnictl get machineclasses lists {}",
            ids.join(", ")
        )))
    } else {
        Ok(Outcome::new(
            Verdict::Fail,
            format!("after apply, Omni does not list {}", missing.join(", ")),
        )
        .evidence(format!("listed: {}", ids.join(", "))))
    }
}
