//! Checks that run before deploy.

pub mod machine_classes;
pub mod template;
