//! Request accounting of the Proxmox twin: every HTTP request a client sends, counted by
//! method, path template (the API viewer's names for the path parameters:
//! `/nodes/{node}/qemu/{vmid}/status/current`) and HTTP status — also requests rejected with
//! 401 and paths outside `/api2/json` (which keep their raw path). POST, PUT and DELETE are
//! the mutating methods (pve-http-server maps them to create, set and delete handlers), so
//! a client that only looks (`--dry-run`) leaves [`crate::accounting::RequestCounts::mutating`]
//! at zero.

use crate::accounting::{Classify, RequestCounts};

/// One series: method, path template, status.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestKey {
    pub method: String,
    /// Below `/api2/json`, with path parameters named: `/nodes/{node}/qemu`.
    pub path: String,
    pub code: u16,
}

impl Classify for RequestKey {
    fn mutating(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "DELETE")
    }
}

/// A snapshot of the Proxmox twin's request counts.
pub type ProxmoxRequestCounts = RequestCounts<RequestKey>;

impl RequestCounts<RequestKey> {
    /// Requests with this method and path template (`"GET", "/nodes/{node}/qemu"`), any
    /// status.
    pub fn count(&self, method: &str, path: &str) -> u64 {
        self.matching(|k| k.method == method && k.path == path)
    }
}

/// The path template of an API path (below `/api2/json`): a segment that follows a
/// collection whose members are addressed by a parameter is that parameter.
pub(crate) fn template(path: &str) -> String {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let mut out = Vec::with_capacity(segs.len());
    for (i, seg) in segs.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| segs[j]);
        let before = i.checked_sub(2).map(|j| segs[j]);
        let param = match (before, prev) {
            (_, Some("nodes")) => Some("node"),
            (_, Some("qemu" | "lxc")) => Some("vmid"),
            (_, Some("tasks")) => Some("upid"),
            (_, Some("storage")) => Some("storage"),
            (_, Some("content")) => Some("volume"),
            (Some("ha"), Some("resources")) => Some("sid"),
            (Some("ha"), Some("groups")) => Some("group"),
            (_, Some("pools")) => Some("poolid"),
            _ => None,
        };
        match param {
            Some(p) => out.push(format!("{{{p}}}")),
            None => out.push((*seg).to_string()),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_templates() {
        for (path, want) in [
            ("/version", "/version"),
            ("/nodes", "/nodes"),
            ("/nodes/pve1/qemu", "/nodes/{node}/qemu"),
            (
                "/nodes/pve1/qemu/101/status/current",
                "/nodes/{node}/qemu/{vmid}/status/current",
            ),
            (
                "/nodes/pve2/tasks/UPID:pve2:0001:x:y:qmstart:101:root@pam:/status",
                "/nodes/{node}/tasks/{upid}/status",
            ),
            (
                "/nodes/pve1/storage/vm_ssd/status",
                "/nodes/{node}/storage/{storage}/status",
            ),
            ("/storage", "/storage"),
            ("/cluster/resources", "/cluster/resources"),
            (
                "/cluster/ha/resources/vm:101",
                "/cluster/ha/resources/{sid}",
            ),
        ] {
            assert_eq!(template(path), want, "{path}");
        }
        let post = RequestKey {
            method: "POST".into(),
            path: "/nodes/{node}/qemu".into(),
            code: 200,
        };
        assert!(post.mutating());
        assert!(
            !RequestKey {
                method: "GET".into(),
                ..post
            }
            .mutating()
        );
    }
}
