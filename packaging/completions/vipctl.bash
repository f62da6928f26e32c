# bash completion for vipctl(8)                              -*- shell-script -*-

# Instance names, read from the [[instance]] tables of the configuration
# (no daemon or socket access needed).
_vipctl_instances()
{
    local conf=${VIPD_CONFIG:-/etc/vipd/vipd.toml}
    [[ -r $conf ]] || return 0
    awk '
        /^[[:space:]]*\[\[instance\]\]/ { inst = 1; next }
        /^[[:space:]]*\[/               { inst = 0; next }
        inst && /^[[:space:]]*name[[:space:]]*=/ {
            sub(/^[^=]*=[[:space:]]*"/, ""); sub(/".*$/, ""); print
        }' "$conf" 2>/dev/null
}

_vipctl()
{
    local cur prev words cword
    _init_completion || return

    local i cmd="" sub="" nargs=0
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            -s | --socket) ((i++)) ;;
            -*) ;;
            *)
                if [[ -z $cmd ]]; then
                    cmd=${words[i]}
                elif [[ -z $sub && ($cmd == priority || $cmd == maintenance) ]]; then
                    sub=${words[i]}
                else
                    ((nargs++))
                fi
                ;;
        esac
    done

    case $prev in
        -s | --socket)
            _filedir
            return
            ;;
    esac

    if [[ $cur == -* ]]; then
        case $cmd in
            status | events) COMPREPLY=($(compgen -W '--json --help' -- "$cur")) ;;
            "") COMPREPLY=($(compgen -W '--socket --help --version' -- "$cur")) ;;
            *) COMPREPLY=($(compgen -W '--help' -- "$cur")) ;;
        esac
        return
    fi

    case $cmd in
        "")
            COMPREPLY=($(compgen -W 'status priority maintenance reload events help' -- "$cur"))
            ;;
        priority)
            if [[ -z $sub ]]; then
                COMPREPLY=($(compgen -W 'set clear' -- "$cur"))
            elif ((nargs == 0)); then
                COMPREPLY=($(compgen -W '$(_vipctl_instances)' -- "$cur"))
            fi
            ;;
        maintenance)
            if [[ -z $sub ]]; then
                COMPREPLY=($(compgen -W 'on off' -- "$cur"))
            elif ((nargs == 0)); then
                COMPREPLY=($(compgen -W '$(_vipctl_instances)' -- "$cur"))
            fi
            ;;
        help)
            ((nargs == 0)) &&
                COMPREPLY=($(compgen -W 'status priority maintenance reload events' -- "$cur"))
            ;;
    esac
} &&
    complete -F _vipctl vipctl

# ex: filetype=sh
