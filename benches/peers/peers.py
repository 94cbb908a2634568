#!/usr/bin/env python3
"""The embedding peers a user would pick instead of PRAG, timed on the same texts and settings.

Run by `benches/peers/run` inside the virtual environment it makes; see that script for the whole
procedure. Subcommands:

  corpora OUT            writes OUT/sentences.txt and OUT/chunks.txt (one text per line),
                         generated deterministically (no randomness outside a fixed-seed LCG).
  export MODEL OUT       exports MODEL (a local sentence-transformers directory: the same weights
                         `prag` loads) to OUT/model.onnx (fp32) and OUT/model-int8.onnx (dynamic
                         int8, per-channel), with the tokenizer files fastembed needs; no hub.
  measure ...            checks every peer against the fixture, then times each on both corpora
                         (a warm-up pass, then --passes passes; median and range) and writes JSON.
  table ...              prints one table from that JSON and PRAG's criterion estimates.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import time

# ---------------------------------------------------------------------------------------------
# Corpora

WORDS = (
    "the node stores every shard of the collection as ciphertext and answers a query with the "
    "nearest chunks a worker may read after its subscription is checked against the ledger the "
    "operator watches replication lag disk use and queue depth from the console while the data "
    "owner uploads medical records invoices and archived mail each file is extracted chunked "
    "embedded and sealed before it touches the disk an attested worker asks for the top results "
    "and receives them over a channel only it can open a replica that answers wrongly is caught "
    "by re-execution and loses its collateral configuration flags environment variables and "
    "defaults are validated in one place errors carry context logs are structured and never "
    "contain keys plaintext or vectors patients appointments dosage history allergy referral "
    "clinic ward discharge summary laboratory result imaging report consent form retention "
    "policy backup restore snapshot compaction index segment vector payload filter latency "
    "throughput memory budget timeout retry backoff checksum signature nonce replay window "
    "kernel driver firmware measurement report certificate chain collateral quote enclave guest"
).split()
PUNCT = [",", ",", ";", ":", " -", "."]


class Lcg:
    """A 64-bit linear congruential generator (Knuth's MMIX constants): the same numbers on every
    Python, unlike `random`, whose derived methods have changed between versions."""

    def __init__(self, seed):
        self.state = seed & 0xFFFFFFFFFFFFFFFF

    def next(self, n):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        return (self.state >> 33) % n


def sentence(rng, words):
    out = []
    for i in range(words):
        w = WORDS[rng.next(len(WORDS))]
        if i == 0:
            w = w.capitalize()
        out.append(w)
        if i + 1 < words and rng.next(9) == 0:
            out[-1] += PUNCT[rng.next(len(PUNCT) - 1)]
    if rng.next(5) == 0:
        out.insert(rng.next(len(out)), str(1000 + rng.next(9000)))
    return " ".join(out) + "."


def corpora(out):
    os.makedirs(out, exist_ok=True)
    rng = Lcg(20261201)
    # ~34 tokens: one sentence of 22-30 words.
    sentences = [sentence(rng, 20 + rng.next(9)) for _ in range(256)]
    # ~207 tokens: a paragraph of sentences up to about 160 words.
    chunks = []
    for _ in range(128):
        parts, n = [], 0
        target = 141 + rng.next(21)
        while n < target:
            k = min(12 + rng.next(14), target - n + 4)
            parts.append(sentence(rng, k))
            n += k
        chunks.append(" ".join(parts))
    for name, texts in (("sentences", sentences), ("chunks", chunks)):
        with open(os.path.join(out, f"{name}.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(texts) + "\n")
    print(f"peers: wrote {len(sentences)} sentences and {len(chunks)} chunks to {out}", file=sys.stderr)


def read_texts(path):
    with open(path, encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.strip()]


# ---------------------------------------------------------------------------------------------
# Export


def export(model_dir, out):
    import torch
    from transformers import AutoModel, AutoTokenizer

    os.makedirs(out, exist_ok=True)
    model = AutoModel.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    enc = tok(["an example sentence to trace", "and a second, longer one to trace the padding"], padding=True,
              return_tensors="pt")
    fp32 = os.path.join(out, "model.onnx")
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
            "token_type_ids": {0: "batch", 1: "seq"}, "last_hidden_state": {0: "batch", 1: "seq"}}
    class Encoder(torch.nn.Module):
        """The encoder with positional inputs in the order the ONNX graph names them."""

        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    with torch.no_grad():
        torch.onnx.export(Encoder(model), (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]), fp32,
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17,
                          dynamo=False, do_constant_folding=True)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = os.path.join(out, "model-int8.onnx")
    quantize_dynamic(fp32, int8, per_channel=True, weight_type=QuantType.QInt8)
    # fastembed reads the tokenizer files next to the model.
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json", "vocab.txt"):
        src = os.path.join(model_dir, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(out, name))
    print(f"peers: exported {fp32} and {int8}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Peers: each is (name, embed(texts) -> list of unit vectors), built for `threads` threads.

MAX_TOKENS = 256


def normalise(rows):
    import numpy as np

    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def sentence_transformers_peer(model_dir, threads, batch):
    import torch
    from sentence_transformers import SentenceTransformer, models

    torch.set_num_threads(threads)
    word = models.Transformer(model_dir, max_seq_length=MAX_TOKENS)
    pool = models.Pooling(word.get_word_embedding_dimension(), pooling_mode="mean")
    st = SentenceTransformer(modules=[word, pool, models.Normalize()], device="cpu")
    return lambda texts: st.encode(texts, batch_size=batch, convert_to_numpy=True, normalize_embeddings=True)


def onnx_peer(model_dir, onnx_path, threads, batch):
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.enable_truncation(MAX_TOKENS)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")

    def embed(texts):
        out = []
        for start in range(0, len(texts), batch):
            enc = tok.encode_batch(texts[start:start + batch])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            hidden = session.run(None, {"input_ids": ids, "attention_mask": mask,
                                        "token_type_ids": np.zeros_like(ids)})[0]
            m = mask[:, :, None].astype(np.float32)
            out.append((hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9))
        return normalise(np.concatenate(out))

    return embed


def fastembed_peer(onnx_dir, threads, batch):
    from fastembed import TextEmbedding

    model = TextEmbedding("sentence-transformers/all-MiniLM-L6-v2", specific_model_path=onnx_dir, threads=threads,
                          providers=["CPUExecutionProvider"])
    # fastembed truncates at the tokenizer's 512; the model was trained (and PRAG runs) at 256.
    inner = getattr(model, "model", None)
    if inner is not None and getattr(inner, "tokenizer", None) is not None:
        inner.tokenizer.enable_truncation(MAX_TOKENS)
    return lambda texts: normalise(list(model.embed(texts, batch_size=batch)))


def peers(model_dir, onnx_dir, threads, batch, only):
    made = {
        "sentence-transformers": lambda: sentence_transformers_peer(model_dir, threads, batch),
        "onnxruntime-fp32": lambda: onnx_peer(model_dir, os.path.join(onnx_dir, "model.onnx"), threads, batch),
        "fastembed-fp32": lambda: fastembed_peer(onnx_dir, threads, batch),
        "onnxruntime-int8": lambda: onnx_peer(model_dir, os.path.join(onnx_dir, "model-int8.onnx"), threads, batch),
    }
    return [(name, build) for name, build in made.items() if not only or name in only]


# ---------------------------------------------------------------------------------------------
# Measure


def agreement(embed, fixture):
    import numpy as np

    texts = [i["text"] for i in fixture["items"]]
    want = normalise([i["embedding"] for i in fixture["items"]])
    got = normalise(embed(texts))
    cos = (got * want).sum(axis=1)
    return float(cos.min()), float(cos.mean())


def timed(embed, texts, passes):
    embed(texts)  # warm-up
    rates = []
    for _ in range(passes):
        t = time.perf_counter()
        embed(texts)
        rates.append(len(texts) / (time.perf_counter() - t))
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "passes": passes}


def measure(args):
    fixture = json.load(open(args.fixture, encoding="utf-8"))
    corpora_texts = {name: read_texts(os.path.join(args.corpora, f"{name}.txt")) for name in ("sentences", "chunks")}
    results = {"threads": args.threads, "batch": args.batch, "peers": {}}
    for name, build in peers(args.model, args.onnx, args.threads, args.batch, args.only):
        embed = build()
        low, mean = agreement(embed, fixture)
        entry = {"fixture_min_cos": low, "fixture_mean_cos": mean}
        for corpus, texts in corpora_texts.items():
            entry[corpus] = timed(embed, texts, args.passes)
        results["peers"][name] = entry
        print(f"peers: {name}: fixture min cos {low:.6f}; "
              + "; ".join(f"{c} {entry[c]['median']:.1f}/s" for c in corpora_texts), file=sys.stderr)
        del embed
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)


# ---------------------------------------------------------------------------------------------
# Table


def criterion_rate(criterion_dir, group, bench, texts):
    """Texts/s from criterion's median time per iteration (one iteration embeds all `texts`)."""
    path = os.path.join(criterion_dir, group, bench, "new", "estimates.json")
    try:
        est = json.load(open(path, encoding="utf-8"))
    except OSError:
        return None
    median_ns = est["median"]["point_estimate"]
    lo, hi = est["median"]["confidence_interval"]["lower_bound"], est["median"]["confidence_interval"]["upper_bound"]
    return {"median": texts * 1e9 / median_ns, "min": texts * 1e9 / hi, "max": texts * 1e9 / lo}


def table(args):
    results = json.load(open(args.results, encoding="utf-8"))
    sizes = {name: len(read_texts(os.path.join(args.corpora, f"{name}.txt"))) for name in ("sentences", "chunks")}
    tokens = json.load(open(os.path.join(args.corpora, "tokens.json"), encoding="utf-8")) if os.path.exists(
        os.path.join(args.corpora, "tokens.json")) else {}
    rows = {}
    for dtype in args.prag_dtypes:
        rows[f"prag {dtype}"] = {c: criterion_rate(args.criterion, f"embed-corpus/{c}", dtype, sizes[c]) for c in sizes}
    for name, entry in results["peers"].items():
        rows[name] = {c: entry.get(c) for c in sizes}
    print(f"\nEmbedding throughput, texts/s, {results['threads']} threads, batches of {results['batch']} "
          "(median [range]; ratio: PRAG over the row, fp32 against fp32 and int8 against int8; "
          ">1 means PRAG is faster)")
    head = "| engine | " + " | ".join(
        f"{sizes[c]} {c}" + (f" (~{tokens[c]:.0f} tokens)" if c in tokens else "") for c in sizes) + " |"
    print(head)
    print("|" + "---|" * (len(sizes) + 1))
    for name, cells in rows.items():
        mine = "prag int8" if "int8" in name else "prag f32"
        prag = rows.get(mine, {})
        out = []
        for c in sizes:
            r = cells.get(c)
            if not r:
                out.append("—")
                continue
            cell = f"{r['median']:.1f} [{r['min']:.1f}–{r['max']:.1f}]"
            p = prag.get(c)
            if p and not name.startswith("prag"):
                cell += f" · {mine} {p['median'] / r['median']:.2f}×"
            out.append(cell)
        print(f"| {name} | " + " | ".join(out) + " |")
    print()
    for name, entry in results["peers"].items():
        print(f"{name}: fixture cosine min {entry['fixture_min_cos']:.6f}, mean {entry['fixture_mean_cos']:.6f}")


def count_tokens(args):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    tok.enable_truncation(MAX_TOKENS)
    tok.no_padding()
    out = {}
    for name in ("sentences", "chunks"):
        texts = read_texts(os.path.join(args.corpora, f"{name}.txt"))
        out[name] = statistics.mean(len(e.ids) for e in tok.encode_batch(texts))
    json.dump(out, open(os.path.join(args.corpora, "tokens.json"), "w"))
    print("peers: tokens per text " + ", ".join(f"{k} {v:.1f}" for k, v in out.items()), file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("corpora", help="write the two corpora")
    c.add_argument("out")
    t = sub.add_parser("tokens", help="count the corpora's tokens with the model's tokenizer")
    t.add_argument("--model", required=True)
    t.add_argument("--corpora", required=True)
    e = sub.add_parser("export", help="export the model to ONNX fp32 and int8")
    e.add_argument("model")
    e.add_argument("out")
    m = sub.add_parser("measure", help="check and time the peers")
    m.add_argument("--model", required=True)
    m.add_argument("--onnx", required=True)
    m.add_argument("--corpora", required=True)
    m.add_argument("--fixture", required=True)
    m.add_argument("--threads", type=int, default=2)
    m.add_argument("--batch", type=int, default=32)
    m.add_argument("--passes", type=int, default=5)
    m.add_argument("--only", nargs="*", default=[])
    m.add_argument("--out", required=True)
    tb = sub.add_parser("table", help="print the table")
    tb.add_argument("--results", required=True)
    tb.add_argument("--corpora", required=True)
    tb.add_argument("--criterion", required=True)
    tb.add_argument("--prag-dtypes", nargs="*", default=["f32", "int8"])
    args = p.parse_args()
    {"corpora": lambda: corpora(args.out), "tokens": lambda: count_tokens(args),
     "export": lambda: export(args.model, args.out), "measure": lambda: measure(args),
     "table": lambda: table(args)}[args.cmd]()


if __name__ == "__main__":
    main()
