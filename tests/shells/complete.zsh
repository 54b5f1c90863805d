# usage: zsh -f complete.zsh DIR 'command line to complete' (DIR holds _xdphints)
# Types the line into an interactive zsh on a pseudo-terminal, presses TAB, and
# prints every match the completion system was given, one per line.
# Its compadd wrapper records what the completion functions offer; comppostfuncs=(exit)
# ends the shell once the completion is done, so the pty reads to its end.
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PROMPT= RPROMPT=; fpath=($1 \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z 'compadd() {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
  local -a __hits; builtin compadd -A __hits "$@"
  local h; for h in $__hits; do print -r -- "<<MATCH>>$h"; done
  builtin compadd "$@"
}'
zpty -w z 'zstyle ":completion:*" list-prompt ""; zstyle ":completion:*" select-prompt ""; comppostfuncs=(exit)'
zpty -w z "print '<<READY>>'"
zpty -r z line '*<<READY>>*'
zpty -r z line '*<<READY>>*'
zpty -w -n z "$2"$'\t'
out=
while zpty -r z chunk; do out+=$chunk; done
print -r -- ${(F)${(M)${(f)out//$'\r'/}:#*<<MATCH>>*}##*<<MATCH>>}
zpty -d z
