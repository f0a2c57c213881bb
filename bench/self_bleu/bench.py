"""Self-BLEU: keel's self_bleu plugin (through `keel score`, the whole process: start, plugin
discovery, JSONL parsing, scoring) against the NLTK computation (Texygen's loop over sentence_bleu),
on the same 1,000 generations of about 60 words, in the same run. Prints both times and the ratio
(goal: keel >= 100x faster) and checks that the two values agree.

usage: python bench/self_bleu/bench.py [KEEL] [--n 1000] [--words 60]
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu


def generations(n, words, seed=0):
    # Zipf-like word frequencies over a 5,000-word vocabulary, lengths 60 +- 10: prose-like overlap.
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(5000)]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    return [" ".join(rng.choices(vocab, weights, k=rng.randint(words - 10, words + 10))) for _ in range(n)]


def nltk_self_bleu(texts, max_n=3):
    sents = [t.split() for t in texts]
    weights = tuple(1.0 / max_n for _ in range(max_n))
    smooth = SmoothingFunction().method1
    scores = [sentence_bleu(sents[:i] + sents[i + 1:], h, weights, smoothing_function=smooth)
              for i, h in enumerate(sents)]
    return sum(scores) / len(scores)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("keel", nargs="?", default=os.path.join(os.path.dirname(__file__), "../../build/bin/keel"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--words", type=int, default=60)
    args = ap.parse_args()
    texts = generations(args.n, args.words)
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in texts)
        path = f.name
    try:
        def best_of_5(metric):  # the process is short, the machine may be busy
            runs = []
            for _ in range(5):
                t0 = time.perf_counter()
                out = subprocess.run([args.keel, "score", "--metric", metric, "--input", path],
                                     capture_output=True, text=True, check=True).stdout
                runs.append(time.perf_counter() - t0)
            return json.loads(out)["value"], min(runs)

        keel_value, keel_s = best_of_5("self_bleu")
        # The same process with a trivial metric: start-up, plugin discovery and JSONL parsing.
        _, base_s = best_of_5("mode_share")
    finally:
        os.unlink(path)
    t0 = time.perf_counter()
    nltk_value = nltk_self_bleu(texts)
    nltk_s = time.perf_counter() - t0
    words = sum(len(t.split()) for t in texts)
    print(f"Self-BLEU (max_n 3, smoothing 1) of {args.n} generations, {words / args.n:.1f} words on average")
    print(f"  keel score (whole process, best of 5): {keel_s:8.3f} s   value {keel_value:.15f}")
    print(f"  nltk sentence_bleu loop              : {nltk_s:8.3f} s   value {nltk_value:.15f}")
    print(f"  |difference| {abs(keel_value - nltk_value):.2e}; keel is {nltk_s / keel_s:.0f}x faster (goal >= 100x)")
    print(f"  (keel's start-up alone, the same process with the trivial mode_share metric: {base_s:.3f} s)")
    sys.exit(0 if abs(keel_value - nltk_value) <= 1e-9 else 1)


if __name__ == "__main__":
    main()
