//! vipd: the virtual-IP failover daemon.
fn main() {
    eprintln!("error: vipd is being built");
    std::process::exit(1);
}
