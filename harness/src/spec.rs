//! `LabSpec`: everything the user gave us, parsed — the lab file, the cluster template and
//! the machine classes. Loading fails (exit 2) only when a file cannot be read or is not
//! YAML/TOML at all; problems *inside* well-formed files are findings that the preflight
//! scenarios report.

use std::path::{Path, PathBuf};

use crate::model::lab::{LabError, LabFile};
use crate::model::machine_class::{MachineClass, MachineClassError, MachineClassFile};
use crate::model::template::{ClusterTemplate, TemplateError};

#[derive(Debug, Clone)]
pub struct LabSpec {
    pub lab: LabFile,
    pub template: ClusterTemplate,
    pub class_files: Vec<MachineClassFile>,
}

/// Input that cannot be used at all. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    MachineClass(#[from] MachineClassError),
}

/// Overrides of the lab file's inputs (from `clusterproof lint --template/--classes`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub template: Option<PathBuf>,
    pub classes: Vec<PathBuf>,
}

impl LabSpec {
    pub fn load(lab_path: &Path, overrides: &Overrides) -> Result<Self, SpecError> {
        let lab = LabFile::load(lab_path)?;
        let template_path = overrides
            .template
            .clone()
            .unwrap_or_else(|| lab.cluster.template.clone());
        let template = ClusterTemplate::load(&template_path)?;
        let class_paths = if overrides.classes.is_empty() {
            lab.cluster.machine_classes.clone()
        } else {
            overrides.classes.clone()
        };
        let class_files = class_paths
            .iter()
            .map(|p| MachineClassFile::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LabSpec {
            lab,
            template,
            class_files,
        })
    }

    pub fn classes(&self) -> impl Iterator<Item = &MachineClass> {
        self.class_files.iter().flat_map(|f| f.classes.iter())
    }

    pub fn class(&self, id: &str) -> Option<&MachineClass> {
        self.classes().find(|c| c.id.value == id)
    }

    /// Every input file, for reports.
    pub fn input_files(&self) -> Vec<PathBuf> {
        let mut v = vec![self.lab.path.clone(), self.template.path.to_path_buf()];
        v.extend(self.class_files.iter().map(|f| f.path.to_path_buf()));
        v
    }
}
