#!/usr/bin/env python3
"""The built-in guardrail rules against an independent detector on one labelled corpus.

corpus/ holds realistic files (source code, .env and config files, terminal output, logs,
prose with and without personal data); labels.tsv lists every planted secret and personal
datum by file, line and category. Both detectors scan the same files: ours through
`chokepoint-config guardrails scan`, detect-secrets (PyPI, pinned in scripts/lib.sh,
ensure_guard_venv) through `detect-secrets scan --all-files`. A finding is a true positive
when its file and line hold a planted item of its category (detect-secrets' findings are
all secrets: it has no personal-data detectors). Prints precision, recall and F1 per
category for both, and the lines each one missed or flagged wrongly (rule ids, never
values); exits 1 when ours falls below the floors, set from the measured figures so a
rule change that loses accuracy fails the guardrails layer.

Usage: accuracy.py CHOKEPOINT_CONFIG DETECT_SECRETS
"""

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
CATEGORIES = ("secret", "personal")
# Ours must stay at or above these (measured: see the README's guardrails figures).
FLOORS = {
    "secret": {"precision": 0.95, "recall": 0.95},
    "personal": {"precision": 0.90, "recall": 0.95},
}
# Files written after the rules were tuned on the rest, and never tuned against: their
# figures are printed apart, as the fairer estimate.
HELD_OUT = "heldout/"


def labels():
    out = set()
    for row in (HERE / "labels.tsv").read_text().splitlines():
        if row.startswith("#") or not row.strip():
            continue
        file, line, category = row.split("\t")
        assert category in CATEGORIES, row
        out.add((file, int(line), category))
    return out


def corpus_files():
    return sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file())


def ours(binary):
    """(file, line, category) -> rule ids, from the CLI's JSON lines."""
    run = subprocess.run(
        [binary, "guardrails", "scan", *corpus_files()],
        cwd=CORPUS,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        sys.exit(f"chokepoint-config guardrails scan failed:\n{run.stderr}")
    found = defaultdict(set)
    for line in run.stdout.splitlines():
        f = json.loads(line)
        assert set(f) == {"file", "line", "rule", "category"}, f
        found[(f["file"], f["line"], f["category"])].add(f["rule"])
    return found


def detect_secrets(binary):
    """(file, line, "secret") -> detector types, from its JSON baseline."""
    run = subprocess.run(
        [binary, "scan", "--all-files", "."], cwd=CORPUS, capture_output=True, text=True
    )
    if run.returncode != 0:
        sys.exit(f"detect-secrets scan failed:\n{run.stderr}")
    found = defaultdict(set)
    for file, results in json.loads(run.stdout)["results"].items():
        for r in results:
            found[(file.removeprefix("./"), r["line_number"], "secret")].add(r["type"])
    return found


def scores(found, truth, category, prefix=""):
    pred = {k for k in found if k[2] == category and k[0].startswith(prefix)}
    real = {k for k in truth if k[2] == category and k[0].startswith(prefix)}
    tp = len(pred & real)
    precision = tp / len(pred) if pred else 1.0
    recall = tp / len(real) if real else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "tp": tp,
        "fp": len(pred - real),
        "fn": len(real - pred),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }, sorted(pred - real), sorted(real - pred)


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    truth = labels()
    missing = {f for f, _, _ in truth} - set(corpus_files())
    assert not missing, f"labels name files not in the corpus: {missing}"
    binaries = [str(Path(b).resolve()) if "/" in b else b for b in argv[1:]]
    runs = {"chokepoint": ours(binaries[0]), "detect-secrets": detect_secrets(binaries[1])}
    print(f"corpus: {len(corpus_files())} files, "
          + ", ".join(f"{sum(1 for k in truth if k[2] == c)} {c} lines" for c in CATEGORIES))
    print(f"{'detector':<16} {'category':<9} {'tp':>3} {'fp':>3} {'fn':>3} "
          f"{'precision':>9} {'recall':>6} {'f1':>5}")
    figures = {}
    for name, found in runs.items():
        for category in CATEGORIES:
            if name == "detect-secrets" and category == "personal":
                print(f"{name:<16} {category:<9} {'(no personal-data detectors)':>36}")
                continue
            s, fps, fns = scores(found, truth, category)
            figures[(name, category)] = s
            print(f"{name:<16} {category:<9} {s['tp']:>3} {s['fp']:>3} {s['fn']:>3} "
                  f"{s['precision']:>9.3f} {s['recall']:>6.3f} {s['f1']:>5.3f}")
            for k in fps:
                print(f"    false positive {k[0]}:{k[1]} ({', '.join(sorted(found[k]))})")
            for k in fns:
                print(f"    missed         {k[0]}:{k[1]}")
    print(f"held-out files only ({HELD_OUT}):")
    for name, found in runs.items():
        for category in CATEGORIES:
            if name == "detect-secrets" and category == "personal":
                continue
            s, _, _ = scores(found, truth, category, HELD_OUT)
            print(f"{name:<16} {category:<9} {s['tp']:>3} {s['fp']:>3} {s['fn']:>3} "
                  f"{s['precision']:>9.3f} {s['recall']:>6.3f} {s['f1']:>5.3f}")
    failed = []
    for category, floor in FLOORS.items():
        s = figures[("chokepoint", category)]
        for metric, least in floor.items():
            if s[metric] < least:
                failed.append(f"{category} {metric} {s[metric]:.3f} < {least}")
    checks = sum(len(f) for f in FLOORS.values())
    for f in failed:
        print(f"FAIL: {f}")
    print(f"{checks - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
