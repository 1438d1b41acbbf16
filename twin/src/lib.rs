//! The twin: a built-in emulation of the seed lab (DESIGN §5). With no `--lab`, every
//! clusterproof command runs against it.
//!
//! Today the twin is its inventory only — the seed lab's files under `fixtures/seed/` — so
//! commands without `--lab` run the offline checks on them. The network emulators
//! (Proxmox API, DNS views, Omni and its `omnictl` shim, Kubernetes API, Cilium) come next;
//! until then no command sends traffic anywhere.

use std::path::{Path, PathBuf};

/// The bundled seed lab file (`fixtures/seed/lab.toml` in the source tree).
pub fn seed_lab() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/seed/lab.toml");
    p.canonicalize().unwrap_or(p)
}
