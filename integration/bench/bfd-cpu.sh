#!/usr/bin/env bash
# Idle CPU of one BFD session: two vipd (lb1, lb2) in network namespaces, unicast peers,
# VRRP adverts every 1 s, one `[instance.bfd]` session at 3 ms x 3 and at 10 ms x 3, Up
# and idle (no failover) for a window; beside keepalived in the same run, at the same
# BFD timers (its `bfd_instance` tracked by a `vrrp_instance` at 1 s adverts), and beside
# the kernel's floor: `floor` is the example `bfd-floor` (integration/bench/bfd-floor),
# which does per tick only one sendto and one recvfrom of a 24-byte datagram to the peer's
# port 3784, at vipd's packet rate (1 / (0.875 x interval) per side: BFD's 0..25 % jitter),
# in the same namespaces, so vipd's figure can be read against what the path costs alone.
#
#   integration/bench/bfd-cpu.sh                      # 5 runs x (3 ms, 10 ms), 30 s windows
#   integration/bench/bfd-cpu.sh --runs 3 --secs 10 --intervals 3
#   integration/bench/bfd-cpu.sh --agents vipd,floor  # without keepalived
#   integration/bench/bfd-cpu.sh --switch plain       # no nftables chain on the switch
#   integration/bench/bfd-cpu.sh --save               # also integration/bench/results-<date>-bfd-cpu.txt
#   integration/bench/bfd-cpu.sh --logs DIR           # keep every agent's log in DIR
#
# CPU = time on a CPU of the whole process family over the window (the scheduler's exact
# sum over all threads, /proc/PID/task/*/schedstat, which is what utime+stime add up to;
# vipd is one process with its threads, keepalived is parent + VRRP child + BFD child),
# per side, as a percentage of one core, split into user and system time in the ratio of
# /proc/PID/stat's tick samples. It counts only the agent's own work, so it stays
# meaningful on a loaded machine (the load is printed). Wake-ups = voluntary +
# involuntary context switches of all threads (/proc/PID/task/*/status) per second.
# Packets per second are counted on the switch (nftables), to check the real rate; with
# `--switch plain` there is no nftables chain on the switch (it adds to the senders' cost,
# since the bridge forwards in their softirq) and the rate is the switch ports' frame
# counters (BFD and the 1 s adverts).
#
# Needs root (network namespaces; nothing touches the machine's own interfaces), `ip`,
# `nft`, and keepalived for the comparison. VIPD_BIN / VIPCTL_BIN override the binaries
# (default: a release build, made here).
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=5
secs=30
intervals="3,10"
agents="vipd,keepalived,floor"
switch=nft
save=0
logs=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --secs) secs=$2; shift 2 ;;
        --intervals) intervals=$2; shift 2 ;;
        --agents) agents=$2; shift 2 ;;
        --switch) switch=$2; shift 2 ;;
        --save) save=1; shift ;;
        --logs) logs=$2; mkdir -p "$logs"; shift 2 ;;
        -h|--help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bfd-cpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$switch" in nft|plain) ;; *) echo "bfd-cpu.sh: --switch nft or plain" >&2; exit 2 ;; esac
if [ "$(id -u)" -ne 0 ]; then
    echo "bfd-cpu.sh: needs root (network namespaces)" >&2
    exit 1
fi
if [ "$save" -eq 1 ]; then
    . integration/bench/results-file.sh
    out="$(results_file "results-$(date -u +%Y-%m-%d)-bfd-cpu")"
    args=()
    [ "$runs" != 5 ] && args+=(--runs "$runs")
    [ "$secs" != 30 ] && args+=(--secs "$secs")
    [ "$intervals" != "3,10" ] && args+=(--intervals "$intervals")
    [ "$agents" != "vipd,keepalived,floor" ] && args+=(--agents "$agents")
    [ "$switch" != nft ] && args+=(--switch "$switch")
    "$0" "${args[@]}" 2>&1 | tee "$out"
    echo "saved to $out"
    exit 0
fi

target="${CARGO_TARGET_DIR:-$PWD/target}"
if [ -z "${VIPD_BIN:-}" ]; then
    cargo build --release --bin vipd --bin vipctl --example bfd-floor 2>&1 | grep -v '^\s*\(Compiling\|Finished\)' || true
    VIPD_BIN="$target/release/vipd"
    VIPCTL_BIN="$target/release/vipctl"
    FLOOR_BIN="$target/release/examples/bfd-floor"
fi
VIPCTL_BIN="${VIPCTL_BIN:-$(dirname "$VIPD_BIN")/vipctl}"
FLOOR_BIN="${FLOOR_BIN:-$(dirname "$VIPD_BIN")/examples/bfd-floor}"

id="bc$$"
sw="$id-sw"
dir=$(mktemp -d "/tmp/vipd-bfdcpu-$id.XXXX")
hosts=(lb1 lb2)
declare -A ip=([lb1]=192.0.2.11 [lb2]=192.0.2.12)
pids=()

cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for ns in "$sw" "$id-lb1" "$id-lb2"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

ip netns add "$sw"
ip -n "$sw" link set lo up
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
for h in "${hosts[@]}"; do
    ns="$id-$h"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$sw" link add "p-$h" type veth peer name eth0 netns "$ns"
    ip -n "$sw" link set "p-$h" master br0 up
    ip -n "$ns" addr add "${ip[$h]}/24" dev eth0
    ip -n "$ns" link set eth0 up
done
# The same switch path as the failover bench (a bridge-family forward chain), plus a
# counter of BFD control packets; or (--switch plain) a bare bridge.
if [ "$switch" = nft ]; then
    ip netns exec "$sw" nft -f - <<'EOF'
table bridge bfdcpu {
  chain harness {
    type filter hook forward priority 0; policy accept;
    udp dport 3784 counter
  }
}
EOF
fi

bfd_packets() {
    if [ "$switch" = nft ]; then
        ip netns exec "$sw" nft list chain bridge bfdcpu harness | sed -n 's/.*counter packets \([0-9]*\).*/\1/p' | head -1
    else
        local n=0 h
        for h in "${hosts[@]}"; do
            n=$((n + $(ip netns exec "$sw" cat "/sys/class/net/p-$h/statistics/rx_packets")))
        done
        echo "$n"
    fi
}

# Of a list of pids (all threads): clock ticks in user and system mode (/proc/PID/stat,
# sampled at the tick: only their ratio is used), nanoseconds on a CPU (the scheduler's
# exact sum, /proc/PID/task/*/schedstat; it includes softirq work done in the process's
# context, such as forwarding its packets over the veths and the bridge), and context
# switches.
usage() {
    local u=0 s=0 c=0 ns=0 p t
    for p in "$@"; do
        # Fields after the ") " of /proc/PID/stat: utime is the 12th, stime the 13th.
        read -r -a f < <(sed 's/^.*) //' "/proc/$p/stat")
        u=$((u + f[11])); s=$((s + f[12]))
        for t in /proc/"$p"/task/*; do
            c=$((c + $(awk '/^(voluntary|nonvoluntary)_ctxt_switches/ {n += $2} END {print n+0}' "$t/status")))
            read -r r _ < "$t/schedstat"
            ns=$((ns + r))
        done
    done
    echo "$u $s $c $ns"
}

# A process and its children (keepalived: parent + VRRP child + BFD child).
family() {
    local p=$1
    echo "$p"
    pgrep -P "$p" || true
}

vipd_conf() { # host peer prio interval_ms
    cat <<EOF
control-socket = "$dir/$1.sock"
state-dir = "$dir/$1-state"

[[instance]]
name = "web"
interface = "eth0"
vrid = 51
priority = $3
advert-interval = "1s"
vips = ["192.0.2.100/24"]
unicast-peers = ["${ip[$2]}"]
[instance.bfd]
interval = "$4ms"
multiplier = 3
EOF
}

keepalived_conf() { # host peer prio interval_ms
    cat <<EOF
global_defs {
    router_id $1
    enable_script_security
}
bfd_instance peer {
    neighbor_ip ${ip[$2]}
    source_ip ${ip[$1]}
    min_rx $4
    min_tx $4
    multiplier 3
}
vrrp_instance web {
    interface eth0
    state BACKUP
    virtual_router_id 51
    priority $3
    advert_int 1
    unicast_src_ip ${ip[$1]}
    unicast_peer {
        ${ip[$2]}
    }
    virtual_ipaddress {
        192.0.2.100/24
    }
    track_bfd {
        peer
    }
}
EOF
}

start() { # agent host peer prio interval_ms -> pid on stdout
    local ag=$1 h=$2 peer=$3 prio=$4 iv=$5 ns="$id-$2"
    case "$ag" in
        vipd)
            vipd_conf "$h" "$peer" "$prio" "$iv" > "$dir/$h.toml"
            mkdir -p "$dir/$h-state"
            ip netns exec "$ns" "$VIPD_BIN" -c "$dir/$h.toml" > "$dir/$h.log" 2>&1 &
            echo $!
            ;;
        floor)
            # vipd's rate: one packet per 0.875 x interval on average (0..25 % jitter).
            ip netns exec "$ns" "$FLOOR_BIN" "${ip[$h]}" "${ip[$peer]}" \
                "$(awk -v iv="$iv" 'BEGIN { printf "%.1f", 1000 / (0.875 * iv) }')" \
                > "$dir/$h.log" 2>&1 &
            echo $!
            ;;
        keepalived)
            keepalived_conf "$h" "$peer" "$prio" "$iv" > "$dir/$h.conf"
            rm -f "$dir/$h.pid"
            ip netns exec "$ns" keepalived -n -l -D -G -f "$dir/$h.conf" -p "$dir/$h.pid" \
                -r "$dir/$h-vrrp.pid" -b "$dir/$h-bfd.pid" > "$dir/$h.log" 2>&1 &
            echo $!
            ;;
    esac
}

# Whether both sides report the session Up.
is_up() { # agent
    case "$1" in
        vipd)
            for h in "${hosts[@]}"; do
                ip netns exec "$id-$h" "$VIPCTL_BIN" -s "$dir/$h.sock" status --json 2>/dev/null |
                    grep -q '"state":"up"' || return 1
            done
            ;;
        keepalived)
            # keepalived's BFD child logs "(peer) Entering Up state" (or Down, Init).
            for h in "${hosts[@]}"; do
                grep -E '\(peer\) Entering [A-Za-z]+ state' "$dir/$h.log" 2>/dev/null |
                    tail -n 1 | grep -q 'Entering Up state' || return 1
            done
            ;;
        floor)
            # No session: both senders running is all there is.
            for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || return 1; done
            ;;
    esac
}

# Session state changes away from Up logged so far by both sides.
downs() { # agent
    local pat='BFD session.* Up -> Down'
    [ "$1" = keepalived ] && pat='(peer) Entering Down state'
    [ "$1" = floor ] && { echo 0; return; }
    cat "$dir"/lb1.log "$dir"/lb2.log 2>/dev/null | grep -c "$pat" || true
}

stop_all() {
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    for h in "${hosts[@]}"; do
        for p in $(ip netns pids "$id-$h" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    done
    pids=()
}

hz=$(getconf CLK_TCK)
declare -A results rates
echo "# bfd-cpu: $(date -u +%Y-%m-%dT%H:%M:%SZ)  $(uname -r)  $(nproc) CPUs  git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "# $runs runs x ${secs} s idle windows, BFD x3, VRRP adverts 1 s; agents: $agents; intervals (ms): $intervals; switch: $switch"
echo "# vipd: $VIPD_BIN"
command -v keepalived >/dev/null && echo "# $(keepalived --version 2>&1 | head -1)"
for run in $(seq "$runs"); do
    for iv in ${intervals//,/ }; do
        for ag in ${agents//,/ }; do
            if [ "$ag" = keepalived ] && ! command -v keepalived >/dev/null; then
                echo "keepalived not installed: skipped" >&2
                continue
            fi
            p1=$(start "$ag" lb1 lb2 150 "$iv"); pids+=("$p1")
            p2=$(start "$ag" lb2 lb1 100 "$iv"); pids+=("$p2")
            ok=0
            for _ in $(seq 300); do
                if is_up "$ag"; then ok=1; break; fi
                sleep 0.1
            done
            if [ "$ok" -ne 1 ]; then
                echo "run $run ${iv}ms $ag: the session never came Up; logs:" >&2
                tail -n 20 "$dir"/lb1.log "$dir"/lb2.log >&2
                stop_all
                continue
            fi
            sleep 3 # settle: the Poll Sequence to the fast interval, VRRP election
            f1=$(family "$p1" | tr '\n' ' '); f2=$(family "$p2" | tr '\n' ' ')
            # shellcheck disable=SC2086
            read -r u1a s1a c1a n1a < <(usage $f1)
            # shellcheck disable=SC2086
            read -r u2a s2a c2a n2a < <(usage $f2)
            pk_a=$(bfd_packets); t_a=$(date +%s.%N); downs_a=$(downs "$ag")
            load=$(cut -d' ' -f1 /proc/loadavg)
            sleep "$secs"
            # shellcheck disable=SC2086
            read -r u1b s1b c1b n1b < <(usage $f1)
            # shellcheck disable=SC2086
            read -r u2b s2b c2b n2b < <(usage $f2)
            pk_b=$(bfd_packets); t_b=$(date +%s.%N)
            # Still Up at the end, and no session went down in the window? (a flap would
            # make the figure meaningless)
            up_end="up"; is_up "$ag" || up_end="NOT UP"
            downs_b=$(downs "$ag")
            [ "$downs_b" -gt "$downs_a" ] && up_end="WENT DOWN $((downs_b - downs_a))x in the window"
            if [ -n "$logs" ]; then
                for h in "${hosts[@]}"; do cp "$dir/$h.log" "$logs/run$run-${iv}ms-$ag-$h.log"; done
            fi
            line=$(awk -v hz="$hz" -v w="$(echo "$t_b - $t_a" | bc)" \
                -v u1=$((u1b - u1a)) -v s1=$((s1b - s1a)) -v c1=$((c1b - c1a)) \
                -v u2=$((u2b - u2a)) -v s2=$((s2b - s2a)) -v c2=$((c2b - c2a)) \
                -v n1=$((n1b - n1a)) -v n2=$((n2b - n2a)) \
                -v pk=$((pk_b - pk_a)) 'BEGIN {
                    p1 = n1 / 1e9 / w * 100; p2 = n2 / 1e9 / w * 100
                    # user/system split of the exact figure, in the ratio of the tick samples
                    f1 = (u1 + s1) ? u1 / (u1 + s1) : 0; f2 = (u2 + s2) ? u2 / (u2 + s2) : 0
                    printf "%.2f %.2f %.2f %.2f %.2f %.2f %.0f %.0f %.0f", p1, p2,
                        p1 * f1, p1 * (1 - f1), p2 * f2, p2 * (1 - f2),
                        c1 / w, c2 / w, pk / w }')
            read -r cpu1 cpu2 us1 sy1 us2 sy2 wk1 wk2 pps <<< "$line"
            printf 'run %d  %3sms  %-10s  lb1 %5.2f %% (user %.2f sys %.2f, %5d wake-ups/s)  lb2 %5.2f %% (user %.2f sys %.2f, %5d wake-ups/s)  %5d BFD pkt/s  load %s  %s\n' \
                "$run" "$iv" "$ag" "$cpu1" "$us1" "$sy1" "$wk1" "$cpu2" "$us2" "$sy2" "$wk2" "$pps" "$load" "$up_end"
            results["$ag $iv"]+="$cpu1 $cpu2 "
            rates["$ag $iv"]+="$pps "
            stop_all
        done
    done
done

summary() { # values... -> "median min max"
    printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {
        if (NR == 0) { print "- - -"; exit }
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        printf "%.2f %.2f %.2f\n", m, a[1], a[NR] }'
}
echo
echo "== idle CPU of one BFD session, % of one core per side (both sides pooled): median (min..max) =="
for iv in ${intervals//,/ }; do
    vm=""
    for ag in ${agents//,/ }; do
        [ -n "${results["$ag $iv"]:-}" ] || continue
        # shellcheck disable=SC2086
        read -r m lo hi < <(summary ${results["$ag $iv"]})
        # shellcheck disable=SC2086
        read -r r _ _ < <(summary ${rates["$ag $iv"]})
        extra=""
        if [ "$ag" = vipd ]; then
            vm=$m
            goal=""
            [ "$iv" = 3 ] && goal=$(awk -v m="$m" 'BEGIN { print (m < 1.0) ? "  goal < 1 %: met" : "  goal < 1 %: NOT met" }')
            extra=$goal
        elif [ -n "$vm" ]; then
            extra=$(awk -v v="$vm" -v k="$m" -v ag="$ag" 'BEGIN { if (k > 0) printf "  (vipd / %s = %.2f)", ag, v / k }')
        fi
        if [ "$ag" = floor ]; then
            extra+=$(awk -v v="$vm" -v k="$m" -v iv="$iv" 'BEGIN {
                if (v != "") printf ", vipd above the floor by %+.2f points", v - k
                if (iv == 3 && k >= 1.0) printf "; the floor alone is over the 1 %% goal"
            }')
        fi
        printf '  %3sms x3  %-10s  %5.2f %% (%.2f..%.2f)  at %4.0f BFD pkt/s%s\n' "$iv" "$ag" "$m" "$lo" "$hi" "$r" "$extra"
    done
done
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
