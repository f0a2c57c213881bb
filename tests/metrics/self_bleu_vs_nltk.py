"""Self-BLEU through `keel score` equals NLTK's sentence_bleu-based Self-BLEU (the Texygen
definition: each generation against all the others, uniform weights up to max_n, smoothing method 1,
averaged) within 1e-9, on random sets of 2 to 500 generations with empty and one-word ones.

usage: self_bleu_vs_nltk.py KEEL [--plugin-dir D]
"""
import json
import os
import random
import subprocess
import sys
import tempfile

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu


def nltk_self_bleu(texts, max_n=3):
    sents = [t.split() for t in texts]
    weights = tuple(1.0 / max_n for _ in range(max_n))
    smooth = SmoothingFunction().method1
    scores = [
        sentence_bleu(sents[:i] + sents[i + 1 :], hyp, weights, smoothing_function=smooth)
        for i, hyp in enumerate(sents)
    ]
    return sum(scores) / len(scores)


def keel_score(keel, extra, texts, max_n=3):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
        path = f.name
    try:
        out = subprocess.run(
            [keel, "score", "--metric", "self_bleu", "--set", f"max_n={max_n}", "--input", path, *extra],
            capture_output=True, text=True, check=True,
        ).stdout
    finally:
        os.unlink(path)
    return json.loads(out)


def random_set(rng, n):
    vocab = [f"w{i}" for i in range(rng.choice([3, 8, 30, 200]))]
    texts = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.08:
            texts.append(rng.choice(["", "   ", "\n"]))         # empty
        elif kind < 0.18:
            texts.append(rng.choice(vocab))                     # one word
        elif kind < 0.25 and texts:
            texts.append(rng.choice(texts))                     # a repeat
        else:
            words = [rng.choice(vocab) for _ in range(rng.randint(2, 14))]
            seps = [rng.choice([" ", " ", " ", "  ", "\t", "\n"]) for _ in words]
            texts.append("".join(w + s for w, s in zip(words, seps)).strip(rng.choice([" ", ""])))
    return texts


def main():
    keel, extra = sys.argv[1], sys.argv[2:]
    rng = random.Random(1234)
    cases = [
        (["a b c", "a b c"], 3),                                 # identical: 1.0
        (["", ""], 3),                                           # both empty: 0
        (["one", "one"], 3),                                     # one word each
        (["one", "two", ""], 3),
        (["a b", "a c"], 3),
        (["a b c d e", "a b", "x"], 3),                          # shorter than max_n, brevity penalty
        (["a a a a", "a a", "a a a a a a"], 3),                  # clipping
        (["a b c d", "a b c d", "b c d e"], 1),
        (["a b c d", "a b x d", "b c d e"], 2),
        (["a b c d e f", "a b c d e f g", "a b c"], 5),
        (["a\u00a0b c", "a b\u3000c", "a\u2003b\x1fc d", "\u00e9t\u00e9 b"], 3),  # Unicode spaces
        (["same words here"] * 40 + ["", "same", "words here same"], 3),
    ]
    for n in [2, 3, 4, 5, 7, 10, 20, 50, 100, 200, 500]:
        cases.append((random_set(rng, n), 3))
    for n in [2, 6, 30]:
        cases.append((random_set(rng, n), rng.choice([1, 2, 4])))
    worst = 0.0
    for texts, max_n in cases:
        want = nltk_self_bleu(texts, max_n)
        got = keel_score(keel, extra, texts, max_n)
        dev = abs(got["value"] - want)
        worst = max(worst, dev)
        status = "ok" if dev <= 1e-9 else "FAIL"
        print(f"{status}: {len(texts):4d} generations, max_n {max_n}: keel {got['value']:.15f} "
              f"nltk {want:.15f} |diff| {dev:.2e}")
        if dev > 1e-9:
            print("texts:", json.dumps(texts[:20]))
            sys.exit(1)
        if got["alarm"] != (got["value"] > 0.7):
            print("FAIL: alarm", got)
            sys.exit(1)
    print(f"PASS: {len(cases)} sets, max |keel - nltk| = {worst:.3e}")


if __name__ == "__main__":
    main()
