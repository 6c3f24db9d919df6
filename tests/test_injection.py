"""Instance texts, ids, labels, splits, annotator names and notes render as text.

A study whose every free-text field holds Markdown images and links, backticks, ``<script>``
and ``<img onerror>`` is opened on Annotate, Decaying, Agreement and Seed data map under
AppTest. Every element of each page is walked: no Markdown-rendering field (bodies,
labels, help, progress text) may hold a hostile value outside an inline code span, none may
parse into an image, a link or raw HTML, and no string of a plotly figure may hold a raw
tag. The hostile values must still be readable: the Annotate page shows the id, the texts
and the label literally.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from app_support import app_test
from markdown_it import MarkdownIt

from seedlab.markup import code_span, plotly_text
from seedlab.store import RunData, Store

TASK = "hostile"
IMAGE = "![b](http://127.0.0.1:8600/x.png)"
LINK = "[click me](http://127.0.0.1:8600/go)"
SCRIPT = "<script>alert(1)</script>"
IMG_TAG = '<img src=x onerror="alert(2)">'
LABELS = ["yes`", "![l](http://127.0.0.1:8601/l.png)"]
SPLIT = "dev<script>"
ANNOTATORS = ["ann<img src=x onerror=alert(3)>", "`bob` ![a](http://127.0.0.1:8602/a.png)"]
NOTE = "see [here](http://127.0.0.1:8603/n) ``x``"
N = 24
# Instance ids: a backtick run that would close a one-backtick code span, an image, a tag.
IDS = [f"id`{i:02d}` {IMAGE if i % 3 == 0 else (SCRIPT if i % 3 == 1 else '``x')}"
       for i in range(N)]
TEXT_A = [f"Premise {i}: {IMAGE} and {SCRIPT} and `code` and *stars*" for i in range(N)]
TEXT_B = [f"Hypothesis {i}: {LINK} {IMG_TAG} $x$ :red[red]" for i in range(N)]
HOSTILE = sorted({IMAGE, LINK, SCRIPT, IMG_TAG, SPLIT, NOTE, *LABELS, *ANNOTATORS, *IDS,
                  *TEXT_A, *TEXT_B}, key=len, reverse=True)
RAW_TAGS = re.compile(r"<\s*(script|img|a|iframe)\b", re.IGNORECASE)
SIZES = ["small", "large"]


def make_hostile_home(path: str | Path) -> Path:
    """A store whose one task has hostile text in every free-text field: 2 sizes x 2
    pretraining x 2 fine-tuning seeds, the first 8 instances decaying, two annotators."""
    home = Path(path)
    rng = np.random.default_rng(7)
    gold = np.arange(N) % 2
    store = Store(home)
    with store.transaction("test", "hostile") as tx:
        tx.set_task(TASK, LABELS)
        tx.add_instances(TASK, pd.DataFrame({
            "instance_id": IDS, "split": SPLIT, "guid": [f"g{i}" for i in range(N)],
            "text_a": TEXT_A, "text_b": TEXT_B, "label": [LABELS[g] for g in gold],
            "group": ["treatment" if i < 8 else "control" for i in range(N)]}))
        for s_index, size in enumerate(SIZES):
            for pretrain_seed in ("0", "1"):
                for finetune_seed in (1, 2):
                    p_gold = rng.uniform(0.2, 0.95, N)
                    p_gold[:8] = 0.9 if s_index == 0 else 0.1  # decaying
                    probs = np.where(gold[:, None] == np.arange(2), p_gold[:, None],
                                     1 - p_gold[:, None])
                    pred = probs.argmax(axis=1)
                    tx.add_run(RunData(TASK, size, pretrain_seed, finetune_seed, pa.table({
                        "checkpoint": [1.0] * N, "instance_id": IDS, "pred": pred.tolist(),
                        "correct": (pred == gold).tolist(), "p_correct": p_gold.tolist(),
                        "probs": probs.tolist()}), source="test"))
        tx.add_annotations(pd.DataFrame({
            "task": TASK, "instance_id": [IDS[0], IDS[1], IDS[0], IDS[1]],
            "annotator": [ANNOTATORS[0], ANNOTATORS[0], ANNOTATORS[1], ANNOTATORS[1]],
            "verdict": ["wrong", "correct", "wrong", "unsure"], "note": [NOTE, "", "", NOTE]}))
    return home


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return make_hostile_home(tmp_path_factory.mktemp("hostile") / "home")


# --- what the walk checks ---------------------------------------------------------------

MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
UNSAFE_TOKENS = {"image", "link_open", "html_inline", "html_block"}
# Element types whose strings are shown without any markup, and fields that are never
# rendered (widget ids and values, the options of a select box).
PLAIN_ELEMENTS = {"text", "code", "arrow_data_frame", "plotly_chart", "json"}
PLAIN_FIELDS = {"id", "form_id", "options", "default", "value", "raw_value", "raw_values",
                "placeholder", "format",
                "spec", "config", "data", "columns", "column_order", "theme", "url",
                "file_name", "mime", "deploy_params", "icon", "type", "selection_mode",
                "editing_mode", "name", "height", "width"}


def strings(message, path=()):
    """Every (field path, string) of a protobuf message, recursively."""
    for desc, value in message.ListFields():
        values = value if getattr(desc, "is_repeated", False) else [value]
        for item in values:
            if isinstance(item, str):
                yield (*path, desc.name), item
            elif hasattr(item, "ListFields"):
                yield from strings(item, (*path, desc.name))


def markdown_strings(at):
    """(element type, field path, text) of every Markdown-rendering string on the page."""
    out = []
    for node in at._tree:
        proto = getattr(node, "proto", None)
        kind = getattr(node, "type", "")
        if proto is None or not hasattr(proto, "ListFields") or kind in PLAIN_ELEMENTS:
            continue
        for path, text in strings(proto):
            if not PLAIN_FIELDS & set(path):
                out.append((kind, path, text))
    for toast in at.toast:
        out.append(("toast", ("body",), toast.value))
    return out


def check_markdown(kind: str, path: tuple, source: str) -> None:
    """``source`` renders no image, link or HTML, and holds no hostile value outside an
    inline code span (where CommonMark shows it literally)."""
    tokens = MARKDOWN.parse(source)
    found = {t.type for t in tokens} | {c.type for t in tokens for c in (t.children or [])}
    assert not found & UNSAFE_TOKENS, (kind, path, source)
    outside = source
    for t in tokens:
        for c in t.children or []:
            if c.type == "code_inline":
                outside = outside.replace(c.content, "")
    for value in HOSTILE:
        assert value not in outside, (kind, path, value, source)
    # GitHub-flavoured autolinks: Streamlit finds them in the text after reading escapes,
    # so no URL or e-mail address may stand outside code, escaped or not
    text = re.sub(r"\\(.)", r"\1", outside)
    assert not re.search(r"https?://|www\.|\w@\w", text), (kind, path, source)


def check_figures(at) -> int:
    """No string in any plotly figure of the page holds a raw HTML tag."""
    count = 0
    for node in at._tree:
        if getattr(node, "type", "") == "plotly_chart":
            spec = json.loads(node.proto.spec)
            count += 1
            for text in re.findall(r'"((?:[^"\\]|\\.)*)"', json.dumps(spec)):
                assert not RAW_TAGS.search(json.loads(f'"{text}"')), text
    return count


def rendered_text(source: str) -> str:
    """What a reader sees of a Markdown string: its HTML with the tags removed."""
    return html.unescape(re.sub(r"<[^>]+>", "", MARKDOWN.render(source))).strip()


def open_page(home: Path, page: str, params: dict | None = None):
    at = app_test(home, page, {"task": TASK, **(params or {})})
    assert not at.exception, [e.value for e in at.exception]
    return at


# --- the helpers themselves -------------------------------------------------------------


@pytest.mark.parametrize("value", [IMAGE, LINK, SCRIPT, IMG_TAG, *LABELS, *ANNOTATORS, NOTE,
                                   "a\\`b", "```", "`", "\\", "x\ny", "$1$", "*_~|#>+-!"])
def test_code_span_shows_the_value_literally(value):
    shown = value.replace("\n", " ")
    source = f"id {code_span(value)} end"
    tokens = MARKDOWN.parse(source)
    kinds = {c.type for t in tokens for c in (t.children or [])}
    assert not kinds & UNSAFE_TOKENS
    assert f"id {shown} end" == rendered_text(source), source
    # one code span, whatever backticks the value holds
    spans = [c for t in MARKDOWN.parse(code_span(value)) for c in (t.children or [])
             if c.type == "code_inline"]
    assert [s.content for s in spans] == [shown]


def test_code_span_of_a_plain_value_is_the_usual_one():
    assert code_span("nli-000") == "`nli-000`"
    assert code_span("a`b") == "``a`b``"
    assert code_span("`a") == "`` `a ``"


def test_a_data_map_selection_names_instances_by_row(home):
    from seedlab.analyses import DataMapQuery, data_map

    result = data_map(Store(home), DataMapQuery(TASK, (), ("0", "1"), (1, 2), size="large"))
    assert result.frame["instance_id"].tolist() == IDS
    assert result.picked_ids([3, 0, None, N, -1]) == [IDS[3], IDS[0]]


def test_plotly_text_escapes_tags_only():
    assert plotly_text(IMG_TAG) == '&lt;img src=x onerror="alert(2)"&gt;'
    assert plotly_text("a & b <br> c") == "a &amp; b &lt;br&gt; c"
    assert plotly_text(IMAGE) == IMAGE


# --- the pages ----------------------------------------------------------------------------


def test_annotate_shows_hostile_text_literally(home):
    at = open_page(home, "pages/annotate.py", {"annotate.annotator": ANNOTATORS[1],
                                               "annotate.min_drop": "0.25"})
    checked = markdown_strings(at)
    for kind, path, source in checked:
        check_markdown(kind, path, source)
    assert check_figures(at) >= 2  # accuracy bars and verdict counts
    # the instance is readable: its id and split in the header, its texts as plain text,
    # its gold label
    first = next(s for _, _, s in checked if s.startswith("**Instance "))
    queue_ids = [IDS[i] for i in range(8)]
    shown = rendered_text(first)
    shown_id = next(i for i in queue_ids if i in shown)
    assert f"split {SPLIT}" in shown
    index = IDS.index(shown_id)
    assert [t.value for t in at.text] == [TEXT_A[index], TEXT_B[index]]
    label = next(rendered_text(s) for _, _, s in checked if s.startswith("**Gold label:**"))
    assert label == f"Gold label: {LABELS[index % 2]}"
    # the annotator's note and name are escaped where they are echoed
    progress = next(s for k, _, s in checked if k == "progress")
    assert rendered_text(progress).startswith(f"{ANNOTATORS[1]}: ")


def test_annotate_after_a_vote_and_in_group_mode(home, tmp_path):
    own = make_hostile_home(tmp_path / "home")
    at = open_page(own, "pages/annotate.py", {"annotate.annotator": ANNOTATORS[0]})
    at.text_input(key=next(w.key for w in at.text_input if w.key.startswith("annotate.note")))\
        .input(NOTE).run()
    at.button(key="annotate.verdict.wrong").click().run()
    assert not at.exception
    at = open_page(own, "pages/annotate.py", {"annotate.annotator": ANNOTATORS[0],
                                              "annotate.pos": "0", "annotate.source": "group"})
    sources = markdown_strings(at)
    assert any(rendered_text(s).startswith("Your verdict: wrong") for k, _, s in sources
               if k == "success")
    for kind, path, source in sources:
        check_markdown(kind, path, source)
    check_figures(at)


@pytest.mark.parametrize("page", ["pages/decaying.py", "pages/agreement.py",
                                  "pages/datamap.py"])
def test_other_pages_render_no_hostile_markup(home, page):
    at = open_page(home, page)
    for kind, path, source in markdown_strings(at):
        check_markdown(kind, path, source)
    assert check_figures(at) >= 1
    # the hostile values are in the page's tables, as text
    frames = [d.value for d in at.dataframe]
    cells = {str(v) for f in frames for v in f.to_numpy().ravel()}
    assert cells & set(IDS) and cells & set(TEXT_A)
