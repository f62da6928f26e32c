# bash completion for vipd(8)                                -*- shell-script -*-

_vipd()
{
    local cur prev words cword
    _init_completion || return

    case $prev in
        -c | --config)
            _filedir toml
            return
            ;;
        --log-format)
            COMPREPLY=($(compgen -W 'text json' -- "$cur"))
            return
            ;;
        import-keepalived)
            _filedir
            return
            ;;
        --host)
            return
            ;;
    esac

    if [[ " ${words[*]} " == *" import-keepalived "* ]]; then
        COMPREPLY=($(compgen -W '--host --help' -- "$cur"))
        return
    fi

    COMPREPLY=($(compgen -W '--config --check --log-format --version --help import-keepalived cleanup' -- "$cur"))
} &&
    complete -F _vipd vipd

# ex: filetype=sh
