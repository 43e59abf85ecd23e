"""Tests of moto_launcher.py: DynamoDB's item sizes and capacity units, the version guard,
and the launcher serving AWS requests with the speed patches on and off.

Run them (a few seconds, no network beyond 127.0.0.1):

    cd /work/main && .venv/bin/python -m unittest discover -s local/emulator -p 'test_*.py'

The expected sizes below come from the rules of the DynamoDB Developer Guide ("DynamoDB
item sizes and formats"; "DynamoDB read and write operations"; "Amazon DynamoDB
Transactions: How it works"), worked out by hand in the comments, never from the
implementation's output.
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.request
from importlib.metadata import version

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCHER = os.path.join(HERE, "moto_launcher.py")
sys.path.insert(0, HERE)

import moto_launcher as launcher  # noqa: E402  (needs HERE on the path)


def text(length):
    """A string of `length` one-byte characters."""
    return "x" * length


def b64(raw):
    return base64.b64encode(raw).decode()


class ItemSizeTest(unittest.TestCase):
    """`item_size` by the rules of "DynamoDB item sizes and formats"."""

    def test_string_is_name_plus_utf8_bytes(self):
        # "Name" 4 + "Alice" 5 = 9
        self.assertEqual(launcher.item_size({"Name": {"S": "Alice"}}), 9)
        # "café" is 5 UTF-8 bytes (é takes 2), "naïve" 6 (ï takes 2): 5 + 6 = 11
        self.assertEqual(launcher.item_size({"café": {"S": "naïve"}}), 11)

    def test_numbers_take_a_byte_per_two_significant_digits_plus_one(self):
        cases = {
            "1": 2,  # 1 digit: 1 byte (rounded up) + 1 = 2
            "456": 3,  # 3 digits: 2 + 1 = 3
            "650": 2,  # trailing zero trimmed, "65": 1 + 1 = 2
            "0.0105": 3,  # leading and trailing zeros trimmed, "105": 2 + 1 = 3
            "-12.50": 3,  # sign and point not digits, "125": 2 + 1 = 3
            "1E+5": 2,  # 100000, "1": 1 + 1 = 2
            "0": 1,  # no significant digit: 0 + 1 = 1
            "12345678901234567890123456789012345678": 20,  # 38 digits: 19 + 1 = 20
        }
        for number, size in cases.items():
            with self.subTest(number=number):
                # The name "n" adds 1 byte.
                self.assertEqual(launcher.item_size({"n": {"N": number}}), 1 + size)

    def test_the_guides_product_catalog_item(self):
        # The item of the guide's "Condition expressions" examples:
        # "Id" 2 + 456 (3 digits: 2 + 1) 3 = 5
        # "ProductCategory" 15 + "Sporting Goods" 14 = 29
        # "Price" 5 + 650 ("65": 1 + 1) 2 = 7
        item = {
            "Id": {"N": "456"},
            "ProductCategory": {"S": "Sporting Goods"},
            "Price": {"N": "650"},
        }
        self.assertEqual(launcher.item_size(item), 5 + 29 + 7)

    def test_binary_counts_raw_bytes_not_base64(self):
        # "Pic" 3 + 10 raw bytes = 13 (the base64 text is 16 characters)
        self.assertEqual(launcher.item_size({"Pic": {"B": b64(bytes(range(10)))}}), 13)

    def test_boolean_and_null_take_one_byte(self):
        # ("Done" 4 + 1) + ("Gone" 4 + 1) = 10
        item = {"Done": {"BOOL": True}, "Gone": {"NULL": True}}
        self.assertEqual(launcher.item_size(item), 10)

    def test_list_is_three_bytes_plus_each_element_and_a_byte(self):
        # "Tags" 4 + 3 + ("a" 1 + 1) + ("bc" 2 + 1) = 12
        item = {"Tags": {"L": [{"S": "a"}, {"S": "bc"}]}}
        self.assertEqual(launcher.item_size(item), 12)
        # An empty list or map: name + 3. "L" 1 + 3 = 4, "M" 1 + 3 = 4
        self.assertEqual(launcher.item_size({"L": {"L": []}}), 4)
        self.assertEqual(launcher.item_size({"M": {"M": {}}}), 4)

    def test_map_elements_count_their_names(self):
        # "Addr" 4 + 3 + ("City" 4 + "Oslo" 4 + 1) + ("Zip" 3 + 150 ("15": 2) + 1)
        # = 4 + 3 + 9 + 6 = 22
        item = {"Addr": {"M": {"City": {"S": "Oslo"}, "Zip": {"N": "150"}}}}
        self.assertEqual(launcher.item_size(item), 22)
        # Nested: "a" 1 + map 3 + ("b" 1 + list (3 + ("c" 1 + 1)) + 1)
        # = 1 + 3 + (1 + 5 + 1) = 11
        nested = {"a": {"M": {"b": {"L": [{"S": "c"}]}}}}
        self.assertEqual(launcher.item_size(nested), 11)

    def test_sets_are_the_sum_of_their_members(self):
        # "Colors" 6 + "ab" 2 + "c" 1 = 9
        self.assertEqual(launcher.item_size({"Colors": {"SS": ["ab", "c"]}}), 9)
        # "Ns" 2 + 1 (2) + 22 (2) + 333 (3) = 9
        self.assertEqual(launcher.item_size({"Ns": {"NS": ["1", "22", "333"]}}), 9)
        # "Bs" 2 + 2 raw bytes + 3 raw bytes = 7
        self.assertEqual(launcher.item_size({"Bs": {"BS": [b64(b"ab"), b64(b"cde")]}}), 7)


class UnitsTest(unittest.TestCase):
    """Capacity units from item sizes, by "DynamoDB read and write operations" and
    "Amazon DynamoDB Transactions: How it works"."""

    def test_the_guides_rounding_examples(self):
        self.assertEqual(launcher.write_units(1024), 1)  # 1 KB: 1 unit
        self.assertEqual(launcher.write_units(1025), 2)  # just over 1 KB: 2
        self.assertEqual(launcher.write_units(500), 1)  # "a 500-byte item ... a 1 KB item"
        self.assertEqual(launcher.write_units(1638), 2)  # "an item of 1.6 KB ... 2 KB"
        self.assertEqual(launcher.write_units(0), 1)  # at least one
        self.assertEqual(launcher.read_units(3500), 1.0)  # "a 3,500-byte item ... 4 KB"
        self.assertEqual(launcher.read_units(10 * 1024), 3.0)  # "10 KB ... to 12 KB"
        self.assertEqual(launcher.read_units(8 * 1024), 2.0)  # 8 KB strongly: 2
        self.assertEqual(launcher.read_units(8 * 1024, False), 1.0)  # eventually: 1
        self.assertEqual(launcher.read_units(0, False), 0.5)  # a missing item: 0.5

    def units(self, operation, request, before, after=None):
        return launcher.capacity_units(operation, request, before, after or before)

    def test_put_pays_for_the_larger_of_the_old_and_new_item(self):
        self.assertEqual(self.units("PutItem", {}, [None], [1024]), (0.0, 1.0))
        self.assertEqual(self.units("PutItem", {}, [None], [1025]), (0.0, 2.0))
        # Replacing a 2,000-byte item with a 100-byte one pays for 2,000 bytes: 2.
        self.assertEqual(self.units("PutItem", {}, [2000], [100]), (0.0, 2.0))

    def test_update_that_grows_past_1_kb_pays_the_after_size(self):
        # 1,000 bytes before (1 unit), 1,100 after (2 units): the larger, 2.
        self.assertEqual(self.units("UpdateItem", {}, [1000], [1100]), (0.0, 2.0))

    def test_delete_pays_the_deleted_items_size(self):
        self.assertEqual(self.units("DeleteItem", {}, [3000], [None]), (0.0, 3.0))
        self.assertEqual(self.units("DeleteItem", {}, [None], [None]), (0.0, 1.0))

    def test_a_failed_condition_pays_the_existing_item(self):
        # The item is unchanged, so before == after: 1,500 bytes, 2 units; none: 1.
        self.assertEqual(self.units("PutItem", {}, [1500]), (0.0, 2.0))
        self.assertEqual(self.units("UpdateItem", {}, [None]), (0.0, 1.0))

    def test_a_transaction_counts_every_item_twice(self):
        # The guide's example: three 500-byte items written, 2 units each: 6.
        three = {"TransactItems": [{"Put": {}}, {"Put": {}}, {"Put": {}}]}
        self.assertEqual(self.units("TransactWriteItems", three, [None] * 3, [500] * 3), (0.0, 6.0))
        request = {
            "TransactItems": [
                {"Put": {}},  # new, 500 bytes: 2 x 1 = 2
                {"Update": {}},  # 900 -> 1,100 bytes: 2 x 2 = 4
                {"Delete": {}},  # 3,000 bytes: 2 x 3 = 6
                {"ConditionCheck": {}},  # 2,500 bytes: 2 x 3 = 6
            ]
        }
        before = [None, 900, 3000, 2500]
        after = [500, 1100, None, 2500]
        self.assertEqual(self.units("TransactWriteItems", request, before, after), (0.0, 18.0))
        # The guide's read example: three 500-byte items read in a transaction: 6.
        self.assertEqual(self.units("TransactGetItems", {}, [500] * 3), (6.0, 0.0))

    def test_get_item(self):
        # 5,000 bytes: two 4 KB blocks; strongly 2, eventually 1.
        self.assertEqual(self.units("GetItem", {"ConsistentRead": True}, [5000]), (2.0, 0.0))
        self.assertEqual(self.units("GetItem", {}, [5000]), (1.0, 0.0))
        self.assertIsNone(self.units("Query", {}, []))


def signed_by(caller, region="us-east-1"):
    """An Authorization header as SigV4 writes it (moto checks no signature)."""
    return (
        f"AWS4-HMAC-SHA256 Credential={caller}/20260101/{region}/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-target, Signature=0"
    )


class MeterTest(unittest.TestCase):
    """`CapacityMeter` in the launcher's WSGI stack, over moto's real DynamoDB backend, in
    this process (no patch applied, no server): the sizes it reads before and after.
    DynamoDB goes through moto's Flask app, as with the speed patches off."""

    SPEED = False
    TABLE = "Meter"

    @classmethod
    def setUpClass(cls):
        from werkzeug.test import Client

        cls.client = Client(launcher.application(speed=cls.SPEED))
        cls.call("test", "CreateTable", {
            "TableName": cls.TABLE,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        })

    @classmethod
    def call(cls, caller, operation, request):
        response = cls.client.post(
            "/",
            data=json.dumps(request),
            headers={
                "X-Amz-Target": f"DynamoDB_20120810.{operation}",
                "Content-Type": "application/x-amz-json-1.0",
                "Authorization": signed_by(caller),
            },
        )
        return response.status_code, response.get_json()

    def units_of(self, operation, request, expect_status=200):
        """The units one request adds to a fresh caller's count."""
        self.client.delete(launcher.RequestCounter.UNITS_PATH)
        status, answer = self.call("Meter", operation, request)
        self.assertEqual(status, expect_status, answer)
        units = self.client.get(launcher.RequestCounter.UNITS_PATH).get_json()
        mine = units.get("Meter", {"read": 0.0, "write": 0.0})
        return mine["read"], mine["write"]

    @staticmethod
    def item(key, size):
        """An item of exactly `size` bytes: "pk" 2 + key + "data" 4 + the rest."""
        return {"pk": {"S": key}, "data": {"S": text(size - 2 - len(key) - 4)}}

    def test_put_at_the_1_kb_boundary_and_a_replacing_put(self):
        put = {"TableName": self.TABLE, "Item": self.item("a", 1024)}
        self.assertEqual(self.units_of("PutItem", put), (0.0, 1.0))
        bigger = {"TableName": self.TABLE, "Item": self.item("a", 1025)}
        self.assertEqual(self.units_of("PutItem", bigger), (0.0, 2.0))
        # A small item replacing the 1,025-byte one pays for the bigger: 2.
        small = {"TableName": self.TABLE, "Item": self.item("a", 100)}
        self.assertEqual(self.units_of("PutItem", small), (0.0, 2.0))

    def test_update_growing_past_1_kb_and_delete(self):
        self.units_of("PutItem", {"TableName": self.TABLE, "Item": self.item("u", 1000)})
        # SET data to a string 100 bytes longer: 1,100 bytes after, 2 units.
        update = {
            "TableName": self.TABLE,
            "Key": {"pk": {"S": "u"}},
            "UpdateExpression": "SET #d = :d",
            "ExpressionAttributeNames": {"#d": "data"},
            "ExpressionAttributeValues": {":d": {"S": text(1100 - 2 - 1 - 4)}},
        }
        self.assertEqual(self.units_of("UpdateItem", update), (0.0, 2.0))
        # Deleting the 1,100-byte item pays its size: 2; deleting nothing: 1.
        delete = {"TableName": self.TABLE, "Key": {"pk": {"S": "u"}}}
        self.assertEqual(self.units_of("DeleteItem", delete), (0.0, 2.0))
        self.assertEqual(self.units_of("DeleteItem", delete), (0.0, 1.0))

    def test_a_failed_condition_is_charged_a_cancelled_transaction_is_not(self):
        self.units_of("PutItem", {"TableName": self.TABLE, "Item": self.item("c", 1500)})
        put = {
            "TableName": self.TABLE,
            "Item": self.item("c", 10),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        # Fails on the existing 1,500-byte item, which it is charged for: 2.
        self.assertEqual(self.units_of("PutItem", put, expect_status=400), (0.0, 2.0))
        cancelled = {"TransactItems": [{"Put": put}]}
        self.assertEqual(
            self.units_of("TransactWriteItems", cancelled, expect_status=400), (0.0, 0.0)
        )

    def test_a_transaction_counts_twice_and_reads_by_consistency(self):
        self.units_of("PutItem", {"TableName": self.TABLE, "Item": self.item("t1", 2500)})
        transaction = {
            "TransactItems": [
                # New, 500 bytes: 2 x 1 = 2
                {"Put": {"TableName": self.TABLE, "Item": self.item("t2", 500)}},
                # The 2,500-byte item checked: 2 x 3 = 6
                {
                    "ConditionCheck": {
                        "TableName": self.TABLE,
                        "Key": {"pk": {"S": "t1"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        }
        self.assertEqual(self.units_of("TransactWriteItems", transaction), (0.0, 8.0))
        get = {"TableName": self.TABLE, "Key": {"pk": {"S": "t1"}}}
        # 2,500 bytes: one 4 KB block; eventually 0.5, strongly 1.
        self.assertEqual(self.units_of("GetItem", get), (0.5, 0.0))
        self.assertEqual(self.units_of("GetItem", {**get, "ConsistentRead": True}), (1.0, 0.0))
        both = {"TransactItems": [{"Get": get}, {"Get": {**get, "Key": {"pk": {"S": "t2"}}}}]}
        self.assertEqual(self.units_of("TransactGetItems", both), (4.0, 0.0))


class MeterWithoutFlaskTest(MeterTest):
    """The same, with DynamoDB answered by `DynamoDbWithoutFlask`, as with the speed
    patches on (its error answers take another path than Flask's)."""

    SPEED = True
    TABLE = "MeterWithoutFlask"


def start_launcher(**env):
    """The launcher as a subprocess: (process, port or None, stderr file). It exits when
    its stdin closes; stderr goes to a file so a chatty emulator never blocks on it."""
    environment = {**os.environ, "MOTO_PORT": "0"}
    # Only what this test sets: not a switch or requirements file the caller exported.
    environment.pop("LOCAL_EMULATOR_SPEED_PATCHES", None)
    environment.pop("LOCAL_EMULATOR_REQUIREMENTS", None)
    environment.update(env)
    stderr = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, LAUNCHER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=environment,
    )
    first_line = []
    reader = threading.Thread(target=lambda: first_line.append(process.stdout.readline()))
    reader.start()
    reader.join(timeout=90)
    line = first_line[0].decode() if first_line else ""
    port = int(line.split()[1]) if line.startswith("READY ") else None
    return process, port, stderr


def stop(process, stderr):
    """Closes the launcher's stdin (it exits) and returns what it wrote on stderr."""
    process.stdin.close()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()
    stderr.seek(0)
    text = stderr.read().decode("utf-8", "replace")
    stderr.close()
    return text


class VersionGuardTest(unittest.TestCase):
    """The launcher refuses to start on versions other than the pinned ones."""

    def run_with(self, requirements_path):
        return subprocess.run(
            [sys.executable, LAUNCHER],
            stdin=subprocess.DEVNULL,  # were it to start, it would exit at once
            capture_output=True,
            env={**os.environ, "MOTO_PORT": "0", "LOCAL_EMULATOR_REQUIREMENTS": requirements_path},
            timeout=90,
        )

    def test_a_different_moto_pin_is_refused(self):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as pins:
            pins.write(f"moto[server]==0.0.1\nWerkzeug=={version('werkzeug')}\n")
        try:
            result = self.run_with(pins.name)
        finally:
            os.unlink(pins.name)
        stderr = result.stderr.decode()
        self.assertEqual(result.returncode, 2, stderr)
        self.assertNotIn(b"READY", result.stdout)
        self.assertIn("moto", stderr)
        self.assertIn("0.0.1", stderr)  # the pinned version
        self.assertIn(version("moto"), stderr)  # the installed one
        self.assertIn("written against the pinned versions", stderr)
        self.assertEqual(len(stderr.strip().splitlines()), 1, stderr)  # Werkzeug matches

    def test_unreadable_requirements_are_refused(self):
        result = self.run_with(os.path.join(HERE, "no-such-requirements.txt"))
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertNotIn(b"READY", result.stdout)
        self.assertIn(b"cannot read", result.stderr)

    def test_the_real_pins_match(self):
        # The project's own file, which the launcher reads when not told otherwise.
        with open(launcher.requirements_path(), encoding="utf-8") as requirements:
            pins = launcher.pinned_versions(requirements.read())
        self.assertEqual(pins["moto"], version("moto"))
        self.assertEqual(pins["werkzeug"], version("werkzeug"))


class ServesTest(unittest.TestCase):
    """The launcher, started as the project starts it, serves DynamoDB (and meters it),
    SQS and SNS, with the speed patches off and on."""

    def serve(self, speed):
        env = {} if speed is None else {"LOCAL_EMULATOR_SPEED_PATCHES": speed}
        process, port, stderr = start_launcher(**env)
        try:
            self.assertIsNotNone(port, "the launcher printed no READY line")
            self.exercise(port)
            # werkzeug's own handler closes every connection; ours keeps it open.
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_local/requests") as answer:
                connection = answer.headers.get("Connection")
        finally:
            errors = stop(process, stderr)
        return connection, errors

    def exercise(self, port):
        import boto3

        def client(service, caller="ServesTest"):
            return boto3.client(
                service,
                endpoint_url=f"http://127.0.0.1:{port}",
                region_name="us-east-1",
                aws_access_key_id=caller,
                aws_secret_access_key="dummy",
            )

        dynamodb = client("dynamodb")
        dynamodb.create_table(
            TableName="Served",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        # "pk" 2 + "k" 1 + "data" 4 + 1,018 = 1,025 bytes: 2 write units.
        item = {"pk": {"S": "k"}, "data": {"S": text(1018)}}
        dynamodb.put_item(TableName="Served", Item=item)
        got = dynamodb.get_item(TableName="Served", Key={"pk": {"S": "k"}})  # 0.5 read
        self.assertEqual(got["Item"], item)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_local/capacity-units") as answer:
            units = json.load(answer)
        self.assertEqual(units["ServesTest"], {"read": 0.5, "write": 2.0})

        sqs = client("sqs")
        queue = sqs.create_queue(QueueName="served")["QueueUrl"]
        sns = client("sns")
        topic = sns.create_topic(Name="served")["TopicArn"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=arn["Attributes"]["QueueArn"],
            Attributes={"RawMessageDelivery": "true"},
        )
        sns.publish(TopicArn=topic, Message="hello")
        received = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5)["Messages"]
        self.assertEqual([message["Body"] for message in received], ["hello"])
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=received[0]["ReceiptHandle"])
        self.assertNotIn("Messages", sqs.receive_message(QueueUrl=queue))

    def test_with_the_speed_patches_off(self):
        connection, errors = self.serve("off")
        self.assertEqual(connection, "close")
        self.assertIn("speed patches skipped", errors)
        self.assertNotIn("Traceback", errors)

    def test_with_the_speed_patches_on(self):
        connection, errors = self.serve(None)
        self.assertIsNone(connection)
        self.assertNotIn("speed patches skipped", errors)
        self.assertNotIn("Traceback", errors)


if __name__ == "__main__":
    unittest.main()
