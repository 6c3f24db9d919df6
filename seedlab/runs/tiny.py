"""Tiny BERTs built locally, for tests and demos that must not download anything.

``build_tiny_bert`` writes a word-piece vocabulary from example texts (special tokens,
the most frequent words, single characters and their ``##`` continuations) and a randomly
initialised ``BertForSequenceClassification`` (hidden 32, 2 layers, 2 heads by default)
into a folder that ``from_pretrained`` loads.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# The vocabulary of the catalogue's ``tiny-bert``, independent of any task: every letter,
# digit and ASCII punctuation mark (so any English text tokenizes without [UNK], letter
# by letter at worst) and common English words (so most snippets stay short).
COMMON_WORDS = (  # one string: write_vocab splits it into words
    "the of and to a in is it that for was on with as his he be at by i this had not are"
    " but from or have an they which one you were her all she there would their we him"
    " been has when who will more no if out so said what up its about into than them can"
    " only other new some could time these two may then do first any my now such like our"
    " over man me even most made after also did many before must through back years where"
    " much your way well down should because each just those people how too little good"
    " very make world still own see men work long get here between both life being under"
    " never day same another know while last might great old year off come since against"
    " go came right used take three film movie story best bad funny love characters"
    " performances director comedy drama script plot fun smart enough nothing"
    " something every without never always really"
)
BASIC_VOCAB_TEXTS = (
    " ".join("abcdefghijklmnopqrstuvwxyz"),
    " ".join("0123456789"),
    " ".join("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    COMMON_WORDS,
)


def write_vocab(path: Path, texts: Iterable[str], n_words: int = 400) -> list[str]:
    """Write ``vocab.txt``; returns the vocabulary (special tokens first)."""
    words = Counter(w for t in texts for w in re.findall(r"[a-z]+|[^\sa-z]", str(t).lower()))
    chars = sorted({c for w in words for c in w})
    vocab = list(SPECIAL) + chars + [f"##{c}" for c in chars]
    vocab += [w for w, _ in words.most_common(n_words) if w not in vocab]
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return vocab


def build_tiny_bert(folder: str | Path, texts: Iterable[str], *, seed: int = 0,
                    hidden_size: int = 32, layers: int = 2, heads: int = 2,
                    num_labels: int = 2, n_words: int = 400) -> Path:
    """Save a tiny random BERT classifier and its tokenizer in ``folder``; ``seed`` plays
    the role of the pretraining seed (it sets the initial weights)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_vocab(folder / "vocab.txt", texts, n_words)
    # transformers 5 reads the vocabulary from ``vocab`` (a vocab_file is ignored there).
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)},
                                  do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden_size,
                        num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=2 * hidden_size, max_position_embeddings=128,
                        num_labels=num_labels)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
