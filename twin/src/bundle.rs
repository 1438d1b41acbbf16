//! The fixtures the twin and `clusterproof lint` need, embedded in the binary so it runs
//! anywhere (no source tree): `fixtures/seed/**` (the seed lab: lab file, cluster template,
//! machine classes) and `fixtures/twin/**` (the Proxmox inventory, the Gateway API CRDs,
//! Omni's providerdata schema).
//!
//! What a client reads as a file (the lab file, template and classes read by the harness and
//! by `omnictl apply -f`, the CRDs read by `cilium`) is written out with [`write`] into a
//! directory the caller owns, keeping the source tree's layout (`<dir>/fixtures/seed/…`);
//! the Proxmox inventory is read straight from the binary ([`file`]).

use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};

static SEED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../fixtures/seed");
static TWIN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../fixtures/twin");

/// An embedded file by its path in the source tree, e.g. `fixtures/twin/proxmox/nodes.json`.
pub fn file(path: &str) -> Option<&'static [u8]> {
    let (tree, rel) = if let Some(rel) = path.strip_prefix("fixtures/seed/") {
        (&SEED, rel)
    } else if let Some(rel) = path.strip_prefix("fixtures/twin/") {
        (&TWIN, rel)
    } else {
        return None;
    };
    tree.get_file(rel).map(|f| f.contents())
}

/// Where [`write`] put the fixtures: `<dir>/fixtures`.
#[derive(Debug, Clone)]
pub struct Fixtures {
    root: PathBuf,
}

impl Fixtures {
    /// A file of the seed lab, e.g. `seed("clusters/talos-prod-01.yaml")`.
    pub fn seed(&self, rel: &str) -> PathBuf {
        self.root.join("seed").join(rel)
    }

    /// The seed lab file (`fixtures/seed/lab.toml`).
    pub fn seed_lab(&self) -> PathBuf {
        self.seed("lab.toml")
    }

    /// A file of the twin's fixtures, e.g. `twin("gateway-api/standard-install.yaml")`.
    pub fn twin(&self, rel: &str) -> PathBuf {
        self.root.join("twin").join(rel)
    }
}

/// Write the embedded `fixtures/seed` and `fixtures/twin` into `dir/fixtures/`.
pub fn write(dir: &Path) -> std::io::Result<Fixtures> {
    let root = dir.join("fixtures");
    for (name, tree) in [("seed", &SEED), ("twin", &TWIN)] {
        let to = root.join(name);
        std::fs::create_dir_all(&to)?;
        tree.extract(&to)?;
    }
    Ok(Fixtures { root })
}

/// The bundled seed lab, written to a temporary directory named `clusterproof-bundled-*`
/// (removed when this is dropped): what `clusterproof lint` lints with no arguments.
pub struct SeedLab {
    _dir: tempfile::TempDir,
    pub fixtures: Fixtures,
}

impl SeedLab {
    pub fn write() -> std::io::Result<SeedLab> {
        let dir = tempfile::Builder::new()
            .prefix("clusterproof-bundled-")
            .tempdir()?;
        let fixtures = write(dir.path())?;
        Ok(SeedLab {
            _dir: dir,
            fixtures,
        })
    }

    pub fn lab(&self) -> PathBuf {
        self.fixtures.seed_lab()
    }
}
