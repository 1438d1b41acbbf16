//! Rebuild when a fixture is added, changed or removed: `src/bundle.rs` embeds
//! `fixtures/seed` and `fixtures/twin`, and `include_dir!` alone tracks only the files it saw
//! (Cargo scans a directory named here recursively).
fn main() {
    println!("cargo:rerun-if-changed=../fixtures/seed");
    println!("cargo:rerun-if-changed=../fixtures/twin");
}
