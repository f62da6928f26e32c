# Sourced by the bench scripts: `results_file STEM` prints a path in integration/bench for
# a --save: STEM.txt, or STEM-2.txt, STEM-3.txt, ... when the day already has one, so a
# second saved run of the day never overwrites the first (README figures cite those files).
results_file() {
    local stem="integration/bench/$1" n=2
    if [ ! -e "$stem.txt" ]; then
        echo "$stem.txt"
        return
    fi
    while [ -e "$stem-$n.txt" ]; do
        n=$((n + 1))
    done
    echo "$stem-$n.txt"
}
