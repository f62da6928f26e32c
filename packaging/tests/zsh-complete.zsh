#!/usr/bin/zsh -f
# Usage: zsh-complete.zsh DIR LINE
# Types LINE (keep its trailing space) followed by TAB in an interactive zsh (under zsh/zpty) whose fpath starts with
# DIR, and prints what the completion system listed, escape sequences removed. Used by
# .ci/check-deb to check the installed zsh completions complete, not just parse.
emulate -L zsh
setopt extendedglob
dir=$1 line=$2
zmodload zsh/zpty || exit 2
zpty z zsh -f -i
zpty -w z "PS1='> '; fpath=($dir \$fpath); autoload -Uz compinit; compinit -u -d ${TMPDIR:-/tmp}/zcompdump-\$\$"
zpty -w z "zstyle ':completion:*' list-prompt ''; zstyle ':completion:*' menu no; LISTMAX=1000"
zpty -w z "$line"$'\t'
sleep 1
out=
# Bounded: at most 500 reads, each waiting at most a moment (-t: no blocking).
for _ in {1..500}; do
    zpty -r -t z chunk || break
    out+=$chunk
done
zpty -d z
print -r -- "${out//$'\e'\[[0-9;?]#[A-Za-z]/}"
