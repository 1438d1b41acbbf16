//! The twin's VM creation, as the Omni Proxmox provider does it: node by most free memory
//! fraction (or the pin), storage by the first selector match in API order, RAM and disk
//! consumed and visible through the API, the provider's own error texts.

use std::time::Duration;

use harness::model::lab::{Proxmox as ProxmoxLab, SecretSource, Tls};
use harness::model::selector::StorageSelector;
use harness::proxmox::ProxmoxClient;
use twin::faults::Fault;
use twin::proxmox::{ProxmoxSpec, ProxmoxTwin, VmRequest, default_inventory};

async fn twin(faults: Vec<Fault>) -> ProxmoxTwin {
    ProxmoxTwin::start(ProxmoxSpec {
        inventory: default_inventory(),
        token_id: "t@pve!x".into(),
        token_secret: "s".into(),
        faults,
        time_scale: 0.01,
        timing: Default::default(),
        ha_managed: false,
        placement: Default::default(),
    })
    .await
    .unwrap()
}

fn client(t: &ProxmoxTwin, dir: &tempfile::TempDir) -> ProxmoxClient {
    let f = dir.path().join("s");
    std::fs::write(&f, "s").unwrap();
    ProxmoxClient::new(
        &ProxmoxLab {
            url: t.url(),
            token_id: "t@pve!x".into(),
            token_secret: SecretSource::File(f),
            tls: Tls::Insecure,
        },
        Duration::from_secs(5),
    )
    .unwrap()
}

fn req(name: &str, mem: u64, sel: &str, pin: Option<&str>) -> VmRequest {
    VmRequest {
        name: name.into(),
        uuid: format!("00000000-0000-4000-8000-{:012}", name.len()),
        cores: 2,
        memory_mib: mem,
        disk_gib: 40,
        selector: StorageSelector::compile(sel).unwrap(),
        pin: pin.map(Into::into),
        tag: "machine-request.talos-prod-01-workers".into(),
    }
}

#[tokio::test]
async fn vms_land_on_the_freest_host_and_consume_ram_and_disk() {
    let t = twin(vec![]).await;
    let d = tempfile::tempdir().unwrap();
    let c = client(&t, &d);
    // golf runs a 4 GiB VM, so foxtrot (7 GiB used) and hotel (6 GiB) are freer: hotel first.
    let a = t
        .create_vm(&req("w-a", 16384, r#"name == "vm_ssd""#, None))
        .unwrap();
    assert_eq!((a.node.as_str(), a.storage.as_str()), ("hotel", "vm_ssd"));
    let before = c
        .node_storage("foxtrot")
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.storage == "vm_ssd")
        .unwrap()
        .avail
        .unwrap();
    let b = t
        .create_vm(&req("w-b", 16384, r#"name == "vm_ssd""#, None))
        .unwrap();
    assert_eq!(b.node, "foxtrot");
    let after = c
        .node_storage("foxtrot")
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.storage == "vm_ssd")
        .unwrap()
        .avail
        .unwrap();
    assert_eq!(
        before - after,
        40 << 30,
        "a shared storage loses the disk on every host"
    );
    assert_eq!(
        c.node_status("hotel").await.unwrap().memory.used,
        Some((6 + 16) << 30)
    );
    let vm = c.vm_config(&b.node, b.vmid).await.unwrap();
    assert_eq!(vm["smbios1"], "uuid=00000000-0000-4000-8000-000000000003");
    assert_eq!(vm["name"], "w-b");
    assert_eq!(t.vm_by_name("w-a"), Some((a.vmid, "hotel".into())));
    // A pin wins; a local storage is consumed on that host only.
    let p = t
        .create_vm(&req("cp", 8192, r#"name == "local-lvm""#, Some("golf")))
        .unwrap();
    assert_eq!((p.node.as_str(), p.storage.as_str()), ("golf", "local-lvm"));
    assert!(t.delete_vm(b.vmid));
    let back = c
        .node_storage("foxtrot")
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.storage == "vm_ssd")
        .unwrap()
        .avail
        .unwrap();
    assert_eq!(back, before);
}

/// Proxmox reserves no RAM for a VM: what refuses a start is the host kernel's commit limit
/// (heuristic overcommit: guest memory beyond RAM + swap), with QEMU's own words. A VM that
/// is larger than the host's free memory but within that limit starts.
#[tokio::test]
async fn a_vm_larger_than_its_hosts_ram_and_swap_does_not_start() {
    let t = twin(vec![]).await;
    let d = tempfile::tempdir().unwrap();
    let c = client(&t, &d);
    let mem = c.node_status("golf").await.unwrap().memory;
    let (total, used) = (mem.total.unwrap(), mem.used.unwrap());
    let mib = |bytes: u64| bytes >> 20;
    let e = t
        .create_vm(&req(
            "huge",
            mib(total) * 2,
            r#"name == "local-lvm""#,
            Some("golf"),
        ))
        .unwrap_err();
    assert_eq!(
        e,
        "VM huge on golf: kvm: cannot set up guest memory 'pc.ram': Cannot allocate memory\n\
         start failed: QEMU exited with code 1"
    );
    assert_eq!(t.vm_by_name("huge"), None, "nothing was left behind");
    assert_eq!(c.node_status("golf").await.unwrap().memory.used, Some(used));
    // Beyond what is free, within RAM: overcommitted, and it runs.
    let over = mib(total - used) + 1024;
    let vm = t
        .create_vm(&req("over", over, r#"name == "local-lvm""#, Some("golf")))
        .unwrap();
    assert_eq!(vm.node, "golf");
    assert_eq!(
        c.node_status("golf").await.unwrap().memory.used,
        Some(total),
        "the host's RAM is all in use (the rest would be in swap)"
    );
}

#[tokio::test]
async fn provider_errors_have_the_providers_words() {
    let t = twin(vec![Fault::StorageMissing]).await;
    let e = t
        .create_vm(&req("w", 1024, r#"name == "vm_ssd""#, None))
        .unwrap_err();
    assert_eq!(
        e,
        r#"failed to pick the disk: no matches for the condition "name == \"vm_ssd\"""#
    );
    assert_eq!(
        t.create_vm(&req("w", 1024, r#"name == "local""#, Some("zulu")))
            .unwrap_err(),
        "specified node \"zulu\" not found in cluster"
    );
    t.set_node_online("golf", false);
    assert!(
        t.create_vm(&req("w", 1024, r#"name == "local""#, None))
            .unwrap_err()
            .contains("failed to get node \"golf\""),
        "a down host blocks auto-placement"
    );
    let inactive = twin(vec![Fault::StorageInactive]).await;
    assert_eq!(
        inactive
            .create_vm(&req("w", 1024, r#"name == "vm_ssd""#, None))
            .unwrap_err(),
        "storage 'vm_ssd' is not online"
    );
}

#[tokio::test]
async fn vms_inherit_their_hosts_resolvers() {
    assert_eq!(twin(vec![]).await.host_dns("golf"), ["127.0.53.1"]);
    assert_eq!(
        twin(vec![Fault::DnsPublicOnHosts]).await.host_dns("golf"),
        ["1.1.1.1", "8.8.8.8"]
    );
}
