#!/bin/sh
# The demo https listener's self-signed certificate (examples/quickstart.yaml):
# made on demand, renewed when it expires within a day, never committed.
set -e
DIR=build/demo-tls
if [ -f $DIR/demo.crt ] && openssl x509 -checkend 86400 -noout -in $DIR/demo.crt >/dev/null 2>&1; then
	exit 0
fi
mkdir -p $DIR
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
	-keyout $DIR/demo.key -out $DIR/demo.crt 2>/dev/null
echo "demo: made a self-signed certificate in $DIR"
