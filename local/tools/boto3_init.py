"""The same cold-start init as a function of this project, written the common way in
Python: import boto3, create the same clients, fetch the same secret, then ask the
Lambda Runtime API for the first event. `make bench` times it from process start to
that first `next` request, exactly as it times the Rust bootstraps.

Standard library and boto3 only. Which clients to create comes from the environment:
BENCH_CLIENTS (comma-separated boto3 service names) and, for payment,
BENCH_SECRET_ARN (the secret its init fetches).
"""

import json
import logging
import os
import urllib.request

import boto3

logging.getLogger().setLevel(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "INFO"))

clients = {
    name: boto3.client(name)
    for name in os.environ.get("BENCH_CLIENTS", "").split(",")
    if name
}
secret_arn = os.environ.get("BENCH_SECRET_ARN")
if secret_arn:
    API_KEY = clients["secretsmanager"].get_secret_value(SecretId=secret_arn)["SecretString"]

api = os.environ["AWS_LAMBDA_RUNTIME_API"]
with urllib.request.urlopen(f"http://{api}/2018-06-01/runtime/invocation/next") as event:
    json.loads(event.read() or b"null")
