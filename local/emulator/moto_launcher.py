"""Starts moto's AWS emulator on a free loopback port for the local host and the tests.

Why not plain `moto_server`:
- It binds the port we ask for, so callers race for a "free" port. Here the OS picks one
  and we print it (`READY <port>`), so any number of emulators can run side by side.
- Real DynamoDB applies each conditional write and transaction atomically. moto serves
  requests on threads without a lock, so two concurrent conditional writes can both pass.
  We serialise DynamoDB requests (only those: SQS long polls must not block everything),
  which makes the emulator honest about the guarantees our idempotency code relies on.
- A cancelled DynamoDB transaction must leave no trace, in the table or in its stream,
  and must not cost more as tables grow: see `roll_back_transactions_like_dynamodb`.
- An SQS receive must not cost more as the queue's backlog grows: see
  `keep_sqs_requests_independent_of_the_backlog` and `count_queue_attributes_once`.
  Reading a table page by page must not cost more for later pages:
  `scan_pages_from_their_start_key`.
- SQS requests run concurrently, and moto changes a queue's messages without a lock:
  two deletes at once could remove a message nobody had received. Each queue's
  messages now change under its own lock (`change_each_queue_under_its_lock`). A
  delete with a receipt handle older than the message's latest receipt succeeds and
  deletes nothing, as SQS documents (moto deleted on any handle the message had):
  `delete_only_with_the_latest_receipt_handle`.
- The reliability runs need AWS to fail on cue: `FaultInjector` makes the functions'
  requests fail for a while (the service "down", or throttling) without touching them,
  and produces the DynamoDB failures that come from contention, which a serialised
  emulator never has: cancelled transactions (TransactionConflict, ThrottlingError)
  and throttled single-item writes, for a share of requests or the next few.
- Under load the emulator must not spend its one core on overhead: connections are
  kept alive (`QuietRequestHandler`), the clock is read cheaply
  (`read_the_clock_cheaply`), DynamoDB requests skip moto's Flask layer
  (`DynamoDbWithoutFlask`) and its generic serializer
  (`serialize_dynamodb_results_directly`), condition expressions are lexed once per
  text (`lex_each_condition_expression_once`) and SQS sends skip counting the queue
  (`send_without_counting_the_queue`). The reliability runs also start a second
  launcher for DynamoDB alone (local/emulator/src/lib.rs), so the emulator can use both
  cores.
- `make bench`'s cost model needs the DynamoDB capacity units each function would
  consume on AWS: `CapacityMeter` sizes the items each request touches by DynamoDB's
  own rules (`item_size`), before and after the request, under `SerialDynamoDb`'s lock.
- When our parent goes away (its end of stdin closes) we exit, so a killed test run never
  leaves an orphan emulator behind.

The patches reach into about twenty private moto and werkzeug internals, so the launcher
refuses to start unless the installed versions are the ones local/requirements.txt pins
(`refuse_unpinned_versions`).

Every patch exists either for speed or for correctness (behaving like AWS, or serving the
project's tools), and `main` lists them so (`SPEED_PATCHES`, `CORRECTNESS_PATCHES`).
With LOCAL_EMULATOR_SPEED_PATCHES=off the speed patches are all skipped, and DynamoDB
requests go through moto's own Flask app and request handler like the rest: what is left
is plain moto plus the correctness patches, to tell whether a behaviour (or a cost) comes
from a speed patch.
"""

import base64
import copy
import datetime
import decimal
import functools
import io
import json
import os
import random
import re
import sys
import threading
import time

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.core.serialize import TimestampSerializer
from werkzeug.serving import make_server

DYNAMODB_TARGET_PREFIXES = ("DynamoDB_20120810.", "DynamoDBStreams_20120810.")


class WholeBodies:
    """WSGI middleware (the outermost): reads each request's body in full before anything
    answers it. Connections are kept alive (see `QuietRequestHandler`), so a body left
    unread on the socket would be taken for the next request's first line; read here,
    any layer may answer without reading it (the fault injector does). Needed with the
    speed patches off too: the layers after it read the body with `body_of`."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        stream = environ["wsgi.input"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            body = stream.read(length)
        elif environ.get("wsgi.input_terminated"):
            body = stream.read()  # chunked: werkzeug's stream ends with the body
        else:
            body = b""
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


def body_of(environ):
    """The request's body, as `WholeBodies` read it, without consuming it for the layers
    after us."""
    return environ["wsgi.input"].getvalue()


# DynamoDB operations that never change a table; any other request may.
DYNAMODB_READS = frozenset(
    {
        "BatchGetItem",
        "DescribeContinuousBackups",
        "DescribeStream",
        "DescribeTable",
        "DescribeTimeToLive",
        "GetItem",
        "GetRecords",
        "GetShardIterator",
        "ListStreams",
        "ListTables",
        "ListTagsOfResource",
        "Query",
        "Scan",
    }
)


class TableWrites:
    """How many DynamoDB requests that may change a table have been served: a cache of
    a table's contents is good while this number has not moved. Only read and bumped
    under `SerialDynamoDb`'s lock."""

    count = 0


class SerialDynamoDb:
    """WSGI middleware: one DynamoDB request at a time, everything else concurrent.

    Whatever it wraps runs under the lock for a DynamoDB request: `CapacityMeter` sits
    inside it for that reason."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(DYNAMODB_TARGET_PREFIXES):
            with self.lock:
                if target.partition(".")[2] not in DYNAMODB_READS:
                    TableWrites.count += 1
                # Materialise the body inside the lock: the work happens while iterating.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


class RequestCounter:
    """WSGI middleware: counts requests per caller and operation.

    Locally each function signs with its own access key id (its logical id, set by the
    host), so the count says which function made which AWS calls:
    GET /_local/requests answers {"CreateOrderFunction": {"dynamodb.PutItem": 1, ...}},
    GET /_local/capacity-units the DynamoDB capacity units they would consume
    ({"CreateOrderFunction": {"read": 1.0, "write": 6.0}}, measured by `meter`, a
    `CapacityMeter` further in), and DELETE on either path starts both over. The
    benchmarks and the request-budget test use it; it changes nothing for the requests
    themselves.
    """

    PATH = "/_local/requests"
    UNITS_PATH = "/_local/capacity-units"

    def __init__(self, app, meter):
        self.app = app
        self.meter = meter
        self.lock = threading.Lock()
        self.counts = {}

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == self.PATH:
            return self.answer(environ, start_response, self.request_counts)
        if environ.get("PATH_INFO") == self.UNITS_PATH:
            return self.answer(environ, start_response, self.meter.units_so_far)
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
        # Query protocol (SNS): the action is in the form body.
        for pair in body_of(environ).split(b"&"):
            if pair.startswith(b"Action="):
                return pair[len(b"Action="):].decode("utf-8", "replace")
        return environ.get("REQUEST_METHOD", "unknown")

    def request_counts(self):
        with self.lock:
            return copy.deepcopy(self.counts)

    def answer(self, environ, start_response, which):
        if environ.get("REQUEST_METHOD") == "DELETE":
            with self.lock:
                self.counts = {}
            self.meter.start_over()
        body = json.dumps(which()).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]


# DynamoDB's sizing rules. An item's size decides the capacity units a request consumes;
# the rules are in the DynamoDB Developer Guide, "DynamoDB item sizes and formats". They
# apply to DynamoDB JSON, the wire form: {"name": {"S": "text"}, "n": {"N": "12.5"}, ...}.


def utf8_length(text):
    """Bytes of `text` in UTF-8: how DynamoDB measures names and strings."""
    return len(text.encode("utf-8"))


def number_size(text):
    """Bytes a DynamoDB Number takes: one per two significant digits, plus one.

    The guide: "Leading and trailing zeroes are trimmed. The size of a number is
    approximately (1 byte per two significant digits) + (1 byte)". Our exact rule: the
    significant digits are the number's decimal digits with the sign, the decimal point
    and any exponent left out and leading and trailing zeros trimmed (so 650 has two,
    0.0105 has three, 1E+5 one); an odd count rounds up to a whole byte; zero has none
    and takes 1 byte. ("approximately": DynamoDB pairs digits around the decimal point,
    so 1.1 really takes 3 bytes where this says 2.)
    """
    digits = decimal.Decimal(text).as_tuple().digits
    significant = "".join(str(digit) for digit in digits).strip("0")
    return (len(significant) + 1) // 2 + 1


def binary_length(value):
    """Raw bytes of a Binary value. On the wire it is base64 text, but "the value's raw
    byte length is used for calculating size"; moto may hold it decoded already."""
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    return len(base64.b64decode(value))


def value_size(value):
    """Bytes one attribute value takes, its name not included: see `item_size`."""
    (kind, data), = value.items()
    if kind == "S":
        return utf8_length(data)
    if kind == "N":
        return number_size(data)
    if kind == "B":
        return binary_length(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(utf8_length(member) for member in data)
    if kind == "NS":
        return sum(number_size(member) for member in data)
    if kind == "BS":
        return sum(binary_length(member) for member in data)
    if kind == "L":
        # 3 bytes for the list, and each element its own size plus 1 byte.
        return 3 + sum(value_size(member) + 1 for member in data)
    if kind == "M":
        # 3 bytes for the map, and each element its name, its value and 1 byte.
        return 3 + sum(
            utf8_length(name) + value_size(member) + 1 for name, member in data.items()
        )
    raise ValueError(f"not a DynamoDB attribute value: {value!r}")


def item_size(item):
    """The size in bytes DynamoDB gives `item` (DynamoDB JSON), by the Developer Guide's
    "DynamoDB item sizes and formats": the sum over its attributes of the attribute
    name's UTF-8 length plus the value's size, where
    - a String is its UTF-8 bytes; a Binary its raw (base64-decoded) bytes;
    - a Number is 1 byte per two significant digits plus 1 byte (`number_size`);
    - a Boolean or a Null is 1 byte;
    - a List or a Map is 3 bytes plus, for each element, its size and 1 byte (a map
      element's size includes its name's UTF-8 length);
    - a String, Number or Binary set is the sum of its members' sizes (the guide does
      not spell sets out; each member is sized as a value of its type).
    Storage overheads (100 bytes per item for indexing, and so on) are for storage
    billing, not capacity units, and are not counted.
    """
    return sum(utf8_length(name) + value_size(value) for name, value in item.items())


def write_units(size):
    """Write capacity units for writing an item of `size` bytes: one per KB started, at
    least one ("Item sizes for writes are rounded up to the next 1 KB multiple")."""
    return max(1, -(-size // 1024))


def read_units(size, strongly_consistent=True):
    """Read capacity units for reading an item of `size` bytes: one per 4 KB started, at
    least one (a missing item costs a read too), half for an eventually consistent read."""
    units = max(1, -(-size // 4096))
    return float(units) if strongly_consistent else units / 2.0


# The DynamoDB operations `capacity_units` prices; any other answers None (Query, Scan and
# the batch operations would need the items they evaluate, which the request does not
# name; the project does not use the batch operations).
SINGLE_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
METERED = SINGLE_WRITES | {"GetItem", "TransactWriteItems", "TransactGetItems"}
WRITES = SINGLE_WRITES | {"TransactWriteItems"}


def items_named(operation, request):
    """(table name, attributes holding the item's key) for each item the request names,
    in the request's order; `capacity_units` takes their sizes in the same order."""
    if operation == "PutItem":
        return [(request.get("TableName"), request.get("Item") or {})]
    if operation in ("UpdateItem", "DeleteItem", "GetItem"):
        return [(request.get("TableName"), request.get("Key") or {})]
    named = []
    if operation in ("TransactWriteItems", "TransactGetItems"):
        for entry in request.get("TransactItems") or []:
            kind, action = next(iter(entry.items()), (None, {}))
            attributes = action.get("Item") if kind == "Put" else action.get("Key")
            named.append((action.get("TableName"), attributes or {}))
    return named


def capacity_units(operation, request, before, after):
    """(read, write) capacity units a DynamoDB request that was charged consumes on AWS,
    as billed on demand, or None for an operation not metered.

    `before` and `after` hold the size in bytes (`item_size`, DynamoDB's own sizing
    rules) of each item the request names (`items_named`), as stored just before and just
    after the request; None where there is no item. The rules are the DynamoDB Developer
    Guide's, in "DynamoDB read and write operations" (capacity unit consumption for read
    and write operations; the older "Item sizes and capacity unit consumption") and
    "Amazon DynamoDB Transactions: How it works" (capacity management for transactions):
    - PutItem: the larger of the item replaced and the new item, rounded up to 1 KB.
    - UpdateItem: the larger of the item before and after the update.
    - DeleteItem: the deleted item.
    - A conditional write whose condition fails is charged too: by the existing item's
      size, or one unit when there is none. The item is unchanged, so before == after
      and the three rules above give exactly that.
    - TransactWriteItems: two units per KB of each item (prepare and commit): a Put or
      an Update by the larger of before and after, a Delete or a ConditionCheck by the
      item's size.
    - GetItem: one unit per 4 KB of the item (a missing item costs as a 0-byte one),
      half unless ConsistentRead; TransactGetItems: two per 4 KB of each item.
    Which requests are charged at all is `CapacityMeter.charged`'s to say.
    """
    if operation not in METERED:
        return None

    def larger(index):
        return max(before[index] or 0, after[index] or 0)

    if operation in ("PutItem", "UpdateItem"):
        return 0.0, float(write_units(larger(0)))
    if operation == "DeleteItem":
        return 0.0, float(write_units(before[0] or 0))
    if operation == "GetItem":
        return read_units(before[0] or 0, bool(request.get("ConsistentRead"))), 0.0
    if operation == "TransactWriteItems":
        write = 0
        for index, entry in enumerate(request.get("TransactItems") or []):
            kind = next(iter(entry), None)
            size = larger(index) if kind in ("Put", "Update") else before[index] or 0
            write += 2 * write_units(size)
        return 0.0, float(write)
    # TransactGetItems
    return sum(2.0 * read_units(size or 0) for size in before), 0.0


def dynamodb_backend(environ):
    """moto's DynamoDB backend a request is served by: its account and region found as
    moto's own `BaseResponse` finds them (the MOTO_ACCOUNT_ID variable, an
    x-moto-account-id header, the account of an IAM access key moto knows, else the
    default 123456789012; the region from an amazonaws.com host, the user agent, then
    the Authorization header's credential scope, else us-east-1)."""
    from moto.backends import get_backend
    from moto.core.responses import BaseResponse
    from moto.iam.models import get_account_id_from

    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if "MOTO_ACCOUNT_ID" in os.environ:
        account = os.environ["MOTO_ACCOUNT_ID"]
    elif "HTTP_X_MOTO_ACCOUNT_ID" in environ:
        account = environ["HTTP_X_MOTO_ACCOUNT_ID"]
    else:
        match = BaseResponse.access_key_regex.search(authorization)
        account = get_account_id_from(match.group(1) if match else "AKIAEXAMPLE")
    host = BaseResponse.region_regex.search("http://" + environ.get("HTTP_HOST", ""))
    agent = BaseResponse.region_from_useragent_regex.search(
        environ.get("HTTP_USER_AGENT", "")
    )
    if host:
        region = host.group(1)
    elif agent:
        region = agent.group(1)
    elif "AWS4" in authorization:
        region = authorization.split(",")[0].split("/")[2]
    else:
        region = BaseResponse.default_region
    return get_backend("dynamodb")[account][region]


def stored_attributes(value):
    """A moto item (or attribute value) as DynamoDB JSON, for `item_size`."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    if isinstance(value, Item):
        return {name: stored_attributes(member) for name, member in value.attrs.items()}
    if not isinstance(value, DynamoType):
        value = DynamoType(value)  # a nested value moto kept as DynamoDB JSON
    if value.is_list():
        return {"L": [stored_attributes(member) for member in value.value]}
    if value.is_map():
        return {"M": {name: stored_attributes(m) for name, m in value.value.items()}}
    return {value.type: value.value}


class CapacityMeter:
    """WSGI middleware, inside `SerialDynamoDb`: the DynamoDB capacity units each caller's
    requests would consume on AWS (on demand), by DynamoDB's own rules
    (`capacity_units`, `item_size`). `make bench`'s cost model reads them from
    GET /_local/capacity-units (`RequestCounter` answers it from `units_so_far`).

    What a write costs depends on the stored item before and after it (a put that
    replaces a bigger item pays for the bigger one), which the request does not say: the
    meter reads both from moto's backend. It has to sit inside `SerialDynamoDb`, holding
    the lock that serialises DynamoDB requests: measured outside it, another request
    could change the item between our "before" and the request, or between the request
    and our "after". Inside, nothing else touches a table from our first reading to our
    last.

    Charged: requests that succeed (2xx), and PutItem, UpdateItem and DeleteItem whose
    condition fails, which DynamoDB charges. Not charged: every other failure. That
    includes a cancelled transaction: the guide does not say what AWS charges for one,
    and which items it had prepared when it was cancelled cannot be measured here, so it
    counts nothing. The faults `FaultInjector` makes never reach moto, nor this meter, so they
    count nothing either (AWS consumes no capacity for a throttled request).
    """

    PREFIX = "DynamoDB_20120810."
    CONDITION_FAILED = "ConditionalCheckFailedException"

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.units = {}

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        operation = target[len(self.PREFIX) :] if target.startswith(self.PREFIX) else ""
        caller, _ = RequestCounter.credential(environ.get("HTTP_AUTHORIZATION", ""))
        if not caller or operation not in METERED:
            return self.app(environ, start_response)
        try:
            request = json.loads(body_of(environ) or b"{}")
            named = items_named(operation, request)
            backend = dynamodb_backend(environ)
        except Exception:  # a malformed request: moto answers it, nothing is charged
            return self.app(environ, start_response)
        before = [self.stored_size(backend, *item) for item in named]
        answered = []

        def recording_start_response(status, headers, exc_info=None):
            answered.append(status)
            return start_response(status, headers, exc_info)

        answer = self.app(environ, recording_start_response)
        try:
            # The work happens while the answer is iterated: finish it before "after".
            body = list(answer)
        finally:
            if hasattr(answer, "close"):
                answer.close()
        if operation in WRITES:
            after = [self.stored_size(backend, *item) for item in named]
        else:
            after = before
        if self.charged(operation, answered, body):
            self.add(caller, capacity_units(operation, request, before, after))
        return body

    @staticmethod
    def stored_size(backend, table_name, attributes):
        """`item_size` of the item of `table_name` whose key `attributes` hold, as moto
        stores it now; None when there is none (or no such table, or no full key)."""
        try:
            table = backend.get_table(table_name)
            names = [table.hash_key_attr]
            if table.range_key_attr:
                names.append(table.range_key_attr)
            item = backend.get_item(table_name, {name: attributes[name] for name in names})
        except Exception:  # moto refuses the request for the same reason: nothing to size
            return None
        return None if item is None else item_size(stored_attributes(item))

    @classmethod
    def charged(cls, operation, answered, body):
        """Whether AWS would charge capacity for this answer (see the class docstring)."""
        status = int(answered[0].split()[0]) if answered else 500
        if 200 <= status < 300:
            return True
        if status != 400 or operation not in SINGLE_WRITES:
            return False
        try:
            error = json.loads(b"".join(body)).get("__type", "")
        except (ValueError, AttributeError):
            return False
        return error.rpartition("#")[2] == cls.CONDITION_FAILED

    def add(self, caller, units):
        read, write = units
        with self.lock:
            mine = self.units.setdefault(caller, {"read": 0.0, "write": 0.0})
            mine["read"] += read
            mine["write"] += write

    def units_so_far(self):
        with self.lock:
            return copy.deepcopy(self.units)

    def start_over(self):
        with self.lock:
            self.units = {}


class FaultPlan:
    """When one DynamoDB fault strikes: the next `count` matching requests (deterministic,
    for tests), and a share `rate` of them until `until` (for the reliability runs), each
    only for the access key ids in its `callers` if given. Setting one part leaves the
    other as it was. Read and changed under `FaultInjector`'s lock."""

    def __init__(self):
        self.count = 0
        self.count_callers = None
        self.rate = 0.0
        self.until = 0.0
        self.rate_callers = None

    @staticmethod
    def parsed(ask):
        """The plan `ask` ({"count": n} or {"rate": r, "seconds": s}, with "callers"
        optional) describes, checked before anything changes: ValueError if it is not
        one."""
        if not isinstance(ask, dict) or not ("count" in ask or "seconds" in ask):
            raise ValueError(f"expected {{count}} or {{rate, seconds}}, got {ask!r}")
        callers = ask.get("callers")
        if callers is not None:
            if not isinstance(callers, list) or not all(
                isinstance(caller, str) for caller in callers
            ):
                raise ValueError(f"callers must be a list of access key ids: {callers!r}")
            callers = frozenset(callers)
        count = int(ask["count"]) if "count" in ask else None
        seconds = float(ask["seconds"]) if "seconds" in ask else None
        rate = float(ask.get("rate", 1.0))
        if (count is not None and count < 0) or not 0.0 <= rate <= 1.0:
            raise ValueError(f"count must be >= 0 and rate within 0-1: {ask!r}")
        return count, seconds, rate, callers

    def set(self, parsed, now):
        count, seconds, rate, callers = parsed
        if count is not None:
            self.count, self.count_callers = count, callers
        if seconds is not None:
            self.until, self.rate, self.rate_callers = now + seconds, rate, callers

    def strikes(self, caller, now, draw):
        """Whether this request from `caller` fails; a counted one is used up."""
        if self.count > 0 and (self.count_callers is None or caller in self.count_callers):
            self.count -= 1
            return True
        return (
            now < self.until
            and (self.rate_callers is None or caller in self.rate_callers)
            and draw() < self.rate
        )


class FaultInjector:
    """WSGI middleware: fails the functions' requests on cue, for the reliability runs
    and the tests.

    Only requests signed by a function are touched (locally each signs with its logical
    id); the host's event source mappings and the runs' own checks sign as "test" and
    always get through, as AWS's own pollers would.

    POST /_local/faults {"unavailable_seconds": 5}
        every function request answers 503 Service Unavailable for 5 s: the service down.
    POST /_local/faults {"throttle_rate": 0.3, "throttle_seconds": 10}
        30 % of function requests answer the service's throttling error for 10 s.
    Both are errors the AWS SDK classifies as retryable, as the real ones are.

    DynamoDB also fails under contention in ways the emulator, which serialises it,
    never would. Each of these is set as {"rate": 0.1, "seconds": 30} (a share of the
    matching requests for a while) or {"count": 2} (the next two, for tests), optionally
    with "callers": ["InventoryFunction", ...]:
    POST /_local/faults {"transaction_conflict": {...}}
        a TransactWriteItems is cancelled as when another transaction holds one of its
        items: TransactionCanceledException with a TransactionConflict reason for one
        item (picked with the injector's seeded random) and None for the others.
    POST /_local/faults {"transaction_throttle": {...}}
        the same cancellation with a ThrottlingError reason, which is how DynamoDB
        reports throttling inside a transaction.
    POST /_local/faults {"write_throttle": {...}}
        a PutItem, UpdateItem or DeleteItem answers ProvisionedThroughputExceededException,
        which the SDK retries. The SDK never retries a cancelled transaction: that is
        the caller's to handle, as on AWS.
    The answers are DynamoDB's own (moto's TransactionCanceledException body), so the
    SDK parses them as it would AWS's; nothing is written.

    GET /_local/faults answers how many requests were failed, by fault.
    """

    PATH = "/_local/faults"
    HOST_CALLER = "test"
    DYNAMODB_PREFIX = "DynamoDB_20120810."
    DYNAMODB_ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
    TRANSACTIONS = frozenset({"TransactWriteItems"})
    SINGLE_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
    # Each DynamoDB fault: the operations it fails.
    DYNAMODB_FAULTS = {
        "transaction_conflict": TRANSACTIONS,
        "transaction_throttle": TRANSACTIONS,
        "write_throttle": SINGLE_WRITES,
    }
    # The cancellation reason each transaction fault gives its one item, as DynamoDB.
    CANCELLATION_REASONS = {
        "transaction_conflict": {
            "Code": "TransactionConflict",
            "Message": "Transaction is ongoing for the item",
        },
        "transaction_throttle": {
            "Code": "ThrottlingError",
            "Message": "Throughput exceeds the current capacity for one or more global "
            "secondary indexes. DynamoDB is automatically scaling your index so please "
            "be patient",
        },
    }

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.unavailable_until = 0.0
        self.throttle_until = 0.0
        self.throttle_rate = 0.0
        self.plans = {name: FaultPlan() for name in self.DYNAMODB_FAULTS}
        self.failed = {"unavailable": 0, "throttled": 0, **{name: 0 for name in self.plans}}
        self.random = random.Random(1)

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == self.PATH:
            return self.answer(environ, start_response)
        caller, _ = RequestCounter.credential(environ.get("HTTP_AUTHORIZATION", ""))
        if caller and caller != self.HOST_CALLER:
            fault = self.fault_now()
            if fault == "unavailable":
                start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
                return [b"Service Unavailable (injected)"]
            if fault == "throttled":
                return self.throttled(environ, start_response)
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            if target.startswith(self.DYNAMODB_PREFIX):
                operation = target[len(self.DYNAMODB_PREFIX) :]
                answer = self.dynamodb_fault(environ, caller, operation)
                if answer is not None:
                    return self.dynamodb_error(start_response, *answer)
        return self.app(environ, start_response)

    def fault_now(self):
        now = time.monotonic()
        with self.lock:
            if now < self.unavailable_until:
                self.failed["unavailable"] += 1
                return "unavailable"
            if now < self.throttle_until and self.random.random() < self.throttle_rate:
                self.failed["throttled"] += 1
                return "throttled"
        return None

    def dynamodb_fault(self, environ, caller, operation):
        """The (error type, body) of the DynamoDB fault that strikes this request, or
        None: the request goes on to moto."""
        names = [
            name
            for name, operations in self.DYNAMODB_FAULTS.items()
            if operation in operations
        ]
        if not names:
            return None
        now = time.monotonic()
        with self.lock:
            draw = self.random.random
            fault = next(
                (name for name in names if self.plans[name].strikes(caller, now, draw)),
                None,
            )
            if fault is None:
                return None
            self.failed[fault] += 1
            if fault == "write_throttle":
                return "ProvisionedThroughputExceededException", {
                    "message": "Throughput exceeds the current capacity of your table or "
                    "index. DynamoDB is automatically scaling your table or index so "
                    "please try again shortly. If exceptions persist, check if you have "
                    "a hot partition: https://docs.aws.amazon.com/amazondynamodb/latest/"
                    "developerguide/bp-partition-key-design.html."
                }
            items = self.transaction_size(environ)
            reasons = [{"Code": "None"}] * items
            reasons[self.random.randrange(items)] = self.CANCELLATION_REASONS[fault]
        codes = ", ".join(reason["Code"] for reason in reasons)
        return "TransactionCanceledException", {
            "Message": "Transaction cancelled, please refer cancellation reasons for "
            f"specific reasons [{codes}]",
            "CancellationReasons": reasons,
        }

    @staticmethod
    def transaction_size(environ):
        """How many items the TransactWriteItems request names: DynamoDB gives one
        cancellation reason per item. At least one, should the body not say."""
        try:
            return max(1, len(json.loads(body_of(environ))["TransactItems"]))
        except (ValueError, KeyError, TypeError):
            return 1

    @classmethod
    def dynamodb_error(cls, start_response, error_type, body):
        """A DynamoDB error answer, as moto (and DynamoDB) write one."""
        start_response(
            "400 Bad Request",
            [
                ("Content-Type", "application/x-amz-json-1.0"),
                ("x-amzn-ErrorType", error_type),
            ],
        )
        body = {"__type": cls.DYNAMODB_ERROR_PREFIX + error_type, **body}
        return [json.dumps(body).encode()]

    @staticmethod
    def throttled(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET"):
            # JSON protocols (DynamoDB, SQS, Secrets Manager).
            body = json.dumps(
                {"__type": "ThrottlingException", "message": "Rate exceeded (injected)"}
            ).encode()
            start_response(
                "400 Bad Request",
                [
                    ("Content-Type", "application/x-amz-json-1.0"),
                    ("x-amzn-ErrorType", "ThrottlingException"),
                    ("x-amzn-query-error", "ThrottlingException;Sender"),
                ],
            )
            return [body]
        # Query protocol (SNS).
        body = (
            b'<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
            b"<Error><Type>Sender</Type><Code>Throttling</Code>"
            b"<Message>Rate exceeded (injected)</Message></Error>"
            b"<RequestId>injected</RequestId></ErrorResponse>"
        )
        start_response("400 Bad Request", [("Content-Type", "text/xml")])
        return [body]

    def answer(self, environ, start_response):
        if environ.get("REQUEST_METHOD") == "POST":
            try:
                ask = json.loads(body_of(environ) or b"{}")
                plans = {
                    name: FaultPlan.parsed(ask[name]) for name in self.plans if name in ask
                }
                unavailable = ask.get("unavailable_seconds")
                unavailable = None if unavailable is None else float(unavailable)
                throttle = ask.get("throttle_seconds")
                throttle = None if throttle is None else float(throttle)
                throttle_rate = float(ask.get("throttle_rate", 0.2))
            except (ValueError, TypeError, AttributeError) as error:
                # Refused whole, so a mistyped fault never half-applies.
                start_response("400 Bad Request", [("Content-Type", "text/plain")])
                return [f"bad fault request: {error}".encode()]
            now = time.monotonic()
            with self.lock:
                if unavailable is not None:
                    self.unavailable_until = now + unavailable
                if throttle is not None:
                    self.throttle_until = now + throttle
                    self.throttle_rate = throttle_rate
                for name, plan in plans.items():
                    self.plans[name].set(plan, now)
        with self.lock:
            body = json.dumps(self.failed).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]


def roll_back_transactions_like_dynamodb():
    """A cancelled transaction leaves no trace, in the tables or their streams, and costs
    what the transaction touched, not what the tables hold.

    moto backs up every table a transaction writes to with copy.deepcopy (every item and
    every stream record) before it starts, and swaps the copies in on cancellation. That
    makes each transaction slower as the tables grow (thousands of orders took minutes),
    and open stream iterators keep reading the swapped-out shard. Instead we keep an undo
    log of the items the transaction names, put them back on cancellation, and truncate
    each stream shard to where it was, so cancelled writes vanish from the stream and
    later writes appear in it, as in DynamoDB.
    """
    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    real_deepcopy = copy.deepcopy

    class NoTableBackups:
        """moto's backup step, made a no-op for tables (our undo log replaces it)."""

        @staticmethod
        def deepcopy(value, memo=None):
            return value if isinstance(value, Table) else real_deepcopy(value, memo)

    models.copy = NoTableBackups
    original = DynamoDBBackend.transact_write_items

    def key_of(table, op_type, op):
        attributes = op.get("Item") if op_type == "Put" else op.get("Key")
        if not attributes or table.hash_key_attr not in attributes:
            return None
        hash_value = DynamoType(attributes[table.hash_key_attr])
        range_value = None
        if table.range_key_attr is not None:
            if table.range_key_attr not in attributes:
                return None
            range_value = DynamoType(attributes[table.range_key_attr])
        return hash_value, range_value

    def restore(table, hash_value, range_value, old):
        if range_value is None:
            if old is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = old
            return
        ranges = table.items.get(hash_value)
        if old is None:
            if ranges is not None:
                ranges.pop(range_value, None)
                if not ranges:
                    table.items.pop(hash_value, None)
        else:
            table.items[hash_value][range_value] = old

    def transact_write_items(self, transact_items):
        undo = []
        for item in transact_items:
            op_type, op = next(iter(item.items()))
            table = self.tables.get(op.get("TableName"))
            key = key_of(table, op_type, op) if table is not None else None
            if key is not None:
                current = table.get_item(*key)
                undo.append((table, key, real_deepcopy(current)))
        shards = {
            name: (table.stream_shard, len(table.stream_shard.items))
            for name, table in self.tables.items()
            if getattr(table, "stream_shard", None) is not None
        }
        try:
            return original(self, transact_items)
        except Exception:
            for table, (hash_value, range_value), old in reversed(undo):
                restore(table, hash_value, range_value, old)
            for name, (shard, length) in shards.items():
                del shard.items[length:]
            raise

    DynamoDBBackend.transact_write_items = transact_write_items


def read_the_clock_cheaply():
    """moto reads "now" by building two datetimes and subtracting them, and SQS does it
    once per message per scan (is it visible? delayed?). With thousands of messages
    queued that was most of the emulator's time: a single GetQueueAttributes took tens
    of milliseconds. `time.time()` is the same instant, read in well under a
    microsecond; a call with an explicit datetime still goes to moto's own code.
    """
    import moto.core.utils as utils

    original_unix_time = utils.unix_time
    original_unix_time_millis = utils.unix_time_millis

    def unix_time(dt=None):
        return time.time() if dt is None else original_unix_time(dt)

    def unix_time_millis(dt=None):
        return time.time() * 1000.0 if dt is None else original_unix_time_millis(dt)

    # Modules that imported the originals by name before this ran get the new ones too
    # (moto.core.utils itself among them, so compare with the originals kept above, not
    # with what utils holds by then).
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("moto"):
            for name, original, replacement in (
                ("unix_time", original_unix_time, unix_time),
                ("unix_time_millis", original_unix_time_millis, unix_time_millis),
            ):
                if getattr(module, name, None) is original:
                    setattr(module, name, replacement)


def count_queue_attributes_once():
    """GetQueueAttributes for two names made moto build the queue's whole attribute map
    six times, and each build counts the queue three times over. The map is now built
    once per request and each count takes one pass with one clock reading, so the
    audit's polling of queue depths no longer competes with the pipeline it waits for.
    The answer is the same map, filtered the same way.
    """
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Queue, SQSBackend

    original_get_queue_attributes = SQSBackend.get_queue_attributes

    def get_queue_attributes(self, queue_name, attribute_names):
        queue = self.get_queue(queue_name)
        valid = {"All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES}
        valid.update(queue.KMS_ATTRIBUTES)
        plain = attribute_names and all(
            name in valid and name != "All" for name in attribute_names
        )
        if not plain:
            # "All", no names or a wrong one: moto answers (or refuses) as it always did.
            return original_get_queue_attributes(self, queue_name, attribute_names)
        attributes = queue.attributes
        return {
            name: attributes[name]
            for name in attribute_names
            if attributes.get(name) is not None
        }

    def delayed(self):
        now = unix_time_millis()
        return sum(1 for message in self._messages if now < message.delayed_until)

    def not_visible(self):
        now = unix_time_millis()
        return sum(1 for message in self._messages if not now > message.visible_at)

    SQSBackend.get_queue_attributes = get_queue_attributes
    Queue.approximate_number_of_messages_delayed = property(delayed)
    Queue.approximate_number_of_messages_not_visible = property(not_visible)


def scan_pages_from_their_start_key():
    """A Scan page costs the same whichever page it is, and a table is sorted once for a
    whole scan instead of once per page.

    moto answers every page by sorting the whole table and then walking it from the
    first item to the page's ExclusiveStartKey, comparing keys as it goes: reading a
    table of n items in pages costs n^2/page-size key comparisons. The audit reads
    tables of tens of thousands of items, and at 10 000 orders that took longer than
    the pipeline itself. Here the sorted items (and their keys) are kept until a
    DynamoDB request that may write arrives (`TableWrites`), the start key is found by
    binary search, and moto's own scan runs over the items after it. Same items, same
    order, same pages, same LastEvaluatedKey.

    Within such a scan two more costs go: each item's size (moto computes it twice per
    item, walking every attribute) is kept with the sorted items, and the items are
    not deep-copied for the answer, which is only serialised, under the same lock.
    """
    import bisect

    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.table import Table

    original_scan = Table.scan
    original_all_items = Table.all_items
    original_size = Item.size
    original_item_deepcopy = Item.__deepcopy__
    sorted_tables = {}  # id(table) -> (writes, table, items, keys, sizes by id(item))
    remaining = threading.local()

    def sort_key(item):
        # The order moto's all_items sorts by.
        return (item.hash_key, item.range_key) if item.range_key else item.hash_key

    def sorted_items(table):
        entry = sorted_tables.get(id(table))
        if entry is None or entry[0] != TableWrites.count or entry[1] is not table:
            items = original_all_items(table)
            keys = [sort_key(item) for item in items]
            entry = (TableWrites.count, table, items, keys, {})
            sorted_tables[id(table)] = entry
        return entry[2], entry[3], entry[4]

    def start_key(table, exclusive_start_key):
        hash_value = DynamoType(exclusive_start_key[table.hash_key_attr])
        if table.range_key_attr:
            return (hash_value, DynamoType(exclusive_start_key[table.range_key_attr]))
        return hash_value

    def all_items(self):
        scanning = getattr(remaining, "items", None)
        if scanning is not None and scanning[0] is self:
            return scanning[1]
        return original_all_items(self)

    def size(self):
        scanning = getattr(remaining, "items", None)
        if scanning is None:
            return original_size(self)
        # The cached items stay referenced by the cache, so their ids stay theirs.
        sizes = scanning[2]
        known = sizes.get(id(self))
        if known is None:
            known = sizes[id(self)] = original_size(self)
        return known

    def item_deepcopy(self, memo):
        if getattr(remaining, "items", None) is not None and not memo:
            return self  # a Scan's page, about to be serialised and dropped
        return original_item_deepcopy(self, memo)

    def scan(
        self,
        filters,
        limit,
        exclusive_start_key,
        filter_expression=None,
        index_name=None,
        consistent_read=False,
        projection_expression=None,
        segments=(None, None),
    ):
        arguments = (filters, limit)
        rest = (filter_expression, index_name, consistent_read, projection_expression)
        key_names = [self.hash_key_attr, self.range_key_attr or self.hash_key_attr]
        usable_start = exclusive_start_key is None or all(
            name in exclusive_start_key for name in key_names
        )
        if index_name or not usable_start:
            # An index, or a start key without the table's keys: moto's own way.
            return original_scan(
                self, *arguments, exclusive_start_key, *rest, segments=segments
            )
        items, keys, sizes = sorted_items(self)
        start = 0
        if exclusive_start_key:
            start = bisect.bisect_right(keys, start_key(self, exclusive_start_key))
        remaining.items = (self, items[start:], sizes)
        try:
            return original_scan(self, *arguments, None, *rest, segments=segments)
        finally:
            remaining.items = None

    Table.all_items = all_items
    Table.scan = scan
    Item.size = size
    Item.__deepcopy__ = item_deepcopy


def keep_sqs_requests_independent_of_the_backlog():
    """Receiving a message costs the same with 10 or 10 000 in the queue.

    moto re-reads every queue attribute for every message it receives, to check the
    message's retention period; computing those attributes scans the whole queue three
    times, with a clock reading per message. Receives therefore slowed down as the
    backlog grew, which is exactly when a load test needs them. We read the retention
    period directly and take one clock reading per scan. What SQS answers is unchanged:
    the same messages, the same visibility and retention rules. (Deletes, which moto
    also made walk the queue twice, are `delete_only_with_the_latest_receipt_handle`'s.)
    """
    from moto.core.utils import unix_time, unix_time_millis
    from moto.sqs.models import Queue, SQSBackend

    def is_message_valid_based_on_retention_period(self, queue_name, message):
        queue = self.get_queue(queue_name)
        retain_until = queue.message_retention_period + message.sent_timestamp / 1000
        return retain_until > unix_time()

    def messages(self):
        now = unix_time_millis()
        return [
            message
            for message in self._messages
            if now > message.visible_at and not now < message.delayed_until
        ]

    SQSBackend.is_message_valid_based_on_retention_period = (
        is_message_valid_based_on_retention_period
    )
    Queue.messages = property(messages)


def delete_only_with_the_latest_receipt_handle():
    """A delete answers as SQS does for a stale receipt handle, under the queue's lock.

    A message received again (its visibility timeout lapsed) is deleted only with the
    handle of its latest receipt; an older one succeeds and leaves the message where it
    is (moto deleted on any handle the message ever had). So a consumer that overran its
    visibility timeout cannot delete a message another consumer now holds, here as on
    AWS. The delete changes the queue under its lock (see
    `change_each_queue_under_its_lock`), and finds the message in one pass.
    """
    from moto.sqs.exceptions import ReceiptHandleIsInvalid
    from moto.sqs.models import Queue

    def delete_message(self, receipt_handle):
        with queue_lock(self):
            if receipt_handle in self.deleted_messages:
                return  # already deleted: SQS accepts the repeat
            for index, message in enumerate(self._messages):
                if message.receipt_handle == receipt_handle:
                    break
                if receipt_handle in message._old_receipt_handles:
                    return  # received again since: SQS accepts it and keeps the message
            else:
                raise ReceiptHandleIsInvalid()
            self.pending_messages.discard(message)
            self.deleted_messages.update(message.all_receipt_handles)
            # A new list, as moto does: a reader counting the old one is not disturbed.
            self._messages = self._messages[:index] + self._messages[index + 1 :]

    Queue.delete_message = delete_message


def queue_lock(queue):
    """The lock every change to `queue`'s messages holds: moto's own condition, on which
    long polls wait and under which sends already appended. It is re-entrant, and a
    long poll waiting on it releases it however deeply it is held."""
    return queue._messages_lock


def change_each_queue_under_its_lock():
    """A queue's messages change one request at a time, so no request undoes another.

    SQS requests run on concurrent threads (only DynamoDB is serialised), and moto
    changes a queue's message list without a lock. A delete that walked the list to its
    message while another delete replaced the list then cut its index out of the new
    one: a neighbour nobody had received vanished, and the message meant stayed. Every
    path that replaces or changes the list, or the set of messages in flight, now holds
    `queue_lock`: deletes (`delete_only_with_the_latest_receipt_handle`), receives
    (which free lapsed claims and move messages to the dead-letter queue, taking that
    queue's lock inside their own; the template's dead-letter queues have none of their
    own, so no two requests wait on each other), visibility changes and purges; sends
    already appended under it. A receive holds it for its whole scan, and gives it up
    while a long poll waits. The interpreter lock never let these requests run in
    parallel anyway, so serialising them per queue costs nothing.
    """
    from moto.sqs.models import SQSBackend

    def under_the_queue_lock(method):
        @functools.wraps(method)
        def locked(self, queue_name, *args, **kwargs):
            with queue_lock(self.get_queue(queue_name)):
                return method(self, queue_name, *args, **kwargs)

        return locked

    for name in ("receive_message", "change_message_visibility", "purge_queue"):
        setattr(SQSBackend, name, under_the_queue_lock(getattr(SQSBackend, name)))


def cache_what_moto_recomputes_per_request():
    """Work moto repeats on every request although its answer never changes: listing its
    own package directory to recognise service names, and listing a response class's
    methods with `inspect`. Computed once instead, which the reliability runs' thousands
    of requests a minute notice; nothing about the answers changes."""
    import moto.backends as backends
    import moto.core.responses as responses

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    responses.method_names_from_class = functools.lru_cache(maxsize=None)(
        responses.method_names_from_class
    )


def send_without_counting_the_queue():
    """Sending a message (SNS fans every publish out to three queues) costs the same
    whatever the queue holds.

    moto's send reads the queue's attributes to learn one flag (content-based
    deduplication), and building them counts the queue's delayed, in-flight and visible
    messages: three scans of the whole backlog per message sent. While a send runs, the
    three counters answer 0 instead; the send never reads them, and every other request
    (GetQueueAttributes, the audit) still counts.
    """
    from moto.sqs.models import Queue, SQSBackend

    sending = threading.local()
    original_send = SQSBackend.send_message

    def send_message(self, *args, **kwargs):
        sending.active = True
        try:
            return original_send(self, *args, **kwargs)
        finally:
            sending.active = False

    def uncounted_while_sending(counter):
        def count(queue):
            return 0 if getattr(sending, "active", False) else counter.fget(queue)

        return property(count)

    for name in (
        "approximate_number_of_messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
    ):
        setattr(Queue, name, uncounted_while_sending(getattr(Queue, name)))
    SQSBackend.send_message = send_message


class NotPlainJson(Exception):
    """A DynamoDB result holds something `json.dumps` would not write as AWS does."""


def plain_json(value):
    """The wire form of a DynamoDB result, when it is plain JSON data already.

    moto's DynamoDB results are dicts shaped like the wire format. The only things its
    model-driven serializer changes in them are dropping `None` members and encoding
    binary attributes (B, BS), dates (epoch seconds, as here) and non-JSON types; so a
    result without the others is written as it is, and one with them raises
    NotPlainJson and takes the slow path."""
    if isinstance(value, dict):
        plain = {}
        for key, member in value.items():
            if key in ("B", "BS"):
                raise NotPlainJson(key)
            if member is not None:
                plain[key] = plain_json(member)
        return plain
    if isinstance(value, list):
        return [plain_json(member) for member in value]
    if value is None or type(value) in (str, int, float, bool):
        return value
    if type(value) is datetime.datetime:
        # The JSON protocol's default: seconds since the epoch, to the millisecond.
        return TimestampSerializer._timestamp_unixtimestamp(value)
    raise NotPlainJson(type(value).__name__)


def serialize_dynamodb_results_directly():
    """DynamoDB answers are written with `json.dumps`, not moto's generic serializer.

    The serializer walks the AWS model of every response and looks up each member under
    several spellings: a fifth of the emulator's time under load went there, on data
    that was already in its wire shape. `plain_json` checks that it is (otherwise the
    serializer runs as before). With MOTO_CHECK_FAST_JSON=<file> both run, and every
    difference is appended to that file and answered with the serializer's version.
    `make test` runs every test that way and fails on any difference, so a moto upgrade
    that changes an answer cannot slip through.
    """
    from moto.core.responses import ActionResult, BaseResponse, get_service_model
    from moto.dynamodb.responses import DynamoHandler, DynamoResult
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    handlers = (DynamoHandler, DynamoDBStreamsHandler)
    # Not PaginatedResult: it pages the result while serializing.
    results = (ActionResult, DynamoResult)

    original = BaseResponse.serialized
    check = os.environ.get("MOTO_CHECK_FAST_JSON")

    @functools.lru_cache(maxsize=None)
    def output_members(service, action):
        """The serializer writes only the members the AWS model declares (moto's
        results carry a few extras, such as DeleteItem's ConsumedCapacityUnits)."""
        shape = get_service_model(service).operation_model(action).output_shape
        return frozenset(shape.members) if shape is not None else frozenset()

    def serialized(self, action_result):
        if type(self) not in handlers or type(action_result) not in results:
            return original(self, action_result)
        result = action_result.result
        if not isinstance(result, dict):
            return original(self, action_result)
        members = output_members(self.boto3_service_name, self._get_action())
        try:
            body = json.dumps(
                {k: plain_json(v) for k, v in result.items() if k in members and v is not None}
            )
        except NotPlainJson:
            return original(self, action_result)
        headers = {"Content-Type": "application/x-amz-json-1.0"}
        headers.update(self.response_headers)
        if check:
            status, slow_headers, slow_body = original(self, action_result)
            if (status, slow_headers.get("Content-Type"), json.loads(slow_body)) != (
                200,
                headers["Content-Type"],
                json.loads(body),
            ):
                with open(check, "a", encoding="utf-8") as report:
                    print(f"{self._get_action()}: {body} != {slow_body}", file=report)
                return status, slow_headers, slow_body
        return 200, headers, body

    BaseResponse.serialized = serialized


def lex_each_condition_expression_once():
    """moto parses every ConditionExpression from its text on every request, twice (once
    to validate the names and values used, once to evaluate it), and lexing the text
    was its largest single cost under load. The pipeline sends a handful of distinct
    expressions with different values, so the lexed tokens (which hold no values: those
    are bound after lexing) are kept per expression text. The tokens are immutable
    tuples; each parse gets its own deque of them."""
    from collections import deque

    from moto.dynamodb.comparisons import ConditionExpressionParser

    lex = ConditionExpressionParser._lex_condition_expression

    @functools.lru_cache(maxsize=256)
    def lexed(parser_class, expression):
        parser = parser_class.__new__(parser_class)
        parser.condition_expression = expression
        return tuple(lex(parser))

    def lex_condition_expression(self):
        return deque(lexed(type(self), self.condition_expression))

    ConditionExpressionParser._lex_condition_expression = lex_condition_expression


def parse_each_update_expression_once():
    """moto parses every UpdateExpression from its text two or three times per request,
    and each validation deep-copies the parsed tree with copy.deepcopy, whose generic
    reconstruction was an eighth of the DynamoDB process under load. The pipeline sends
    a handful of distinct update expressions, so each text is parsed once and every
    caller gets its own copy, made by `clone_tree`, which knows the tree's shape: nodes
    hold only `type`, `children` and `parent`. Anything else goes to copy.deepcopy."""
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import Node
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    real_deepcopy = copy.deepcopy
    plain = (str, int, bool, float, type(None))

    class Unusual(Exception):
        """A tree clone_tree does not know how to copy exactly."""

    def clone(node, memo):
        if id(node) in memo:
            return memo[id(node)]
        new = object.__new__(type(node))
        memo[id(node)] = new
        for key, value in node.__dict__.items():
            if key == "parent":
                if value is not None and id(value) not in memo:
                    raise Unusual
                copied = None if value is None else memo[id(value)]
            elif key == "children" and type(value) is list:
                copied = [
                    clone(child, memo)
                    if isinstance(child, Node)
                    else child
                    if type(child) in plain
                    else real_deepcopy(child)
                    for child in value
                ]
            elif type(value) in plain:
                copied = value
            else:
                raise Unusual
            new.__dict__[key] = copied
        return new

    def clone_tree(value, memo=None):
        if memo is None and isinstance(value, Node) and value.parent is None:
            try:
                return clone(value, {})
            except Unusual:
                pass
        return real_deepcopy(value, memo)

    make = UpdateExpressionParser.make.__func__

    @functools.lru_cache(maxsize=256)
    def parsed(parser_class, expression):
        return make(parser_class, expression)

    def make_once(cls, expression):
        return clone_tree(parsed(cls, expression))

    validators.deepcopy = clone_tree
    UpdateExpressionParser.make = classmethod(make_once)


class DynamoDbWithoutFlask:
    """WSGI application for DynamoDB requests: moto's own DynamoDB handler, called
    without the Flask application moto wraps around every service.

    For a DynamoDB request Flask only routes to that one handler and copies its answer
    into a response; that, with moto's service dispatcher in front, was a sixth of the
    emulator's time under load. The handler gets the same normalised request moto's
    Flask app gives it, and its (status, headers, body) answer is sent as it is. Every
    other request (SQS, SNS, Secrets Manager, DynamoDB Streams) goes through moto's
    dispatcher as before."""

    TARGET_PREFIX = DYNAMODB_TARGET_PREFIXES[0]  # not the streams' prefix

    def __init__(self, app):
        from botocore.exceptions import ClientError
        from moto.core.request import Request
        from moto.dynamodb.responses import DynamoHandler
        from moto.moto_api import recorder
        from werkzeug.wrappers import Response

        class ServerRequest(Request):
            from_wsgi_server = True

        self.app = app
        self.handler = DynamoHandler
        self.request_class = ServerRequest
        self.response_class = Response
        self.client_error = ClientError
        self.recorder = recorder

    def __call__(self, environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith(self.TARGET_PREFIX):
            return self.app(environ, start_response)
        request = self.request_class(environ)
        self.recorder._record_request(request)
        try:
            answer = self.handler.dispatch(request, request.raw_url, dict(request.headers))
        except self.client_error as error:
            answer = 400, {}, error.response["Error"]["Message"]
        status, headers, body = answer if len(answer) == 3 else (200, {}, answer)
        response = self.response_class(response=body, status=status, headers=headers)
        return response(environ, start_response)


class QuietRequestHandler(MotoRequestHandler):
    """moto's request handler, with connections kept alive and no access log: for speed
    only, so with the speed patches off the server uses moto's own handler.

    werkzeug's development server closes the connection after every response, so every
    AWS request paid for a new TCP connection and a new thread, on both sides: about a
    quarter of the emulator's CPU under load went to the kernel. Here the connection
    stays open for the client's next request, as AWS endpoints do. werkzeug closes
    because it cannot tell an unread body from the next request; `WholeBodies` reads
    every body first, and `keep_connections_alive` turns off werkzeug's read-ahead
    that would otherwise swallow the next request. No access-log line either: at
    hundreds of requests a second, writing them costs more than some requests.

    Nagle's algorithm is off (TCP_NODELAY), as on any request/response server: werkzeug
    writes a response's headers and its body separately, so with Nagle on the body
    waited for the client to acknowledge the headers, and the client delays that
    acknowledgement by up to 40 ms hoping to piggyback it on data. On a kept-alive
    connection every AWS call took about 44 ms on an idle emulator; with it off, under
    a millisecond. That is the standard library's own switch
    (`socketserver.StreamRequestHandler.disable_nagle_algorithm`), not a patch.

    Why not a maintained server that keeps connections alive by design? Both candidates
    were measured on `make reliability`'s load scenario at scale 0.2 (2000 orders, both
    emulator processes on the same server, 2 cores, 2026-12-02): werkzeug with this
    handler placed 30.1 and 30.5 orders/s, and each run took 77 s and 75 s; waitress
    3.0.2 (64 threads) placed 26.4 and 25.0 orders/s, and each run took 152 s; cheroot
    11.1.2 placed 21.0 orders/s. Both hand every request from an I/O thread to a worker
    thread, and under the GIL that handoff costs more than these few lines do. The
    pinned versions (`refuse_unpinned_versions`) and the contract tests that run with
    the speed patches off (`make emulator-contract`) guard these lines instead."""

    disable_nagle_algorithm = True

    def send_header(self, keyword, value):
        if keyword.lower() == "connection" and value.lower() == "close":
            return
        super().send_header(keyword, value)

    def log_request(self, code="-", size="-"):
        pass

    def date_time_string(self, timestamp=None):
        """The Date header, formatted once a second rather than once a response."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        second = int(time.time())
        cached = QuietRequestHandler._date
        if cached[0] != second:
            cached = (second, super().date_time_string(second))
            QuietRequestHandler._date = cached
        return cached[1]

    _date = (0, "")


def keep_connections_alive():
    """After each response werkzeug reads whatever the client sent next, for up to 10 ms,
    and discards it: harmless when the connection then closes, but on a kept-alive
    connection that is the client's next request. `WholeBodies` has already read each
    body in full, so there is nothing of this request left to discard: the read-ahead's
    selector is replaced by one that never finds anything to read."""
    import selectors

    import werkzeug.serving as serving

    class NothingToDiscard:
        def register(self, fileobj, events, data=None):
            pass

        def select(self, timeout=None):
            return []

        def close(self):
            pass

    class Selectors:
        EVENT_READ = selectors.EVENT_READ
        DefaultSelector = NothingToDiscard

    serving.selectors = Selectors


def exit_when_parent_goes_away():
    sys.stdin.read()
    os._exit(0)


def requirements_path():
    """local/requirements.txt, found from this file's own path (../requirements.txt).
    LOCAL_EMULATOR_REQUIREMENTS names another file instead: it is for the launcher's
    tests (test_moto_launcher.py), which start it against a pin that does not match."""
    override = os.environ.get("LOCAL_EMULATOR_REQUIREMENTS")
    if override:
        return override
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "requirements.txt"))


def normalised_name(name):
    """A distribution's name as the packaging standards compare them (PEP 503):
    `Werkzeug` and `werkzeug`, `a_b` and `a-b` are the same package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_versions(text):
    """{normalised name: version} for each `name==version` line of a requirements file;
    extras (`moto[server]`), environment markers and comments are left out."""
    pins = {}
    for line in text.splitlines():
        requirement = line.split("#", 1)[0].split(";", 1)[0].strip()
        name, equals, version = requirement.partition("==")
        if equals:
            pins[normalised_name(name.split("[", 1)[0].strip())] = version.strip()
    return pins


# The packages whose private internals the patches below reach into.
PATCHED_PACKAGES = ("moto", "Werkzeug")


def refuse_unpinned_versions():
    """Exits with status 2, before anything is patched or READY printed, unless the
    installed moto and Werkzeug are the versions local/requirements.txt pins.

    This file monkeypatches about twenty private moto and werkzeug internals (methods,
    module globals, a selector werkzeug's server uses). Private code changes without
    notice between releases; against another version a patch may fail at once or, worse,
    quietly change what the emulator answers. So the launcher only runs on the versions
    the patches were written and tested against; `make venv` reinstalls them. Unreadable
    requirements mean the pins are unknown: refused too.
    """
    from importlib.metadata import PackageNotFoundError, version

    path = requirements_path()
    try:
        with open(path, encoding="utf-8") as requirements:
            pins = pinned_versions(requirements.read())
    except (OSError, UnicodeDecodeError) as error:
        print(
            f"moto_launcher: cannot read {path} ({error}), which pins the moto and "
            "Werkzeug versions the patches in this file are written against; refusing "
            "to start (`make venv` installs the pins)",
            file=sys.stderr,
        )
        sys.exit(2)
    problems = []
    for package in PATCHED_PACKAGES:
        pinned = pins.get(normalised_name(package))
        try:
            installed = version(package)
        except PackageNotFoundError:
            installed = "(not installed)"
        if pinned is None:
            problems.append(
                f"{path} pins no {package} version, and the patches in this file are "
                f"written against a pinned one ({package} {installed} is installed)"
            )
        elif installed != pinned:
            problems.append(
                f"{package} {installed} is installed but {path} pins {package}=={pinned}: "
                "the patches in this file are written against the pinned versions; "
                "`make venv` reinstalls the pins"
            )
    if problems:
        for problem in problems:  # one line per package that does not match
            print(f"moto_launcher: {problem}", file=sys.stderr)
        sys.exit(2)


SPEED_SWITCH = "LOCAL_EMULATOR_SPEED_PATCHES"


def speed_patches_on():
    """Whether to apply the speed patches: yes unless LOCAL_EMULATOR_SPEED_PATCHES=off.
    Any other value than on or off is refused (exit 2), so a typo cannot silently
    measure the wrong emulator."""
    value = os.environ.get(SPEED_SWITCH, "on").strip().lower()
    if value in ("on", ""):
        return True
    if value == "off":
        return False
    print(f"moto_launcher: {SPEED_SWITCH} is on or off, not {value!r}", file=sys.stderr)
    sys.exit(2)


# Every patch of moto and werkzeug, by why it exists (each one's docstring says more).
#
# Correctness: the emulator behaves as AWS does where the project relies on it. Always on.
CORRECTNESS_PATCHES = (
    # A cancelled transaction leaves no trace in the table or its stream (moto swapped
    # in deep copies, which open stream iterators never saw).
    roll_back_transactions_like_dynamodb,
    # A stale SQS receipt handle deletes nothing, as SQS documents.
    delete_only_with_the_latest_receipt_handle,
    # Concurrent SQS requests cannot undo each other's changes to a queue.
    change_each_queue_under_its_lock,
)
# Speed only: the same answers, sooner. Skipped with LOCAL_EMULATOR_SPEED_PATCHES=off.
# In order: `send_without_counting_the_queue` wraps the counters
# `count_queue_attributes_once` installs.
SPEED_PATCHES = (
    read_the_clock_cheaply,
    count_queue_attributes_once,
    scan_pages_from_their_start_key,
    keep_sqs_requests_independent_of_the_backlog,
    cache_what_moto_recomputes_per_request,
    send_without_counting_the_queue,
    serialize_dynamodb_results_directly,  # and its MOTO_CHECK_FAST_JSON check mode
    keep_connections_alive,
    lex_each_condition_expression_once,
    parse_each_update_expression_once,
)
# The server's layers are sorted the same way in `application` and `main`: speed only
# are `DynamoDbWithoutFlask` and `QuietRequestHandler` (kept-alive connections, no
# access log); always on are `WholeBodies`, `RequestCounter`, `FaultInjector`,
# `SerialDynamoDb` and `CapacityMeter` (the project's tools, and serialised DynamoDB),
# and `exit_when_parent_goes_away`.


def application(speed):
    """The WSGI application the server runs: moto behind our layers, outermost first.

    `CapacityMeter` is inside `SerialDynamoDb`, so it measures each DynamoDB request's
    items under the lock that serialises them; `RequestCounter` answers its endpoints
    and counts every request, faulted ones too, so it sits outside `FaultInjector`."""
    app = DomainDispatcherApplication(create_backend_app)
    if speed:
        app = DynamoDbWithoutFlask(app)
    meter = CapacityMeter(app)
    return WholeBodies(RequestCounter(FaultInjector(SerialDynamoDb(meter)), meter))


def main():
    refuse_unpinned_versions()
    speed = speed_patches_on()
    host = os.environ.get("MOTO_HOST", "127.0.0.1")
    port = int(os.environ.get("MOTO_PORT", "0"))
    for patch in CORRECTNESS_PATCHES:
        patch()
    if speed:
        for patch in SPEED_PATCHES:
            patch()
    else:
        print(
            f"moto_launcher: {SPEED_SWITCH}=off: speed patches skipped, "
            "correctness patches applied",
            file=sys.stderr,
        )
    server = make_server(
        host,
        port,
        application(speed),
        threaded=True,
        request_handler=QuietRequestHandler if speed else MotoRequestHandler,
    )
    # moto builds URLs (e.g. SQS queue URLs) from MOTO_PORT.
    os.environ["MOTO_PORT"] = str(server.server_port)
    threading.Thread(target=exit_when_parent_goes_away, daemon=True).start()
    print(f"READY {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
