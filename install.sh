#!/bin/sh
# Install xdphints for every user of the machine, as root, without touching the
# distribution's Python (PEP 668): a virtual environment under /opt/xdphints made by
# the python3 first on PATH, the command linked into /usr/local/bin, the shell
# completions and the man page where bash-completion, zsh, fish and man look for them,
# and the systemd unit xdphints-apply.service (installed, not enabled) with an example
# hints file beside /etc/xdphints/hints.toml. XDPHINTS_VENV and PREFIX move the first
# two; SYSTEMD_UNIT_DIR the unit (default: $PREFIX/lib/systemd/system where systemd
# looks, for PREFIX /usr/local or /usr, else /etc/systemd/system).
set -eu
cd "$(dirname "$0")"
venv=${XDPHINTS_VENV:-/opt/xdphints}
prefix=${PREFIX:-/usr/local}
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check .
mkdir -p "$prefix/bin"
ln -sf "$venv/bin/xdphints" "$prefix/bin/xdphints"
install -Dm644 completions/xdphints.bash "$prefix/share/bash-completion/completions/xdphints"
install -Dm644 completions/xdphints.zsh "$prefix/share/zsh/site-functions/_xdphints"
install -Dm644 completions/xdphints.fish /etc/fish/completions/xdphints.fish
install -Dm644 man/xdphints.8 "$prefix/share/man/man8/xdphints.8"
case $prefix in
    /usr|/usr/local) unitdir=${SYSTEMD_UNIT_DIR:-$prefix/lib/systemd/system};;
    *) unitdir=${SYSTEMD_UNIT_DIR:-/etc/systemd/system};;
esac
# the unit runs the command where this install put it
mkdir -p "$unitdir"
sed "s#/usr/local/bin/xdphints#$prefix/bin/xdphints#" systemd/xdphints-apply.service > "$unitdir/xdphints-apply.service"
chmod 644 "$unitdir/xdphints-apply.service"
install -Dm644 examples/hints.toml /etc/xdphints/hints.toml.example
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
echo "installed: $prefix/bin/xdphints -> $venv/bin/xdphints, completions for bash, zsh and fish, xdphints(8),"
echo "  $unitdir/xdphints-apply.service (not enabled: see README, Many machines), /etc/xdphints/hints.toml.example"
