"""Record everything the dashboard's pages show, to compare two versions of the code.

``python scripts/page_snapshot.py OUT.json [--only data|fixture]`` runs every page with
Streamlit's AppTest on the shipped study (``data/``) and on the dashboard-test fixture
(``tests/app_support.py``), in its default view and in the views a few query parameters
open, and writes each element in page order: its kind and its protobuf fields (widget
labels, options and values, texts, metrics, captions), dataframes as CSV with every
digit, plotly figures as their JSON. ``--compare A.json B.json`` prints the first
differences and exits 1 if there are any. Used to check that a refactor leaves every
number, text, table and figure of every page as it was.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

PAGES = ["overview", "bias_variance", "agreement", "decaying", "annotate", "masks",
         "significance", "datamap", "runs", "report"]
# Extra views: (page, query). The fixture's task is nli_sim; the shipped study's is the
# first task the sidebar picks.
VIEWS = [
    ("bias_variance", {"bias_variance.loss": "squared loss", "bias_variance.nboot": "200"}),
    ("bias_variance", {"bias_variance.checkpoints": "true", "bias_variance.nboot": "200"}),
    ("agreement", {"agreement.metric": "kappa", "agreement.blocks": "true"}),
    ("agreement", {"agreement.run_a": "__1", "agreement.run_b": "__-1"}),
    ("decaying", {"decaying.show": "all", "decaying.small": "__mid"}),
    ("annotate", {"annotate.annotator": "ann", "annotate.blind": "true",
                  "annotate.seed": "3"}),
    ("annotate", {"annotate.source": "group", "annotate.annotator": "bob"}),
    ("masks", {"masks.view": "summed"}),
    ("masks", {"masks.component": "head", "masks.experiments": ["lottery/good"]}),
    ("significance", {"significance.nboot": "300", "significance.design": "unpaired",
                      "significance.nested": "true", "significance.base_ckpt": "__ckpt"}),
    ("datamap", {"datamap.checkpoints": "true", "datamap.regions": ["easy", "hard"]}),
    ("overview", {"sizes": "__first", "pretrain_seeds": "__first"}),
]


def _element(node) -> dict:
    from google.protobuf.json_format import MessageToDict

    kind = type(node).__name__
    proto = getattr(node, "proto", None)
    out: dict = {"kind": kind}
    if kind == "Dataframe":
        out["frame"] = node.value.to_csv(float_format="%.17g")
        return out
    if proto is None:
        return out
    fields = MessageToDict(proto)
    fields.pop("id", None)
    if "spec" in fields:  # plotly
        fields["spec"] = json.loads(fields["spec"])
    if kind == "Exception":
        fields = {"message": fields.get("message")}
    out["fields"] = fields
    return out


def _walk(block, out: list) -> None:
    for _, child in sorted(block.children.items()):
        if hasattr(child, "children") and not hasattr(child, "value") or \
                type(child).__name__ in ("Block", "Column", "Expander", "Tab", "Grid",
                                         "SpecialBlock", "ElementTree"):
            out.append({"kind": type(child).__name__,
                        "label": getattr(child, "label", None)})
            _walk(child, out)
        else:
            out.append(_element(child))


def _resolve(query: dict, home: Path) -> dict:
    """Fill the placeholders of VIEWS with values of the home's first task."""
    from seedlab.store import Store

    store = Store(home, create=False)
    tasks = store.tasks()["task"].tolist()
    from seedlab.demo import default_task

    task = default_task(home, tasks) or tasks[0]
    runs = store.runs(task=task)
    sizes = store.sizes(task)
    seeds = sorted(runs["pretrain_seed"].unique().tolist())
    names = [f"{r.size}/p{r.pretrain_seed}/f{r.finetune_seed}"
             for r in runs.sort_values(["size", "pretrain_seed", "finetune_seed"])
             .itertuples()]
    ckpts = sorted({c for cs in runs["checkpoints"] for c in json.loads(cs)})
    out = {}
    for key, value in query.items():
        if value == "__first":
            value = [sizes[0]] if key == "sizes" else [seeds[0]]
        elif value == "__mid":
            value = sizes[len(sizes) // 2 - 1] if len(sizes) > 2 else sizes[0]
        elif value == "__ckpt":
            value = f"{ckpts[0]:g}"
        elif isinstance(value, str) and value.startswith("__") and value[2:].lstrip("-").isdigit():
            value = names[int(value[2:])] if names else ""
        out[key] = value
    return out


def snapshot(home: Path) -> dict:
    from app_support import app_test

    views = [(p, {}) for p in PAGES] + VIEWS
    out = {}
    for page, query in views:
        query = _resolve(query, home)
        name = f"{page} {json.dumps(query, sort_keys=True)}"
        at = app_test(home, f"pages/{page}.py", query=query, timeout=300)
        elements: list = []
        _walk(at._tree, elements)
        out[name] = elements
        print(f"  {name}: {len(elements)} elements", file=sys.stderr, flush=True)
    return out


def _with_second_mask_task(home: Path) -> Path:
    """The fixture plus lottery masks for a second task (sst_one, seeds 2-4), so that the
    masks page also shows its task x task views and seeds shared by only some tasks."""
    import numpy as np
    import pandas as pd

    from seedlab.store import Store

    rng = np.random.default_rng(7)
    rows = []
    for seed in (2, 3, 4):
        for layer in range(12):
            for head in range(12):
                rows.append((seed, "head", layer, head, bool(rng.random() < 0.5), 0.0))
            rows.append((seed, "mlp", layer, -1, bool(rng.random() < 0.6), 0.0))
    with Store(home).transaction("snapshot", "scripts/page_snapshot.py") as tx:
        tx.add_masks("lottery", "sst_one", pd.DataFrame(
            rows, columns=["seed", "component", "layer", "head", "kept", "importance"]))
    return home


def compare(a_path: str, b_path: str) -> int:
    def load(path: str) -> dict:
        # Annotation times (and the exports holding them) differ between two builds of the
        # fixture: compare without them.
        text = re.sub(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00)?", "<time>",
                      Path(path).read_text())
        text = re.sub(r"/mock/media/[0-9a-f]+", "<media>", text)  # a hash of the export
        return json.loads(text)

    a, b = load(a_path), load(b_path)
    bad = 0
    for home in sorted(set(a) | set(b)):
        for view in sorted(set(a.get(home, {})) | set(b.get(home, {}))):
            ea, eb = a.get(home, {}).get(view), b.get(home, {}).get(view)
            if ea == eb:
                continue
            bad += 1
            print(f"DIFF {home} / {view}")
            if ea is None or eb is None:
                print("   view missing on one side")
                continue
            for i, (x, y) in enumerate(zip(ea, eb)):
                if x != y:
                    print(f"   element {i}: {json.dumps(x)[:400]}\n   vs        "
                          f"{json.dumps(y)[:400]}")
                    break
            else:
                print(f"   lengths {len(ea)} vs {len(eb)}")
    print("identical" if not bad else f"{bad} view(s) differ")
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--compare"]:
        return compare(argv[1], argv[2])
    only = argv[argv.index("--only") + 1] if "--only" in argv else None
    from app_support import make_fixture_home

    result = {}
    if only in (None, "data"):
        result["data"] = snapshot(REPO / "data")
    if only in (None, "fixture"):
        # A fixed path: the home's path is shown in the sidebar, so it must not vary.
        home = Path(tempfile.gettempdir()) / "seedlab-page-snapshot" / "home"
        if home.exists():
            shutil.rmtree(home)
        result["fixture"] = snapshot(_with_second_mask_task(make_fixture_home(home)))
    Path(argv[0]).write_text(json.dumps(result, indent=0, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
