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
    /// False when a template and classes are linted without a lab file: `lab` is then
    /// [`LabFile::none`] and checks that compare with the lab (the provider id) leave it out.
    pub lab_given: bool,
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
            lab_given: true,
            template,
            class_files,
        })
    }

    /// A cluster template and machine classes without a lab file (`clusterproof lint
    /// --template T` in a user's repository). `classes` may be empty: then no class is known,
    /// and the template's class references are reported as unchecked.
    pub fn load_without_lab(template: &Path, classes: &[PathBuf]) -> Result<Self, SpecError> {
        let template_doc = ClusterTemplate::load(template)?;
        let class_files = classes
            .iter()
            .map(|p| MachineClassFile::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LabSpec {
            lab: LabFile::none(template, classes),
            lab_given: false,
            template: template_doc,
            class_files,
        })
    }

    pub fn classes(&self) -> impl Iterator<Item = &MachineClass> {
        self.class_files.iter().flat_map(|f| f.classes.iter())
    }

    pub fn class(&self, id: &str) -> Option<&MachineClass> {
        self.classes().find(|c| c.id.value == id)
    }

    /// Every VM the template will have the provider create, in the order Omni asks for them
    /// (control planes first). Sets with an unknown class or an `unlimited` size are left out;
    /// the second value lists why each was left out.
    pub fn planned_vms(&self) -> (Vec<crate::model::placement::PlannedVm>, Vec<String>) {
        use crate::model::template::SetKind;
        let cluster = self.template.cluster_name().unwrap_or("cluster");
        let mut vms = Vec::new();
        let mut skipped = Vec::new();
        for set in self.template.machine_sets() {
            let Some(class_name) = set.machine_class.as_ref().and_then(|m| m.name.as_ref()) else {
                continue;
            };
            let Some(pd) = self
                .class(&class_name.value)
                .and_then(|c| c.auto_provision.as_ref())
                .and_then(|a| a.provider_data.as_ref())
            else {
                skipped.push(format!(
                    "{}: machine class {} has no usable providerdata",
                    set.machine_set_id(cluster),
                    class_name.value
                ));
                continue;
            };
            let Some(count) = set.planned_count() else {
                skipped.push(format!(
                    "{}: size is unlimited, so the number of VMs is unknown",
                    set.machine_set_id(cluster)
                ));
                continue;
            };
            for i in 1..=count {
                vms.push(crate::model::placement::PlannedVm {
                    label: format!("{} #{i}", set.machine_set_id(cluster)),
                    set: set.machine_set_id(cluster),
                    class: class_name.value.clone(),
                    control_plane: set.kind == SetKind::ControlPlane,
                    memory: pd.memory_mib() << 20,
                    disk: pd.disk_gib() << 30,
                    selector: pd.storage_selector.as_ref().map(|s| s.value.clone()),
                    pin: pd.node.as_ref().map(|n| n.value.clone()),
                });
            }
        }
        (vms, skipped)
    }

    /// Every input file, for reports.
    pub fn input_files(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if self.lab_given {
            v.push(self.lab.path.clone());
        }
        v.push(self.template.path.to_path_buf());
        v.extend(self.class_files.iter().map(|f| f.path.to_path_buf()));
        v
    }
}

/// How many folders above the template's own folder [`find_machine_classes`] looks.
pub const CLASS_SEARCH_LEVELS: usize = 3;

/// Where a template's machine classes were looked for, and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassSearch {
    /// The first `machine-classes/` folder found, and its YAML files (sorted).
    Found { dir: PathBuf, files: Vec<PathBuf> },
    /// No such folder (or only empty ones) in any of these folders.
    NotFound { looked_in: Vec<PathBuf> },
}

/// The machine classes of a template given without `--classes` or a lab file, where
/// repositories keep them: a `machine-classes/` folder in the template's folder or in a
/// folder above it — at most [`CLASS_SEARCH_LEVELS`] up, and never above the repository root
/// (the folder holding `.git`). The first folder with YAML files wins; its `*.yaml` and
/// `*.yml` files are the classes.
pub fn find_machine_classes(template: &Path) -> ClassSearch {
    let start = template
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let start = std::fs::canonicalize(start).unwrap_or_else(|_| start.to_path_buf());
    let mut looked_in = Vec::new();
    for folder in start.ancestors().take(CLASS_SEARCH_LEVELS + 1) {
        looked_in.push(folder.to_path_buf());
        let dir = folder.join("machine-classes");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml")
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !files.is_empty() {
            files.sort();
            return ClassSearch::Found { dir, files };
        }
        if folder.join(".git").exists() {
            break;
        }
    }
    ClassSearch::NotFound { looked_in }
}
