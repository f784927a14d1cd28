"""Cross-check eddy's generated codecs against kio, an independent Python
implementation of the Kafka protocol (also generated from Kafka's JSON
definitions, by different code).

1. Dump encoded samples of every message and version:
       EDDY_SAMPLE_DUMP=/tmp/samples.txt cargo test -p eddy-protocol --lib messages
   (each line: `<MessageName> <version> <hex>`; the dumped samples use small
   non-negative integers, which kio's typed fields such as error codes and
   durations accept).
2. In a virtualenv with `pip install kio`:
       python crates/eddy-codegen/crosscheck/kio_crosscheck.py /tmp/samples.txt

For each sample whose (message, version) kio knows, kio must parse all the
bytes and re-serialize them to exactly the same bytes.
"""

import collections
import re
import sys

from kio.index import load_entity_schema
from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType


def snake(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def schema_of(name, version):
    if name in ("RequestHeader", "ResponseHeader"):
        base, kind = snake(name), EntityType.header
    elif name.endswith("Request"):
        base, kind = snake(name[: -len("Request")]), EntityType.request
    elif name.endswith("Response"):
        base, kind = snake(name[: -len("Response")]), EntityType.response
    else:
        base, kind = snake(name), EntityType.data
    return load_entity_schema(base, version, kind)


def main(path):
    stats = collections.Counter()
    failures = collections.defaultdict(list)
    for line in open(path):
        parts = line.split()
        name, version = parts[0], int(parts[1])
        data = bytes.fromhex(parts[2]) if len(parts) > 2 else b""
        try:
            cls = schema_of(name, version)
        except Exception:
            stats["unknown to kio"] += 1
            continue
        try:
            obj, size = entity_reader(cls)(data, 0)
            if size != len(data):
                raise ValueError(f"{len(data) - size} trailing bytes")
            out = bytearray()

            class Sink:
                def write(self, b):
                    out.extend(b)

            entity_writer(cls)(Sink(), obj)
            if bytes(out) != data:
                raise ValueError("re-serialized bytes differ")
            stats["identical"] += 1
        except Exception as e:  # noqa: BLE001
            stats["failed"] += 1
            failures[(name, version)].append(repr(e)[:200])
    print(dict(stats))
    for key, errs in sorted(failures.items()):
        print(key, len(errs), errs[0])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
