//! Starting the agents under test: vipd (optionally with BFD) or keepalived, with the
//! same priorities, interval and VIP.

#[allow(unused_imports)]
use super::*;

/// The vipd configuration of `host` with `instances` (state directory created here).
pub fn vipd_conf(
    topo: &Topology,
    host: &str,
    instances: Vec<VipdInstance>,
    metrics: bool,
) -> String {
    let _ = std::fs::create_dir_all(topo.path(&format!("{host}-state")));
    let mut c = VipdConfig::new(topo, host);
    if !metrics {
        c = c.without_metrics();
    }
    instances.into_iter().fold(c, VipdConfig::instance).render()
}

/// Instance `web`: VRID 51, `prio`, the VIP, adverts every `iv`, preempting.
pub fn web(prio: u8, iv: Duration) -> VipdInstance {
    VipdInstance::new("web", 51, prio, &[&format!("{VIP}/24")])
        .interval(&interval_label(iv))
        .line("preempt = true")
}

/// The file keepalived's `track_file maint` watches (maintenance scenario).
pub fn maint_file(topo: &Topology, host: &str) -> PathBuf {
    topo.path(&format!("{host}-maint"))
}

pub fn keepalived_cfg(topo: &Topology, host: &str, prio: u8, iv: Duration, vmac: bool) -> String {
    let f = maint_file(topo, host);
    let _ = std::fs::write(&f, "0\n");
    let mut inst = KeepalivedInstance::new("web", 51, prio)
        .advert_int(iv)
        .vip(&format!("{VIP}/24"))
        .line("track_file {\n        maint weight -100\n    }");
    if vmac {
        inst = inst.line("use_vmac");
    }
    let conf = keepalived_conf(&[inst]);
    // keepalived's nearest equivalent of `vipctl maintenance on`: a tracked file whose value
    // (0 or 1) times the weight (-100) is added to the priority, applied without a reload.
    let track = format!("track_file maint {{\n    file \"{}\"\n}}\n\n", f.display());
    conf.replacen("vrrp_instance", &format!("{track}vrrp_instance"), 1)
}

pub fn start(topo: &Topology, ag: Ag, host: &str, prio: u8, iv: Duration) -> Agent {
    let conf = match ag {
        Ag::Vipd => vipd_conf(topo, host, vec![web(prio, iv)], false),
        Ag::VipdBfd10 | Ag::VipdBfd3 => {
            let other = if host == "lb1" { "lb2" } else { "lb1" };
            let bfd = ag.bfd().unwrap_or(ms(10));
            let web = web(prio, iv)
                .unicast(&[topo.ip4(other).into()])
                .line("[instance.bfd]")
                .line(&format!("interval = \"{}ms\"", bfd.as_millis()))
                .line("multiplier = 3");
            vipd_conf(topo, host, vec![web], false)
        }
        Ag::VipdVmac => vipd_conf(
            topo,
            host,
            vec![web(prio, iv).line("virtual-mac = true")],
            false,
        ),
        Ag::Keepalived => keepalived_cfg(topo, host, prio, iv, false),
        Ag::KeepalivedVmac => keepalived_cfg(topo, host, prio, iv, true),
    };
    topo.start_agent(host, ag.kind(), &conf)
}
