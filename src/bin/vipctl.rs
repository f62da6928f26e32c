//! vipctl: the operator's command for vipd.
fn main() {
    eprintln!("error: vipctl is being built");
    std::process::exit(1);
}
