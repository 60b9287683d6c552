"""python-hl7 on the same messages as `cargo bench -p carelake-hl7` (run with the venv of
scripts/test.sh after `pip install hl7`). Prints messages/s and MB/s for `hl7.parse`."""
import glob
import os
import sys
import time

import hl7

root = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "hl7v2", "microsoft-fhir-converter")
messages = []
for path in sorted(glob.glob(os.path.join(root, "*.hl7"))):
    text = open(path, "rb").read().decode("utf-8", "replace").lstrip("\ufeff")
    messages.append(text.replace("\r\n", "\r").replace("\n", "\r"))
if not messages:
    sys.exit("skipped: shared HL7 samples are absent")
size = sum(len(m.encode()) for m in messages)
rounds = 0
start = time.perf_counter()
while time.perf_counter() - start < 3:
    for m in messages:
        hl7.parse(m)
    rounds += 1
secs = time.perf_counter() - start
print(f"python-hl7 {hl7.__version__ if hasattr(hl7, '__version__') else ''}: "
      f"{rounds * len(messages) / secs:.0f} messages/s, {rounds * size / 1e6 / secs:.2f} MB/s")
