"""Splink on DuckDB, on the files `safetynet generate` wrote, for BENCHMARKS.md.

    python3 benches/splink_departments.py DATA_DIR [DEPARTMENT]

DEPARTMENT is health (the default), civil_affairs, education or
social_insurance. Prepared by hand as a careful analyst would (NFKC, a
pinyin column, birth date and gender from the ID number, county codes,
and village codes where the extract writes them), trained with EM, then
the best candidate per department record above a threshold is taken as
the link. Prints one JSON object: seconds (preparation, training and
prediction) and the best F1 over thresholds. Needs: pip install splink
pypinyin.
"""

import json
import sys
import time
import unicodedata

import pandas as pd
from pypinyin import lazy_pinyin

import splink.comparison_library as cl
from splink import Linker, SettingsCreator, block_on
from splink.backends.duckdb import DuckDBAPI


def clean(text):
    if not isinstance(text, str):
        return None
    text = "".join(unicodedata.normalize("NFKC", text).split())
    return text or None


def clean_id(text):
    text = clean(text)
    if text is None:
        return None
    text = text.replace("-", "").upper()
    return text[:18] if len(text) > 18 else text


def birth_from_id(id_number):
    if isinstance(id_number, str) and len(id_number) == 18 and id_number[:17].isdigit():
        return f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}"
    return None


def gender_from_id(id_number):
    if isinstance(id_number, str) and len(id_number) == 18 and id_number[16].isdigit():
        return "男" if int(id_number[16]) % 2 else "女"
    return None


# Each department's columns as `safetynet generate` writes them: key, name,
# ID number, region code, gender, birth date.
DEPARTMENTS = {
    "health": ("结算流水号", "姓名", "证件号码", "参保地区划", "性别", "出生日期"),
    "civil_affairs": ("业务编号", "姓名", "身份证号", "行政区划代码", "性别", "出生日期"),
    "education": ("学籍号", "学生姓名", "身份证号", "学校所在地区划", "性别", "出生日期"),
    "social_insurance": ("业务流水号", "姓名", "公民身份号码", "参保地区划", "性别", "出生日期"),
}


def clean_date(text):
    """1951年7月8日 and 2017-09-24 00:00:00 alike, as pandas reads them."""
    if not isinstance(text, str):
        return None
    return text.replace("年", "-").replace("月", "-").replace("日", "").split(" ")[0]


def prepare(frame, key, name, id_col, region, gender=None, birth=None):
    out = pd.DataFrame({"unique_id": frame[key].astype(str)})
    out["name"] = frame[name].map(clean)
    out["name_pinyin"] = out["name"].map(lambda n: " ".join(lazy_pinyin(n)) if n else None)
    out["surname"] = out["name"].map(lambda n: n[0] if n else None)
    out["id_number"] = frame[id_col].map(clean_id)
    birth_col = out["id_number"].map(birth_from_id)
    if birth is not None:
        own = pd.to_datetime(frame[birth].map(clean_date), errors="coerce", format="mixed").dt.strftime("%Y-%m-%d")
        birth_col = birth_col.fillna(own)
    out["birth_date"] = birth_col
    gender_col = out["id_number"].map(gender_from_id)
    if gender is not None:
        gender_col = gender_col.fillna(frame[gender].map({"男": "男", "女": "女", "1": "男", "2": "女"}))
    out["gender"] = gender_col
    codes = frame[region].astype(str)
    out["county"] = codes.str[:6]
    # A village code has 12 digits; a county-only extract compares none.
    out["village"] = codes.where(codes.str.len() >= 12)
    return out


def main(data_dir, department):
    started = time.time()
    roster = pd.read_csv(f"{data_dir}/roster.csv", dtype=str)
    records = pd.read_csv(f"{data_dir}/{department}.csv", dtype=str)
    key, name, id_col, region, gender, birth = DEPARTMENTS[department]
    left = prepare(records, key, name, id_col, region, gender=gender, birth=birth)
    right = prepare(roster, "成员编号", "姓名", "证件号码", "村(社区)代码", gender="性别", birth="出生日期")

    db_api = DuckDBAPI()
    settings = SettingsCreator(
        link_type="link_only",
        comparisons=[
            cl.DamerauLevenshteinAtThresholds("id_number", [1, 2]),
            cl.JaroWinklerAtThresholds("name", [0.9, 0.8]).configure(term_frequency_adjustments=True),
            cl.ExactMatch("name_pinyin"),
            cl.ExactMatch("birth_date"),
            cl.ExactMatch("gender"),
            cl.ExactMatch("county"),
            cl.ExactMatch("village"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("id_number"),
            block_on("name_pinyin", "county"),
            block_on("birth_date", "surname"),
            block_on("substr(id_number, 1, 14)"),
        ],
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(
        [db_api.register(left, dataset_display_name="department"), db_api.register(right, dataset_display_name="roster")],
        settings,
        log_level=40,
    )
    linker.training.estimate_probability_two_random_records_match([block_on("id_number")], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("id_number"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("name_pinyin", "county"))
    predictions = linker.inference.predict(threshold_match_probability=0.5).as_pandas_dataframe()
    seconds = time.time() - started

    # Best candidate per department record.
    left_side = predictions["source_dataset_l"] == "department"
    predictions["record"] = predictions["unique_id_l"].where(left_side, predictions["unique_id_r"])
    predictions["member"] = predictions["unique_id_r"].where(left_side, predictions["unique_id_l"])
    best = predictions.sort_values("match_probability", ascending=False).drop_duplicates("record")
    member_id = dict(zip(roster["成员编号"], roster["证件号码"]))
    truth = pd.read_csv(f"{data_dir}/truth_{department}.csv", dtype=str).fillna("")
    true_id = dict(zip(truth["record_key"], truth["true_id_number"]))
    true_matches = sum(1 for v in true_id.values() if v)
    results = []
    for threshold in [0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999, 0.999999]:
        chosen = best[best["match_probability"] >= threshold]
        correct = sum(1 for r, m in zip(chosen["record"], chosen["member"]) if true_id.get(r) and member_id.get(m) == true_id.get(r))
        precision = correct / len(chosen) if len(chosen) else 0.0
        recall = correct / true_matches if true_matches else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        results.append({"threshold": threshold, "precision": precision, "recall": recall, "f1": f1})
    top = max(results, key=lambda r: r["f1"])
    print(json.dumps({"seconds": round(seconds, 2), "records": len(left), "roster": len(right), "best": top, "thresholds": results}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "health")
