#!/bin/sh
# Install the Debian packages fulcrum needs to build, test and benchmark,
# only those that are missing. Runs apt-get as root (or through sudo).
set -e
PKGS="build-essential pkg-config libyaml-dev libssl-dev libpcre2-dev libnghttp2-dev liburing-dev
libcmocka-dev clang python3 python3-pytest python3-websockets curl netcat-openbsd iproute2 openssl
haproxy nginx-light libnginx-mod-stream wrk iperf3 testssl.sh"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
		|| missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
