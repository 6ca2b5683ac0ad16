#!/usr/bin/python3
"""Demo HTTP backend for `make run`: answers every request with its own name,
so you can watch fulcrum spread requests. Usage: demo_backend.py PORT NAME"""
import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = f"hello from {self.server.name} (port {self.server.server_port})\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, fmt, *args):
        pass


def main():
    port, name = int(sys.argv[1]), sys.argv[2]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.name = name
    srv.serve_forever()


if __name__ == "__main__":
    main()
