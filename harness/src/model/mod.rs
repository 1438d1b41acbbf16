//! Parsed and validated inputs: the lab file, the cluster template, machine classes, and the
//! provider's storage-selector language.

pub mod lab;
pub mod machine_class;
pub mod placement;
pub mod selector;
pub mod template;
