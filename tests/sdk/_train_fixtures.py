"""Tiny models and a tiny BEIR folder for the training tests (seconds each, offline)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

TOPICS = {
    "fruit": "apple pear plum cherry banana mango peach grape lemon lime",
    "vehicle": "car truck bus bicycle train tram scooter van lorry taxi",
    "weather": "rain snow wind storm cloud sun fog hail thunder frost",
    "music": "piano guitar violin drum flute trumpet cello harp organ choir",
    "animal": "dog cat horse cow sheep goat lion tiger bear wolf",
    "tool": "hammer saw drill wrench chisel pliers file plane level clamp",
}


def tiny_bi_encoder(folder: Path, seed: int = 0) -> Path:
    """A 2-layer BERT (hidden 32) with the MiniLM tokenizer, saved as a sentence-transformers model."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules
    from transformers import AutoTokenizer, BertConfig, BertModel

    from tamis import default_model_path

    hf = folder.parent / (folder.name + "-hf")
    tok = AutoTokenizer.from_pretrained(str(default_model_path()))
    cfg = BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )
    import torch

    torch.manual_seed(seed)
    BertModel(cfg).save_pretrained(str(hf))
    tok.save_pretrained(str(hf))
    tr = modules.Transformer(str(hf), max_seq_length=48)
    st = SentenceTransformer(modules=[tr, modules.Pooling(32, "mean"), modules.Normalize()], device="cpu")
    st.save(str(folder))
    shutil.rmtree(hf)
    return folder


def tiny_beir(folder: Path, *, n_per_topic: int = 8, seed: int = 0) -> Path:
    """6 topics x ``n_per_topic`` documents, one query each; train/dev/test qrels; plus one
    unjudged near-copy of document ``fruit-0`` (a planted false negative for query ``q-fruit-0``)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    docs, queries, qrels = [], [], {"train": [], "dev": [], "test": []}
    for topic, words in TOPICS.items():
        ws = words.split()
        for i in range(n_per_topic):
            did = f"{topic}-{i}"
            picked = rng.sample(ws, 4)
            docs.append({"_id": did, "title": f"{topic} {picked[0]}", "text": " ".join(picked)})
            queries.append({"_id": f"q-{did}", "text": f"which {topic} is {picked[0]} and {picked[1]}"})
            split = "train" if i < n_per_topic - 2 else ("dev" if i == n_per_topic - 2 else "test")
            qrels[split].append((f"q-{did}", did))
    first = docs[0]
    docs.append({"_id": "fruit-0-copy", "title": first["title"], "text": first["text"] + " indeed"})
    with open(folder / "corpus.jsonl", "w") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in docs)
    with open(folder / "queries.jsonl", "w") as fh:
        fh.writelines(json.dumps(q) + "\n" for q in queries)
    for split, rows in qrels.items():
        with open(folder / "qrels" / f"{split}.tsv", "w") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            fh.writelines(f"{q}\t{d}\t1\n" for q, d in rows)
    return folder


def tiny_cross_encoder(folder: Path) -> Path:
    """A 1-layer BERT (hidden 32) with a one-output head and the MiniLM tokenizer (a random cross-encoder)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from tamis import default_model_path

    torch.manual_seed(1)
    tok = AutoTokenizer.from_pretrained(str(default_model_path()))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def tiny_doc2query(folder: Path) -> Path:
    """A 1-layer T5 (d_model 32) with the MiniLM tokenizer: a random sequence-to-sequence generator."""
    import torch
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    from tamis import default_model_path

    torch.manual_seed(2)
    tok = AutoTokenizer.from_pretrained(str(default_model_path()))
    cfg = T5Config(vocab_size=tok.vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2,
                   decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id)
    T5ForConditionalGeneration(cfg).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def corpus_only(folder: Path, *, seed: int = 0) -> Path:
    """A corpus.jsonl and nothing else (no queries, no qrels): 6 topics x 8 documents of two
    sentences each, the first naming the topic (for first-sentence pseudo-queries)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w") as fh:
        for topic, words in TOPICS.items():
            ws = words.split()
            for i in range(8):
                a, b, c, d = rng.sample(ws, 4)
                text = f"This is about the {topic} {a} and {b}. It also covers {c}, {d} and more {topic} things."
                fh.write(json.dumps({"_id": f"{topic}-{i}", "title": "", "text": text}) + "\n")
    return folder
