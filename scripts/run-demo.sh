#!/bin/sh
# `make run`: start the demo backends of examples/quickstart.yaml, then
# fulcrum in the foreground. Ctrl-C stops fulcrum and the backends.
BIN=${1:-build/fulcrum}
CONF=examples/quickstart.yaml
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 0' INT TERM

for spec in 9001:alpha 9002:bravo 9003:charlie-backup; do
	port=${spec%%:*}
	name=${spec#*:}
	/usr/bin/python3 scripts/demo_backend.py "$port" "$name" &
	PIDS="$PIDS $!"
done
sleep 0.5
"$BIN" check -c "$CONF" || exit 1
cat <<MSG

fulcrum demo: listener "web" on 127.0.0.1:8080 and [::1]:8080 balances over
demo backends alpha (:9001) and bravo (:9002), with charlie (:9003) as backup.
Try, in another terminal:
  curl http://127.0.0.1:8080/          # repeat: requests spread over alpha and bravo
  curl -g 'http://[::1]:8080/'         # the same over IPv6
  kill the alpha backend (see 'ps'): requests keep working through bravo
Access log lines appear below. Ctrl-C stops everything.

MSG
"$BIN" -c "$CONF" &
FPID=$!
PIDS="$PIDS $FPID"
wait "$FPID"
