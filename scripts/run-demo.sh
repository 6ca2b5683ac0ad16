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

fulcrum demo, with demo backends alpha (:9001), bravo (:9002) and charlie
(:9003, used only when the other two are down).

  tcp listener on 127.0.0.1:8080 and [::1]:8080 balances whole connections:
    curl http://127.0.0.1:8080/          # repeat: alpha and bravo share them
  http listener on 127.0.0.1:8081 and [::1]:8081 routes each request:
    curl -i http://127.0.0.1:8081/       # a backend answers
    curl http://127.0.0.1:8081/healthz   # answered by fulcrum itself
    curl -i http://127.0.0.1:8081/old/x  # 301 redirect
    curl -i http://127.0.0.1:8081/api/   # rewritten to /, X-Route: api added
  https listener on 127.0.0.1:8443 (self-signed certificate in build/demo-tls/):
    curl --cacert build/demo-tls/demo.crt https://localhost:8443/
    curl -k https://127.0.0.1:8443/healthz

Access log lines appear below. Ctrl-C stops everything.

MSG
"$BIN" -c "$CONF" &
FPID=$!
PIDS="$PIDS $FPID"
wait "$FPID"
