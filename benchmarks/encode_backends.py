"""Encoding throughput on CPU, one text length per run: tamis's backends against bare
sentence-transformers and fastembed, same texts, same weights, interleaved rounds.

    flock /work/bench.lock python benchmarks/encode_backends.py --length short|middle|long [--rounds 3]

Texts (`_peers.texts_of`): short = 8000 WordNet definitions, middle = 2000 texts of 80-150 words,
long = the 172 python-faq answers. Peers (`_peers.peers`): bare ``SentenceTransformer.encode``
(batch 64), tamis ``auto`` (the default), ``onnx``, ``onnx-int8``, ``torch``, and fastembed's
``TextEmbedding`` on the tamis float32 export (``--peers`` picks; ``--sdpa-graph`` adds the
previous, SDPA-attention export). Each peer is warmed up (and its vectors compared with
bare ST's, cosine) on the first part of the texts; then the texts are cut into ``--slices`` parts, and every round times each peer
on each part in turn (the peer order rotating): a peer's docs/s is the texts over the sum of its
best time per part, so a burst of load from elsewhere on a shared machine hurts no peer alone.
The int8 quality gate runs on a sample of the texts.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np
from _common import machine, save_json
from _peers import peers, texts_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--length", choices=["short", "middle", "long"], default="short")
    ap.add_argument("--n", type=int, default=0, help="texts (0: the length's default)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--slices", type=int, default=0, help="parts timed separately (0: 8, long: 4)")
    ap.add_argument("--peers", default="bare,auto,onnx,onnx-int8,torch,fastembed")
    ap.add_argument("--sdpa-graph", help="model.onnx of the previous (SDPA) export, to time it too")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    texts = texts_of(args.length, args.n or None)
    names = args.peers.split(",") + (["onnx-sdpa"] if args.sdpa_graph else [])
    encoders, facts = peers(names, args.sdpa_graph)
    words = np.mean([len(t.split()) for t in texts])
    print(f"{machine()}; {len(texts)} {args.length} texts ({words:.0f} words on average); load {os.getloadavg()}")

    n_parts = args.slices or (4 if args.length == "long" else 8)
    size = -(-len(texts) // n_parts)
    parts = [texts[i : i + size] for i in range(0, len(texts), size)]
    ref_label, ref = next(iter(encoders)), None
    quality = {}
    for label, fn in encoders.items():  # also the warm-up
        vecs = fn(parts[0])
        ref = vecs if ref is None else ref
        cos = (vecs * ref).sum(axis=1)
        quality[label] = {"min": float(cos.min()), "mean": float(cos.mean())}
    gate = None
    if "int8" in facts:
        from tamis.encoders import QualityGateError

        sample = texts[:: max(1, len(texts) // 512)][:512]
        try:
            gate = facts.pop("int8").check_int8(sample)  # type: ignore[attr-defined]
        except QualityGateError as exc:  # timed anyway, reported as refused
            gate = exc.report

    labels = list(encoders)
    times = {k: [[float("inf")] * len(parts) for _ in range(args.rounds)] for k in labels}
    for r in range(args.rounds):
        for j, part in enumerate(parts):
            shift = (r * len(parts) + j) % len(labels)
            for label in labels[shift:] + labels[:shift]:
                t0 = time.perf_counter()
                encoders[label](part)
                times[label][r][j] = time.perf_counter() - t0
        print(f"round {r + 1}: " + ", ".join(f"{k} {len(texts) / sum(v[r]):.0f}" for k, v in times.items()),
              flush=True)
    best = {k: len(texts) / sum(min(v[r][j] for r in range(args.rounds)) for j in range(len(parts)))
            for k, v in times.items()}
    rates = {k: [len(texts) / sum(v[r]) for r in range(args.rounds)] for k, v in times.items()}
    bare = best.get("bare ST (torch, batch 64)")
    fast = best.get("fastembed (same export)")
    print(f"\nbest of {args.rounds} rounds per part ({len(parts)} parts); cosine vs {ref_label}")
    print(f"{'encoder':<34}{'docs/s':>9}{'x bare':>8}{'x fastembed':>13}{'cos min':>11}")
    for label, rate in best.items():
        xb = f"{rate / bare:.2f}" if bare else "-"
        xf = f"{rate / fast:.2f}" if fast else "-"
        print(f"{label:<34}{rate:>9.1f}{xb:>8}{xf:>13}{quality[label]['min']:>11.7f}")
    if gate:
        print(f"int8 gate on {gate['texts']} of these texts: recall@10 {gate['recall_at_k']}, mean cosine "
              f"{gate['mean_cosine']}, top-10 overlap {gate['top_k_overlap']}, passed {gate['passed']}")
    print(f"auto: {facts.get('auto')}; onnx threads {facts['onnx_threads']}; load now {os.getloadavg()}")
    path = save_json(f"encode_backends-{args.length}.json", {
        "machine": machine(), "length": args.length, "n": len(texts), "mean_words": float(words),
        "rounds": rates, "best_docs_per_s": best, "cosine_vs_ref": quality, "ref": ref_label,
        "int8_gate": gate, "facts": facts, "load_after": os.getloadavg(),
    })
    print(f"saved {path}")


if __name__ == "__main__":
    main()
