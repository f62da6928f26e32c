//! Starting the agents under test: vipd (optionally with BFD) or keepalived, with the
//! same priorities, interval and VIP.

#[allow(unused_imports)]
use super::*;

pub(crate) fn vipd_conf(
    topo: &Topology,
    host: &str,
    prio: u8,
    iv: Duration,
    metrics: bool,
) -> String {
    let state = topo.path(&format!("{host}-state"));
    let _ = std::fs::create_dir_all(&state);
    let mut s = format!(
        "control-socket = \"{}\"\nstate-dir = \"{}\"\n",
        topo.path(&format!("{host}-vipd.sock")).display(),
        state.display()
    );
    if metrics {
        s.push_str("metrics-listen = \"127.0.0.1:9638\"\n");
    }
    let _ = write!(
        s,
        "\n[[instance]]\nname = \"web\"\ninterface = \"eth0\"\nvrid = 51\npriority = {prio}\n\
         advert-interval = \"{}\"\nvips = [\"{VIP}/24\"]\npreempt = true\n",
        interval_label(iv)
    );
    s
}

/// The file keepalived's `track_file maint` watches (maintenance scenario).
pub(crate) fn maint_file(topo: &Topology, host: &str) -> PathBuf {
    topo.path(&format!("{host}-maint"))
}

pub(crate) fn keepalived_cfg(topo: &Topology, host: &str, prio: u8, iv: Duration) -> String {
    let f = maint_file(topo, host);
    let _ = std::fs::write(&f, "0\n");
    let conf = keepalived_conf(&[KeepalivedInstance::new("web", 51, prio)
        .advert_int(iv)
        .vip(&format!("{VIP}/24"))
        .line("track_file {\n        maint weight -100\n    }")]);
    // keepalived's nearest equivalent of `vipctl maintenance on`: a tracked file whose value
    // (0 or 1) times the weight (-100) is added to the priority, applied without a reload.
    let track = format!("track_file maint {{\n    file \"{}\"\n}}\n\n", f.display());
    conf.replacen("vrrp_instance", &format!("{track}vrrp_instance"), 1)
}

pub(crate) fn start(topo: &Topology, ag: Ag, host: &str, prio: u8, iv: Duration) -> Agent {
    let conf = match ag {
        Ag::Vipd => vipd_conf(topo, host, prio, iv, false),
        Ag::VipdBfd10 | Ag::VipdBfd3 => {
            let other = if host == "lb1" { "lb2" } else { "lb1" };
            let bfd = ag.bfd().unwrap_or(ms(10));
            format!(
                "{}unicast-peers = [\"{}\"]\n[instance.bfd]\ninterval = \"{}ms\"\nmultiplier = 3\n",
                vipd_conf(topo, host, prio, iv, false),
                topo.ip4(other),
                bfd.as_millis()
            )
        }
        Ag::Keepalived => keepalived_cfg(topo, host, prio, iv),
    };
    topo.start_agent(host, ag.kind(), &conf)
}
