"""Splink (DuckDB backend) on FEBRL 4, for comparison with `cargo test -p carelake-link febrl`
and `cargo bench -p carelake-link`. Follows Splink's published FEBRL 4 example: name, date of
birth, SSN, address comparisons, u by random sampling, m by EM in two sessions (blocked on date
of birth, then on postcode), prediction at match probability >= 0.5. Prints precision, recall,
F1 against the true links, and the time end to end (reading the CSVs to clustered pairs).

    python3 -m venv /tmp/splink && /tmp/splink/bin/pip install "splink==5.0.*"
    /tmp/splink/bin/python scripts/bench_splink_febrl.py
"""
import os
import sys
import time

import pandas as pd
import splink
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

root = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "febrl")
if not os.path.isdir(root):
    sys.exit(f"skipped: {root} is absent")

start = time.perf_counter()
read = lambda name: pd.read_csv(os.path.join(root, name), dtype=str, skipinitialspace=True).fillna("")
a = read("dataset4a.csv")
b = read("dataset4b.csv")
for df in (a, b):
    for c in df.columns:
        df[c] = df[c].str.strip().replace("", None)

settings = SettingsCreator(
    unique_id_column_name="rec_id",
    link_type="link_only",
    blocking_rules_to_generate_predictions=[
        block_on("given_name", "surname"),
        "l.given_name = r.surname and l.surname = r.given_name",
        block_on("date_of_birth"),
        block_on("soc_sec_id"),
        block_on("state", "address_1"),
        block_on("street_number", "address_1"),
        block_on("postcode"),
    ],
    comparisons=[
        cl.NameComparison("given_name"),
        cl.NameComparison("surname"),
        cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d"),
        cl.DamerauLevenshteinAtThresholds("soc_sec_id", [2]),
        cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
        cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
        cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
        cl.JaroWinklerAtThresholds("suburb", [0.9, 0.7]),
    ],
    retain_intermediate_calculation_columns=False,
)
db_api = DuckDBAPI()
linker = Linker([db_api.register(a, table_name="a"), db_api.register(b, table_name="b")], settings)
linker.training.estimate_probability_two_random_records_match(
    [block_on("given_name", "surname", "date_of_birth")], recall=0.6
)
linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
linker.training.estimate_parameters_using_expectation_maximisation(block_on("postcode"))
pred = linker.inference.predict(threshold_match_probability=0.5).as_pandas_dataframe()
elapsed = time.perf_counter() - start

truth = pd.read_csv(os.path.join(root, "febrl4_true_links.DERIVED.csv"))
true_pairs = {tuple(sorted(p)) for p in zip(truth.rec_id_a, truth.rec_id_b)}
found = {tuple(sorted(p)) for p in zip(pred.rec_id_l, pred.rec_id_r)}
tp = len(found & true_pairs)
precision = tp / len(found) if found else 1.0
recall = tp / len(true_pairs)
f1 = 2 * precision * recall / (precision + recall)
print(
    f"Splink {splink.__version__} (DuckDB) FEBRL 4: precision {precision:.4f}, recall {recall:.4f}, "
    f"F1 {f1:.4f} ({len(found)} predicted, {len(true_pairs)} true, {tp} correct); "
    f"{elapsed:.2f} s end to end"
)
