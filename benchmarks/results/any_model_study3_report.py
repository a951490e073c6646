"""Tables of a study3 run: each variant against uniform on the same splits.

``python results/any_model_study3_report.py OUT.json [OUT2.json ...]`` from
``benchmarks/``. Per cell: the variant's median ratio to uniform's median
(accuracy: above 1 is better; MSE: below 1), and the issue's verdict
(one-sided Mann-Whitney p < 0.05 and medians > 2% apart); for
classification also the verdict on the error rate (secondary view).
"""

import json
import sys

sys.path.insert(0, ".")
import numpy as np  # noqa: E402
from bench_any_model import verdict  # noqa: E402

FILES = {
    "classification|LogReg": "logreg",
    "classification|HGB": "hgb",
    "regression|HGB": "reg_hgb",
    "regression|OHE+Ridge": "reg_ohe",
}


def main():
    data = {}
    for path in sys.argv[1:]:
        for key, runs in json.load(open(path)).items():
            for r, entries in runs.items():
                data.setdefault(key, {}).setdefault(int(r), {}).update(entries)
    names = []
    for runs in data.values():
        for entries in runs.values():
            for k in entries:
                n = k.split("|")[0]
                if n not in names:
                    names.append(n)
    tally = {n: {"W": 0, "T": 0, "L": 0, "eW": 0, "eL": 0, "logr": []} for n in names}
    print("| cell | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key, runs in data.items():
        task, model, table = key.split("|")
        higher = task == "classification"
        base_file = (
            f"results/any_model_20_{FILES[task + '|' + model]}_{table.lower()}.json"
        )
        uni = json.load(open(base_file))[key]["runs"]
        splits = sorted(runs)
        for fraction in (0.01, 0.02, 0.05, 0.1):
            base = [uni[r][f"uniform|{fraction}"][0] for r in splits]
            cells = []
            for n in names:
                got = [
                    runs[r][f"{n}|{fraction}"][0]
                    for r in splits
                    if f"{n}|{fraction}" in runs[r]
                ]
                if len(got) < len(splits):
                    cells.append("-")
                    continue
                ratio = np.median(got) / np.median(base)
                v = verdict(got, base, higher)
                tally[n][v] += 1
                tally[n]["logr"].append(np.log(ratio) * (1 if higher else -1))
                e = ""
                if higher:
                    ev = verdict([1 - g for g in got], [1 - b for b in base], False)
                    tally[n]["e" + ev] = tally[n].get("e" + ev, 0) + 1
                    e = "/" + ev
                cells.append(f"{ratio:.3f} {v}{e}")
            print(f"| {model} {table} {fraction:.0%} | " + " | ".join(cells) + " |")
    print(
        f"\n{len(splits)} splits. Per variant: W/T/L against uniform "
        "(issue's rule); eW/eL the secondary view on the error rate "
        "(classification); mean log ratio (positive: better than uniform)\n"
    )
    print("| variant | W | T | L | eW | eL | mean log ratio |")
    print("|---|---|---|---|---|---|---|")
    for n, t in tally.items():
        print(
            f"| {n} | {t['W']} | {t['T']} | {t['L']} | {t.get('eW', 0)} | "
            f"{t.get('eL', 0)} | {np.mean(t['logr']):+.4f} |"
        )


if __name__ == "__main__":
    main()
