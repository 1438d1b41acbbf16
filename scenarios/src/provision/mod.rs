//! Provisioning: Steps 1–5 of the deployment plan, in order. Each step is idempotent, so a
//! re-run on a provisioned cluster passes without changing anything.

pub mod cilium;
pub mod cluster;
pub mod kubeconfig;
pub mod machine_classes;

use harness::scenario::{Context, Outcome};

/// Steps change the lab: they run only with `--yes` (or against the built-in twin).
#[allow(clippy::result_large_err)]
pub(crate) fn may_change(cx: &Context) -> Result<(), Outcome> {
    if cx.lab.dry_run {
        Err(Outcome::skip(
            "dry run: this step would change the lab, so it sends nothing",
        ))
    } else if cx.lab.allow_changes {
        Ok(())
    } else {
        Err(Outcome::skip(
            "this step changes the lab; run with --yes to allow it",
        ))
    }
}
