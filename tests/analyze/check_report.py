"""Independent checks of an rdino-analyze report folder made from make_study.py's inputs.
    check_report.py study REPORT_DIR TRUTH_JSON
        the planted encoder is found (permutation p at its minimum, intervals exclude chance),
        the null encoder is not (p > 0.05, intervals reach chance), the raw-pixel baseline finds
        the sex planted in the pixels (so rows and images were paired correctly); every number
        in report.md equals report.json's, rounded as printed; the metrics recomputed with numpy
        and scikit-learn from predictions.csv equal report.json's estimates; the data
        description matches the generator's truth; every plot is a valid PNG the report links
    check_report.py noloss REPORT_DIR
        the report says metrics.jsonl is missing and has no loss plot
    check_report.py findings REPORT_DIR
        analysis/findings.yaml on make_study.py's labels: the planted label found and the rare
        one not estimable; every label's AUROC recomputed from predictions.csv with numpy alone
        (all positive-negative pairs); the macro AUROC the mean of the labels'; report.md and
        finding_labels.csv agree with report.json
Prints nothing and exits 0 when all is well; otherwise prints each problem and exits 1."""
import csv
import json
import math
import os
import re
import sys

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

problems = []


def check(cond, what):
    if not cond:
        problems.append(what)


def load(folder):
    with open(os.path.join(folder, "report.json")) as fh:
        rep = json.load(fh)
    with open(os.path.join(folder, "report.md")) as fh:
        md = fh.read()
    return rep, md


def result(rep, target, name):
    for r in rep["results"]:
        if r["target"] == target and r["representation"] == name:
            return r
    problems.append(f"no result for {target} / {name}")
    return None


def names(rep, encoder):
    return [r["name"] for r in rep["representations"] if r["encoder"] == encoder]


def planted_and_null(rep):
    minimum_p = 1 / (rep["settings"]["permutations"] + 1)
    for name in names(rep, "trained"):
        r = result(rep, "sex", name)
        if r:
            auc = r["metrics"]["auroc"]
            check(auc["lo"] > 0.5, f"{name}: sex AUROC interval {auc} should exclude 0.5")
            check(abs(r["permutation"]["p"] - minimum_p) < 1e-12,
                  f"{name}: sex permutation p {r['permutation']['p']} should be {minimum_p}")
        r = result(rep, "age", name)
        if r:
            m = r["metrics"]
            check(m["r2"]["lo"] > 0 and m["pearson_r"]["lo"] > 0,
                  f"{name}: age R2 {m['r2']} / r {m['pearson_r']} should exclude 0")
            check(abs(r["permutation"]["p"] - minimum_p) < 1e-12, f"{name}: age p {r['permutation']}")
    for name in names(rep, "random-init"):
        r = result(rep, "sex", name)
        if r:
            auc = r["metrics"]["auroc"]
            check(auc["lo"] <= 0.5 <= auc["hi"], f"null {name}: sex AUROC {auc} should contain 0.5")
            check(r["permutation"]["p"] > 0.05, f"null {name}: sex p {r['permutation']['p']}")
        r = result(rep, "age", name)
        if r:
            m = r["metrics"]
            check(m["r2"]["lo"] <= 0, f"null {name}: age R2 {m['r2']} should reach 0")
            check(m["pearson_r"]["lo"] <= 0 <= m["pearson_r"]["hi"], f"null {name}: age r {m['pearson_r']}")
            check(r["permutation"]["p"] > 0.05, f"null {name}: age p {r['permutation']['p']}")
    r = result(rep, "sex", "raw-pixels")
    if r:
        check(r["metrics"]["auroc"]["lo"] > 0.5 and r["permutation"]["p"] <= 0.05,
              f"raw-pixels should find the sex planted in the pixels: {r['metrics']['auroc']}")
    for c in rep["comparisons"]:
        if c["a"] in names(rep, "trained") and c["b"] in names(rep, "random-init") and \
                c["a"].replace("trained", "") == c["b"].replace("random-init", ""):
            check(c["significant"] and c["better"] == c["a"], f"comparison {c['sentence']}")
            check(c["sentence"].startswith(f"{c['a']} predicts {c['target']} better than {c['b']}: Δ"),
                  f"sentence: {c['sentence']}")
        if c["target"] == "age" and c["b"] == "raw-pixels" and c["a"] in names(rep, "random-init"):
            check(not c["significant"] and "no significant difference" in c["sentence"],
                  f"null vs null: {c['sentence']}")


def printed(value, decimals):
    return "n/a" if value is None else f"{value:.{decimals}f}"


def interval_text(iv, decimals):
    text = printed(iv["estimate"], decimals)
    if iv["lo"] is not None and iv["hi"] is not None:
        text += f" [{printed(iv['lo'], decimals)}, {printed(iv['hi'], decimals)}]"
    return text


def p_text(p):
    return "n/a" if p is None else f"{p:.2g}"


def md_consistent(rep, md):
    """Each results-table row of report.md, rebuilt from report.json, must appear verbatim."""
    labels = {"auroc": 3, "accuracy": 3, "mae": 2, "r2": 3, "pearson_r": 3}
    order = ["auroc", "accuracy", "mae", "r2", "pearson_r"]
    reps = {r["name"]: r for r in rep["representations"]}
    folds = rep["settings"]["outer_folds"]
    tested = sorted((r["permutation"]["p"], i) for i, r in enumerate(rep["results"])
                    if r["permutation"]["p"] is not None)
    running, holm = 0.0, {}
    for rank, (p, i) in enumerate(tested):  # Holm's step-down, written out independently
        running = max(running, min(1.0, (len(tested) - rank) * p))
        holm[i] = running
    for i, r in enumerate(rep["results"]):
        got = r["permutation"]["p_holm"]
        check(got is None if i not in holm else abs(got - holm[i]) < 1e-12,
              f"{r['representation']}/{r['target']}: Holm p {got}, expected {holm.get(i)}")
    for r in rep["results"]:
        rp = reps[r["representation"]]
        cells = [interval_text(r["metrics"][m], labels[m]) for m in order if m in r["metrics"]]
        row = (f"| {rp['encoder']} | {rp['features']} | " + " | ".join(cells) +
               f" | {p_text(r['permutation']['p'])} | {p_text(r['permutation']['p_holm'])}"
               f" | {r['lambda_at_edge']} of {folds} |")
        section = md.split(f"## Results: {r['target']}\n", 1)
        check(len(section) == 2 and row in section[1].split("\n## ")[0],
              f"report.md lacks the row {row!r} under 'Results: {r['target']}'")
        primary = "auroc" if r["model"] == "logistic" else "r2"
        p, holm = r["permutation"]["p"], r["permutation"]["p_holm"]
        verdict = "carries" if holm is not None and holm <= 0.05 else "shows no evidence of"
        finding = (f"- {r['representation']} {verdict} {r['target']} information: "
                   f"{'AUROC' if primary == 'auroc' else 'R²'} "
                   f"{interval_text(r['metrics'][primary], 3)}, permutation p = {p_text(p)}"
                   f" (Holm {p_text(holm)}).\n")
        check(finding in md, f"report.md lacks the finding {finding!r}")
    for c in rep["comparisons"]:
        check(f"- {c['sentence']}.\n" in md, f"report.md lacks the sentence {c['sentence']!r}")
    d = rep["data"]
    check(f"{d['images']} images of {d['patients']} patients" in md, "report.md data sentence")
    for s, v in d["splits"].items():
        check(f"| {s} | {v['images']} | {v['patients']} |" in md, f"report.md split row {s}")
    check(f"Sex: {d['sex']['F']} F, {d['sex']['M']} M, {d['sex']['unknown']} unknown." in md,
          "report.md sex counts")
    check(f"mean {d['age']['mean']:.1f}, sd {d['age']['sd']:.1f}" in md, "report.md age summary")


def recomputed(folder, rep):
    """Metrics from predictions.csv with numpy/scikit-learn: per-fold AUROC and r (weighted by
    fold rows), pooled accuracy and MAE, out-of-sample R2 against each fold's training mean."""
    with open(os.path.join(folder, "predictions.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    reps = [r["name"] for r in rep["representations"]]
    check(list(rows[0].keys()) == ["image_id", "patient_id", "split", "target", "y", "fold"] + reps,
          f"predictions.csv header {list(rows[0].keys())}")
    for target in {r["target"] for r in rep["results"]}:
        sel = [r for r in rows if r["target"] == target]
        y = np.array([float(r["y"]) for r in sel])
        fold = np.array([int(r["fold"]) for r in sel])
        for name in reps:
            res = result(rep, target, name)
            if res is None:
                continue
            check(res["rows"] == len(sel), f"{target}/{name}: {res['rows']} rows vs {len(sel)}")
            pred = np.array([float(r[name]) for r in sel])
            got = {}
            folds = sorted(set(fold))
            w = np.array([(fold == f).sum() for f in folds], dtype=float)
            if res["model"] == "logistic":
                got["auroc"] = np.average([roc_auc_score(y[fold == f], pred[fold == f]) for f in folds],
                                          weights=w)
                got["accuracy"] = np.mean((pred > 0) == (y == 1))
            else:
                got["mae"] = np.mean(np.abs(pred - y))
                sse = sum(((y[fold == f] - pred[fold == f]) ** 2).sum() for f in folds)
                sst = sum(((y[fold == f] - y[fold != f].mean()) ** 2).sum() for f in folds)
                got["r2"] = 1 - sse / sst
                got["pearson_r"] = np.average([np.corrcoef(y[fold == f], pred[fold == f])[0, 1]
                                             for f in folds], weights=w)
            for m, v in got.items():
                want = res["metrics"][m]["estimate"]
                check(abs(v - want) <= 1e-6 * max(1, abs(want)),
                      f"{target}/{name} {m}: report.json {want}, recomputed {v}")


def pair_auroc(y, score):
    """AUROC by brute force: the share of positive-negative pairs the score orders right, ties
    counting one half."""
    pos, neg = score[y == 1], score[y == 0]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


def findings(folder, rep, md):
    fl = rep.get("finding_labels")
    check(fl is not None, "report.json has no finding_labels")
    if fl is None:
        return
    labels = [x["label"] for x in fl["labels"]]
    check(labels == ["finding_noise", "finding_planted"], f"labels {labels}")
    ne = fl["not_estimable"]
    check(len(ne) == 1 and ne[0]["label"] == "finding_rare" and
          "3 positive and" in ne[0]["reason"], f"not estimable: {ne}")
    with open(os.path.join(folder, "predictions.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    reps = [r["name"] for r in rep["representations"]]
    check(any(r.endswith(" kNN") for r in reps), f"no k-NN probes: {reps}")
    aurocs = {}
    for lab in fl["labels"]:
        sel = [r for r in rows if r["target"] == lab["label"]]
        y = np.array([float(r["y"]) for r in sel])
        fold = np.array([int(r["fold"]) for r in sel])
        check(lab["rows"] == len(sel) and lab["positives"] == int(y.sum()), f"counts {lab}")
        folds = sorted(set(fold))
        w = np.array([(fold == f).sum() for f in folds], dtype=float)
        for name in reps:
            pred = np.array([float(r[name]) for r in sel])
            got = np.average([pair_auroc(y[fold == f], pred[fold == f]) for f in folds], weights=w)
            res = result(rep, lab["label"], name)
            want = res["metrics"]["auroc"] if res else None
            check(want is not None and abs(got - want["estimate"]) < 1e-9,
                  f"{lab['label']}/{name}: AUROC {want}, pairs give {got}")
            aurocs[(lab["label"], name)] = want
    for m in fl["macro"]:
        name, iv = m["representation"], m["auroc"]
        mean = np.mean([aurocs[(lab, name)]["estimate"] for lab in labels])
        check(m["labels"] == 2 and abs(iv["estimate"] - mean) < 1e-12, f"macro of {name}: {iv}")
        check(iv["lo"] <= iv["estimate"] <= iv["hi"] and iv["replicates"] > 150,
              f"macro interval of {name}: {iv}")
    planted = aurocs[("finding_planted", "trained")]
    check(planted["lo"] > 0.7, f"trained misses the planted label: {planted}")
    check(aurocs[("finding_planted", "trained kNN")]["lo"] > 0.6, "k-NN misses the planted label")
    for name in ("trained", "random-init"):
        null = aurocs[("finding_noise", name)]
        check(null["lo"] < 0.5 < null["hi"], f"{name} finds the noise label: {null}")
    pairs = {(c["a"], c["b"]): c for c in fl["comparisons"]}
    c = pairs.get(("trained", "random-init"))
    check(c is not None and c["sentence"].startswith(
        "trained predicts the finding labels (macro) better than random-init: ΔAUROC"),
        f"macro comparison: {c}")
    for c in fl["comparisons"]:
        check(f"- {c['sentence']}.\n" in md, f"report.md lacks {c['sentence']!r}")
    # report.md: the table, the macro row, the not-estimable label
    section = md.split("## Finding labels\n", 1)
    check(len(section) == 2, "report.md has no Finding labels section")
    table = section[1].split("\n## ")[0] if len(section) == 2 else ""
    for lab in fl["labels"]:
        cells = [interval_text(aurocs[(lab["label"], r)], 3) for r in reps]
        row = f"| {lab['label']} | {lab['positives']} / {lab['rows']} | " + " | ".join(cells) + " |"
        check(row in table, f"report.md lacks {row!r}")
    macro = "| **macro AUROC** (2 labels) | | " + " | ".join(
        f"**{interval_text(m['auroc'], 3)}**" for m in fl["macro"]) + " |"
    check(macro in table, f"report.md lacks {macro!r}")
    check(f"- finding_rare: {ne[0]['reason']} (left out of the macro AUROC)." in table,
          "report.md lacks the not-estimable label")
    check("(1 = positive, 0 = negative;" in md, "results header of a finding label")
    with open(os.path.join(folder, "finding_labels.csv"), newline="") as fh:
        lines = list(csv.DictReader(fh))
    check(len(lines) == len(reps) * 4, f"finding_labels.csv: {len(lines)} rows")
    for line in lines:
        if line["label"] == "finding_rare":
            check(line["auroc"] == "" and "positive" in line["note"], f"csv {line}")
            continue
        want = (next(m["auroc"] for m in fl["macro"] if m["representation"] == line["representation"])
                if line["label"] == "macro" else aurocs[(line["label"], line["representation"])])
        check(abs(float(line["auroc"]) - want["estimate"]) < 1e-8 and
              abs(float(line["lo"]) - want["lo"]) < 1e-8, f"csv {line} vs {want}")


def data_matches(rep, truth):
    d = rep["data"]
    check(d["images"] == truth["images"] and d["patients"] == truth["patients"],
          f"data counts {d['images']}/{d['patients']} vs {truth['images']}/{truth['patients']}")
    check(d["splits"] == truth["splits"], f"splits {d['splits']} vs {truth['splits']}")
    check(d["sex"] == truth["sex"], f"sex {d['sex']} vs {truth['sex']}")
    check(d["age"]["known"] == truth["age_known"] and
          abs(d["age"]["mean"] - truth["age_mean"]) < 1e-6, f"age {d['age']}")


def plots_valid(folder, rep, md):
    on_disk = sorted(f for f in os.listdir(folder) if f.endswith(".png"))
    check(sorted(rep["plots"]) == on_disk, f"plots {rep['plots']} vs files {on_disk}")
    check(rep["plot_problem"] == "", f"plot problem: {rep['plot_problem']}")
    for name in on_disk:
        try:
            with Image.open(os.path.join(folder, name)) as im:
                im.verify()
            with Image.open(os.path.join(folder, name)) as im:
                im.load()
                check(im.format == "PNG" and im.size[0] >= 400 and im.size[1] >= 400,
                      f"{name}: {im.format} {im.size}")
                # Not blank: a plot has many colours.
                check(len(im.convert("RGB").getcolors(1 << 20) or []) > 20, f"{name} looks blank")
        except Exception as e:  # noqa: BLE001 - any decoding failure is the finding
            problems.append(f"{name}: not a valid PNG ({e})")
        check(f"]({name})" in md, f"report.md does not show {name}")
    return on_disk


def main():
    mode, folder = sys.argv[1], sys.argv[2]
    rep, md = load(folder)
    check(rep["format_version"] == 1, "format_version")
    if mode == "study":
        with open(sys.argv[3]) as fh:
            truth = json.load(fh)
        planted_and_null(rep)
        md_consistent(rep, md)
        recomputed(folder, rep)
        data_matches(rep, truth)
        plots = plots_valid(folder, rep, md)
        features = rep["settings"]["features"]
        suffixes = [""] if len(features) == 1 else [f"_{f}" for f in features]
        want = sorted([f"roc_sex{s}.png" for s in suffixes] + [f"scatter_age{s}.png" for s in suffixes]
                      + ["embedding_sex.png", "embedding_age.png", "loss.png"])
        check(plots == want, f"plots {plots}, expected {want}")
        check(rep["training_loss"]["found"] and rep["training_loss"]["points"] == 50 and
              rep["training_loss"]["bad_lines"] == 1 and
              rep["training_loss"]["terms"] == ["total_loss", "dino_loss", "ibot_loss", "koleo_loss"],
              f"training_loss {rep['training_loss']}")
    elif mode == "findings":
        findings(folder, rep, md)
        recomputed(folder, rep)
    elif mode == "noloss":
        check(not rep["training_loss"]["found"], "training_loss.found should be false")
        check("No training-loss plot" in md and "metrics.jsonl" in md, "report.md should say why")
        check(not os.path.exists(os.path.join(folder, "loss.png")), "loss.png should be absent")
        check("loss.png" not in rep["plots"], "plots list loss.png")
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


main()
