//! Every check clusterproof runs, one module per scenario, grouped by phase. A scenario's
//! module doc names the plan line it proves; its id is its path (`preflight::template` lives
//! in `src/preflight/template.rs`).

use std::sync::Arc;

use harness::scenario::Scenario;

pub mod chaos;
pub mod dod;
pub mod preflight;
pub mod provision;
mod workload;

/// The catalog, in phase order. `clusterproof list` prints it.
pub fn catalog() -> Vec<Arc<dyn Scenario>> {
    vec![
        Arc::new(preflight::template::Template),
        Arc::new(preflight::machine_classes::MachineClasses),
        Arc::new(preflight::ceph::Ceph),
        Arc::new(preflight::dns::Dns),
        Arc::new(preflight::ram_budget::RamBudget),
        Arc::new(preflight::omni::Omni),
        Arc::new(provision::machine_classes::MachineClasses),
        Arc::new(provision::cluster::Cluster),
        Arc::new(provision::kubeconfig::Kubeconfig),
        Arc::new(provision::cilium::Cilium),
        Arc::new(dod::control_plane_ready::ControlPlaneReady),
        Arc::new(dod::workers_ready::WorkersReady),
        Arc::new(dod::all_nodes_ready::AllNodesReady),
        Arc::new(dod::cilium_healthy::CiliumHealthy),
        Arc::new(dod::core_pods::CorePods),
        Arc::new(dod::connectivity::Connectivity),
        Arc::new(chaos::node_failure::NodeFailure),
    ]
}

/// A scenario by id.
pub fn by_id(id: &str) -> Option<Arc<dyn Scenario>> {
    catalog().into_iter().find(|s| s.id() == id)
}

#[cfg(test)]
mod tests {
    /// Ids are unique, each id is its module path, every prerequisite is in the catalog.
    #[test]
    fn the_catalog_keeps_its_rules() {
        let errors = harness::catalog::check(&super::catalog());
        assert!(errors.is_empty(), "{errors:#?}");
    }
}
