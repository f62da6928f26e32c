# Shell helpers for scripts that build their own network namespaces (POSIX sh; source it).

# netns_purge NS...: ends every process inside each namespace, by pid (`ip netns del` does
# not end them), then deletes the namespace. Quiet about namespaces that are already gone.
netns_purge() {
    for ns in "$@"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
}
