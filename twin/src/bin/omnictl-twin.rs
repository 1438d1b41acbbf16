//! `omnictl-twin`: the twin's stand-in for `omnictl` (see `twin::omni::shim`).
fn main() {
    std::process::exit(twin::omni::shim::main_with(
        std::env::args().skip(1).collect(),
        twin::omni::shim::Env::from_process(),
    ));
}
