"""shared_ngram against its definition, computed here: words split on whitespace, lowercased (ASCII)
and stripped of the ASCII punctuation at their ends (words of punctuation only dropped); each
answer's set of word n-grams; the value is the largest number of answers that hold one same
n-gram, over the number of answers. Random answers, some in one template with varying slots.

usage: shared_ngram_ref.py KEEL WORKDIR
"""
import json
import os
import random
import string
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from e2e import Checks  # noqa: E402

KEEL, WORK = sys.argv[1], sys.argv[2]
os.makedirs(WORK, exist_ok=True)
os.chdir(WORK)
check = Checks()
ASCII_UPPER = {c: c.lower() for c in string.ascii_uppercase}


def words(text):
    out = []
    for w in text.split():
        w = w.strip(string.punctuation)
        if w:
            out.append("".join(ASCII_UPPER.get(c, c) for c in w))
    return out


def shared(texts, n):
    df = {}
    for t in texts:
        ws = words(t)
        for g in {tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)}:
            df[g] = df.get(g, 0) + 1
    return max(df.values(), default=0) / len(texts)


rng = random.Random(7)
vocab = ["sea", "Sea!", "moon", "the", "a", "ocean,", "(tree)", "It", "means", "noun.", "—", "café", "über", "...", "x"]
for trial in range(12):
    texts = []
    for _ in range(rng.randint(1, 30)):
        if rng.random() < 0.5:
            slot = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 3)))
            texts.append(f'"{slot}" is a Noun. It means {rng.choice(vocab)} thing.')
        else:
            texts.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12))))
    path = f"t{trial}.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    for n in (1, 2, 3, 4):
        p = subprocess.run([KEEL, "score", "--metric", "shared_ngram", "--set", f"n={n}", "--input", path],
                           capture_output=True, text=True)
        got = json.loads(p.stdout)["value"] if p.returncode == 0 else None
        want = shared(texts, n)
        check(got is not None and abs(got - want) < 1e-12, f"trial {trial}, n={n}, {len(texts)} answers: keel {got} vs {want}")
check.finish()
