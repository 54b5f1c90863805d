#!/bin/sh
# Install xdphints for every user of the machine, as root, without touching the
# distribution's Python (PEP 668): a virtual environment under /opt/xdphints, the
# command linked into $PREFIX/bin, the shell completions and the man page where
# bash-completion, zsh, fish and man look for them, and the systemd unit
# xdphints-apply.service (installed, not enabled) with an example hints file.
#
#   XDPHINTS_VENV     the virtual environment (default /opt/xdphints)
#   PREFIX            bin, completions, man page and unit (default /usr/local)
#   PYTHON            the python to make a new virtual environment with (default: the
#                     distribution's /usr/bin/python3, not whatever python3 is first on PATH)
#   SYSTEMD_UNIT_DIR  where the unit goes (default $PREFIX/lib/systemd/system, which
#                     systemd reads for /usr/local and /usr)
#
# The default prefix puts what its readers look for only under /etc there (the fish
# completion, /etc/xdphints/hints.toml.example); any other PREFIX keeps everything under it.
# An existing virtual environment keeps the python it was made with (its pyvenv.cfg
# says which): it is never rebuilt with another one; remove it to change pythons.
# The package is built from a copy of the source, so the clone is left as it was
# (no build/ or *.egg-info). Each step below is one line; add new ones the same way.
set -eu
cd "$(dirname "$0")"
src=$(pwd)
venv=${XDPHINTS_VENV:-/opt/xdphints}
prefix=${PREFIX:-/usr/local}

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

# the value of KEY in the virtual environment's pyvenv.cfg ("key = value" lines)
venv_cfg() { sed -n "s/^$1 *= *//p" "$venv/pyvenv.cfg" | head -n 1; }

# --- which python ------------------------------------------------------------------
if [ -f "$venv/pyvenv.cfg" ]; then
    # executable: the interpreter itself (Python 3.11+); else home, its directory
    made_with=$(venv_cfg executable)
    [ -n "$made_with" ] || made_with="$(venv_cfg home)/python3"
    if [ -n "${PYTHON:-}" ] && [ "$(readlink -f "$PYTHON")" != "$(readlink -f "$made_with")" ]; then
        die "$venv was made with $made_with, not PYTHON=$PYTHON; remove $venv to rebuild it with another python"
    fi
    [ -x "$made_with" ] || die "$venv was made with $made_with, which is gone; remove $venv to rebuild it"
    python=$made_with
    why="the python $venv was made with"
elif [ -n "${PYTHON:-}" ]; then
    python=$PYTHON
    why="PYTHON"
elif [ -x /usr/bin/python3 ]; then
    python=/usr/bin/python3
    why="the distribution's"
else
    python=$(command -v python3) || die "no python3: install python3 and python3-venv"
    why="no /usr/bin/python3; the first python3 on PATH"
fi
version=$("$python" -c 'import sys; print(".".join(map(str, sys.version_info[:3])))') \
    || die "$python does not run"
"$python" -c 'import ssl' 2>/dev/null || die "$python $version has no ssl module: pip could not fetch the dependencies"
say "python: $python ($version; $why)"

# --- the virtual environment, built from a copy of the source -------------------------
[ -f "$venv/pyvenv.cfg" ] || "$python" -m venv "$venv" || die "could not make $venv (is python3-venv installed?)"
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
cp -R "$src/pyproject.toml" "$src/README.md" "$src/xdphints_cli" "$build/"
"$venv/bin/pip" install --quiet --disable-pip-version-check "$build"

# --- the command, completions and man page -----------------------------------------
# fish reads /etc/fish/completions, and $dir/fish/vendor_completions.d for each $dir of
# XDG_DATA_DIRS (/usr/share when it is unset): /usr/local/share is not read by default,
# so the default prefix uses /etc/fish; another prefix keeps everything under it
if [ "$prefix" = /usr/local ]; then fish_dir=/etc/fish/completions; else fish_dir=$prefix/share/fish/vendor_completions.d; fi
mkdir -p "$prefix/bin"
ln -sf "$venv/bin/xdphints" "$prefix/bin/xdphints"
install -Dm644 completions/xdphints.bash "$prefix/share/bash-completion/completions/xdphints"
install -Dm644 completions/xdphints.zsh "$prefix/share/zsh/site-functions/_xdphints"
install -Dm644 completions/xdphints.fish "$fish_dir/xdphints.fish"
install -Dm644 man/xdphints.8 "$prefix/share/man/man8/xdphints.8"
unitdir=${SYSTEMD_UNIT_DIR:-$prefix/lib/systemd/system}
if [ "$prefix" = /usr/local ]; then example_dir=/etc/xdphints; else example_dir=$prefix/share/xdphints; fi
# the unit runs the command where this install put it
mkdir -p "$unitdir"
sed "s#/usr/local/bin/xdphints#$prefix/bin/xdphints#" systemd/xdphints-apply.service > "$unitdir/xdphints-apply.service"
chmod 644 "$unitdir/xdphints-apply.service"
install -Dm644 examples/hints.toml "$example_dir/hints.toml.example"
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
say "installed: $prefix/bin/xdphints -> $venv/bin/xdphints; completions in $prefix/share/bash-completion/completions, $prefix/share/zsh/site-functions, $fish_dir; xdphints(8) in $prefix/share/man/man8"
say "installed: $unitdir/xdphints-apply.service (not enabled: see README, Many machines) and $example_dir/hints.toml.example"
