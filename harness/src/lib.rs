//! clusterproof's core: the lab model (inputs and their parsers), the scenario contract,
//! the runner, the event timeline and the reports. Scenarios live in the `scenarios` crate;
//! the CLI in the `clusterproof` binary.

pub mod catalog;
pub mod chaos;
pub mod cilium;
pub mod dns;
pub mod events;
pub mod kube;
pub mod model;
pub mod omni;
pub mod proxmox;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod secret;
pub mod source;
pub mod spec;
pub mod yaml;
