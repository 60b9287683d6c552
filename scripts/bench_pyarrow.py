#!/usr/bin/env python3
"""pyarrow's side of `carelake bench load --python PY`.

Arguments: a CSV file, an output folder, and the number of runs. Each run reads the CSV with
pyarrow's multi-threaded reader (types inferred, as carelake infers them) and writes one Parquet
file (snappy, as carelake writes) into a fresh sub-folder. Prints JSON: pyarrow's version, the
rows read and the seconds of each run.
"""

import json
import os
import shutil
import sys
import time

import pyarrow
import pyarrow.csv
import pyarrow.parquet


def main():
    source, out, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    times = []
    rows = 0
    for run in range(runs):
        target = os.path.join(out, f"run-{run}")
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(target)
        started = time.perf_counter()
        table = pyarrow.csv.read_csv(source)
        pyarrow.parquet.write_table(table, os.path.join(target, "part-0.parquet"), compression="snappy")
        times.append(time.perf_counter() - started)
        rows = table.num_rows
        del table
        shutil.rmtree(target, ignore_errors=True)
    json.dump({"pyarrow": pyarrow.__version__, "rows": rows, "seconds": times}, sys.stdout)


if __name__ == "__main__":
    main()
