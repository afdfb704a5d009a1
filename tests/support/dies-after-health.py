"""A stand-in server for checking tests/examples-alike.sh itself: it prints an API key,
answers one request (the script's /health probe) and exits, so every request after that
finds no server. The script must then fail: `.ci/run` checks that it does."""
import http.server
import os

host, port = os.environ["BIND_ADDR"].rsplit(":", 1)


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


server = http.server.HTTPServer((host, int(port)), Health)
print("API key: 1|stub", flush=True)
server.handle_request()
