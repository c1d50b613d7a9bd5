#!/usr/bin/env bash
# Check the shipped units: `systemd-analyze verify` on every unit, failing on ANY stderr output (verify exits
# 0 on unknown keys and typos), and the offline exposure score of the system service, failing above 2.0.
#
# Needs Debian's systemd package (`apt-get install -y systemd`), not a running systemd: it works in a
# container or a CI VM. Verify insists that ExecStart= binaries exist, so the system units are verified
# as-is inside a throwaway --root that holds stub executables and a copy of the distribution's units; the
# user units (verify has no --root for --user) are verified as a copy whose executable paths point to
# stubs, the only difference.
#
# Usage: systemd/check-units.sh [max_exposure]     (default 2.0)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
max_exposure=${1:-2.0}
status=0

if ! command -v systemd-analyze >/dev/null; then
    echo "check-units: systemd-analyze not found; install it: apt-get install -y systemd" >&2
    exit 2
fi
echo "check-units: $(systemd-analyze --version | head -n1)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Absolute executables named by Exec*= lines (after systemd's -@:+! prefixes).
exec_paths() {
    sed -nE 's/^Exec[A-Za-z]+=[-@:+!]*(\/[^ ]+).*/\1/p' "$@" | sort -u
}

stub() {  # stub PATH: an executable that does nothing
    mkdir -p "$(dirname "$1")"
    printf '#!/bin/sh\nexit 0\n' >"$1"
    chmod 755 "$1"
}

run_verify() {  # run_verify LABEL ARGS...: fails on a non-zero exit or on anything printed on stderr
    local label=$1 err rc=0
    shift
    err=$(systemd-analyze verify --man=no --generators=no "$@" 2>&1 >/dev/null) || rc=$?
    if ((rc != 0)) || [[ -n $err ]]; then
        echo "FAIL verify $label (exit $rc, stderr below)"
        printf '%s\n' "$err"
        return 1
    fi
    echo "ok   verify $label"
}

# --- system units, verified as shipped, inside a temporary root
root=$work/root
mkdir -p "$root/etc/systemd/system"
# The distribution's units (sysinit.target, ...), which verify loads as dependencies; /lib too when it is
# not merged into /usr.
for dir in /usr/lib/systemd/system /lib/systemd/system; do
    [[ -d $dir ]] || continue
    [[ $dir == /lib/* && $(realpath "$dir") == $(realpath /usr/lib/systemd/system 2>/dev/null) ]] && continue
    mkdir -p "$root${dir%/system}"
    cp -a "$dir" "$root${dir%/system}/"
done
system_units=()
for unit in "$here"/*.service "$here"/*.socket; do
    [[ -e $unit ]] || continue
    cp "$unit" "$root/etc/systemd/system/"
    system_units+=("$(basename "$unit")")
done
for path in $(exec_paths "$here"/*.service); do stub "$root$path"; done
run_verify "system: ${system_units[*]}" --root="$root" "${system_units[@]}" || status=1

# --- user units: a copy with the executables pointed at stubs
if compgen -G "$here/user/*.service" >/dev/null; then
    user_dir=$work/user
    mkdir -p "$user_dir" "$work/home" "$work/run"
    chmod 700 "$work/run"
    user_units=()
    for unit in "$here"/user/*.service "$here"/user/*.socket; do
        [[ -e $unit ]] || continue
        cp "$unit" "$user_dir/"
        user_units+=("$user_dir/$(basename "$unit")")
    done
    for path in $(exec_paths "$here"/user/*.service); do
        stub "$work/stubs$path"
        sed -i "s|$path|$work/stubs$path|g" "$user_dir"/*.service
    done
    # A user manager needs a runtime dir and a home; throwaway ones keep the check independent of a login.
    HOME=$work/home XDG_RUNTIME_DIR=$work/run run_verify "user: ${user_units[*]##*/}" --user "${user_units[@]}" ||
        status=1
    user_score=$(HOME=$work/home XDG_RUNTIME_DIR=$work/run \
        systemd-analyze security --user --offline=true "$user_dir/foss-supervisor.service" 2>/dev/null |
        sed -nE 's/.*Overall exposure level for [^:]+: ([0-9.]+).*/\1/p' || true)
    echo "info user service exposure ${user_score:-?} (a user manager cannot build mount namespaces; not gated)"
fi

# --- exposure score of the system service
out=$(systemd-analyze security --offline=true "$here/foss-supervisor.service" 2>&1) || true
score=$(sed -nE 's/.*Overall exposure level for [^:]+: ([0-9.]+).*/\1/p' <<<"$out")
if [[ -z $score ]]; then
    echo "FAIL security: no 'Overall exposure level' line"; printf '%s\n' "$out"; status=1
elif awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s > m) }'; then
    echo "FAIL security: exposure $score > $max_exposure"; grep -E '^✗' <<<"$out" || true; status=1
else
    echo "ok   security: exposure $score <= $max_exposure"
fi
exit $status
