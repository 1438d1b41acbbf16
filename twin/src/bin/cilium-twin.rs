//! `cilium-twin`: the twin's stand-in for the `cilium` CLI (see `twin::cilium`).

#[tokio::main]
async fn main() {
    std::process::exit(twin::cilium::main_with(std::env::args().skip(1).collect()).await);
}
