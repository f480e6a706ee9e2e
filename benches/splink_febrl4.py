"""Splink on DuckDB on FEBRL4 (sample_data/febrl4), for BENCHMARKS.md.

    python3 benches/splink_febrl4.py sample_data/febrl4

The same blocking rules, comparisons, prior and training sessions as
pipelines/examples/febrl4/linkage.toml, written the Splink way. Prints one
JSON object: seconds (loading, training and prediction), and precision,
recall and F1 of the best candidate per record of data set b at
match probability 0.9, the example's link threshold. Needs: pip install splink.
"""

import json
import sys
import time

import pandas as pd

import splink.comparison_library as cl
from splink import Linker, SettingsCreator, block_on
from splink.backends.duckdb import DuckDBAPI

COLUMNS = {"surname": "family_name"}


def load(path):
    frame = pd.read_csv(path, dtype=str, skipinitialspace=True, keep_default_na=False)
    frame.columns = [c.strip() for c in frame.columns]
    frame = frame.rename(columns=COLUMNS)
    for column in frame.columns:
        frame[column] = frame[column].str.strip().replace("", None)
    return frame.rename(columns={"rec_id": "unique_id"})


def main(data):
    started = time.time()
    a = load(f"{data}/dataset4a.csv")
    b = load(f"{data}/dataset4b.csv")
    settings = SettingsCreator(
        link_type="link_only",
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "family_name"),
            block_on("date_of_birth"),
            block_on("soc_sec_id"),
            block_on("postcode", "street_number"),
            block_on("family_name", "suburb"),
            block_on("family_name", "street_number"),
            block_on("given_name", "address_1"),
        ],
        comparisons=[
            cl.JaroWinklerAtThresholds("given_name", [0.95, 0.88]).configure(
                term_frequency_adjustments=True
            ),
            cl.JaroWinklerAtThresholds("family_name", [0.95, 0.88]).configure(
                term_frequency_adjustments=True
            ),
            cl.DamerauLevenshteinAtThresholds("date_of_birth", [1, 2]),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number"),
            cl.JaroWinklerAtThresholds("address_1", [0.9]),
            cl.JaroWinklerAtThresholds("suburb", [0.9]),
            cl.DamerauLevenshteinAtThresholds("postcode", [1]),
            cl.ExactMatch("state"),
        ],
        retain_intermediate_calculation_columns=False,
    )
    db_api = DuckDBAPI()
    linker = Linker(
        [
            db_api.register(a, dataset_display_name="febrl4a"),
            db_api.register(b, dataset_display_name="febrl4b"),
        ],
        settings,
        log_level=40,
    )
    linker.training.estimate_probability_two_random_records_match(
        [block_on("soc_sec_id", "date_of_birth")], recall=0.6
    )
    # 2,000 × 2,000 random pairs, as the example's u_sample.
    linker.training.estimate_u_using_random_sampling(max_pairs=4e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("soc_sec_id"), estimate_without_term_frequencies=True
    )
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("given_name", "family_name", "date_of_birth"),
        estimate_without_term_frequencies=True,
    )
    pairs = linker.inference.predict().as_pandas_dataframe()
    seconds = time.time() - started

    # The best candidate in a for each record of b.
    left_is_b = pairs["source_dataset_l"] == "febrl4b"
    pairs["record"] = pairs["unique_id_l"].where(left_is_b, pairs["unique_id_r"])
    pairs["candidate"] = pairs["unique_id_r"].where(left_is_b, pairs["unique_id_l"])
    best = pairs.sort_values("match_probability", ascending=False).drop_duplicates("record")
    linked = best[best["match_probability"] >= 0.9]
    truth = linked["record"].str.replace(r"-dup-\d+$", "-org", regex=True)
    correct = int((truth == linked["candidate"]).sum())
    precision = correct / max(len(linked), 1)
    recall = correct / len(b)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    print(
        json.dumps(
            {
                "seconds": round(seconds, 2),
                "links": len(linked),
                "precision": round(precision, 4),
                "recall": round(recall, 4),
                "f1": round(f1, 4),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
