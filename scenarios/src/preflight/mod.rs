//! Checks that run before deploy.

pub mod ceph;
pub mod dns;
pub mod machine_classes;
pub mod omni;
pub mod ram_budget;
pub mod template;
