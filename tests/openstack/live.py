"""A live server for the real-client tests: waitress (a production WSGI server that decodes chunked
request bodies, as glanceclient sends its uploads) in a thread of the test process, on loopback."""

import threading

from django.core.handlers.wsgi import WSGIHandler
from django.db import connections


class LiveServer:
    def __init__(self):
        from waitress.server import create_server

        # An in-memory SQLite test database is one connection: share it with the server's thread, as
        # Django's own live server does. One server thread: requests never use it at the same time.
        self.shared = {}
        for connection in connections.all():
            if connection.vendor == "sqlite" and connection.is_in_memory_db():
                self.shared[connection.alias] = connection
                connection.inc_thread_sharing()
        handler = WSGIHandler()

        def app(environ, start_response):
            for alias, connection in self.shared.items():
                connections[alias] = connection
            return handler(environ, start_response)

        self.server = create_server(
            app, host="127.0.0.1", port=0, threads=1, clear_untrusted_proxy_headers=True
        )
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.close()
        for connection in self.shared.values():
            connection.dec_thread_sharing()
