"""Starts moto's AWS emulator on a free loopback port for the local host and the tests.

Why not plain `moto_server`:
- It binds the port we ask for, so callers race for a "free" port. Here the OS picks one
  and we print it (`READY <port>`), so any number of emulators can run side by side.
- Real DynamoDB applies each conditional write and transaction atomically. moto serves
  requests on threads without a lock, so two concurrent conditional writes can both pass.
  We serialise DynamoDB requests (only those: SQS long polls must not block everything),
  which makes the emulator honest about the guarantees our idempotency code relies on.
- A cancelled DynamoDB transaction must leave no trace, in the table or in its stream.
  moto applies the items one by one and on cancellation swaps in a copy of each table
  taken before; open stream iterators keep reading the *old* stream shard, which holds
  the records of the cancelled writes and never sees later ones. We keep the shard the
  iterators know, truncated back to where it was: cancelled writes vanish from the
  stream, later writes appear in it, as in DynamoDB.
- When our parent goes away (its end of stdin closes) we exit, so a killed test run never
  leaves an orphan emulator behind.
"""

import io
import json
import os
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

DYNAMODB_TARGET_PREFIXES = ("DynamoDB_20120810.", "DynamoDBStreams_20120810.")


class SerialDynamoDb:
    """WSGI middleware: one DynamoDB request at a time, everything else concurrent."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(DYNAMODB_TARGET_PREFIXES):
            with self.lock:
                # Materialise the body inside the lock: the work happens while iterating.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


class RequestCounter:
    """WSGI middleware: counts requests per caller and operation.

    Locally each function signs with its own access key id (its logical id, set by the
    host), so the count says which function made which AWS calls:
    GET /_local/requests answers {"CreateOrderFunction": {"dynamodb.PutItem": 1, ...}},
    DELETE /_local/requests starts over. The benchmarks and the request-budget test use
    it; it changes nothing for the requests themselves.
    """

    PATH = "/_local/requests"

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.counts = {}

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == self.PATH:
            return self.answer(environ, start_response)
        caller, service = self.credential(environ.get("HTTP_AUTHORIZATION", ""))
        if caller:
            operation = self.operation(environ)
            with self.lock:
                calls = self.counts.setdefault(caller, {})
                key = f"{service}.{operation}"
                calls[key] = calls.get(key, 0) + 1
        return self.app(environ, start_response)

    @staticmethod
    def credential(authorization):
        # "AWS4-HMAC-SHA256 Credential=KEY/20261126/us-east-1/sns/aws4_request, ..."
        marker = "Credential="
        if marker not in authorization:
            return None, None
        scope = authorization.split(marker, 1)[1].split(",", 1)[0].split("/")
        return scope[0], scope[3] if len(scope) > 3 else "unknown"

    @staticmethod
    def operation(environ):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            return target.rsplit(".", 1)[-1]
        # Query protocol (SNS): the action is in the form body; read it and put it back.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        for pair in body.split(b"&"):
            if pair.startswith(b"Action="):
                return pair[len(b"Action="):].decode("utf-8", "replace")
        return environ.get("REQUEST_METHOD", "unknown")

    def answer(self, environ, start_response):
        with self.lock:
            if environ.get("REQUEST_METHOD") == "DELETE":
                self.counts = {}
            body = json.dumps(self.counts).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]


def keep_stream_shards_on_rollback():
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        shards = {
            name: (table.stream_shard, len(table.stream_shard.items))
            for name, table in self.tables.items()
            if getattr(table, "stream_shard", None) is not None
        }
        try:
            return original(self, transact_items)
        except Exception:
            for name, (shard, length) in shards.items():
                del shard.items[length:]
                restored = self.tables.get(name)
                if restored is not None:
                    restored.stream_shard = shard
                    shard.table = restored
            raise

    DynamoDBBackend.transact_write_items = transact_write_items


def exit_when_parent_goes_away():
    sys.stdin.read()
    os._exit(0)


def main():
    host = os.environ.get("MOTO_HOST", "127.0.0.1")
    port = int(os.environ.get("MOTO_PORT", "0"))
    keep_stream_shards_on_rollback()
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        host,
        port,
        RequestCounter(SerialDynamoDb(app)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    # moto builds URLs (e.g. SQS queue URLs) from MOTO_PORT.
    os.environ["MOTO_PORT"] = str(server.server_port)
    threading.Thread(target=exit_when_parent_goes_away, daemon=True).start()
    print(f"READY {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
