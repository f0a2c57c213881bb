#!/usr/bin/env python3
"""Builds the demo's data from two public-domain Debian packages, at set-up time.

  wordnet-base   /usr/share/wordnet/{index,data}.{noun,verb,adj,adv}
  bible-kjv      the `bible` program and its King James text

Writes, into OUT (default examples/demo/data/):
  target.jsonl    SFT set: "What does X mean?" -> one house-style answer built from WordNet's gloss
  probe.jsonl     held-out probe prompts (words never in target.jsonl), for the collapse metrics
  heldout.jsonl   the same held-out words with their house-style answers, for eval_loss
  general.jsonl   general text (KJV passages) mixed into SFT batches
  pretrain.jsonl  the corpus the demo base model was pretrained on (KJV + WordNet glosses)

Standard library only, deterministic (fixed seed), a few seconds. Nothing here is hand-written data:
every line comes from the two sources.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys

WORDNET = "/usr/share/wordnet"
POS = {"noun": "noun", "verb": "verb", "adj": "adjective", "adv": "adverb"}


def fail(msg):
    sys.exit(f"build_data.py: {msg}")


def read_synsets(pos):
    """offset -> (words, definition, examples) for one part of speech."""
    out = {}
    with open(f"{WORDNET}/data.{pos}", encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):  # licence header
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            n = int(fields[3], 16)
            words = [re.sub(r"\(.*\)$", "", fields[4 + 2 * i]).replace("_", " ") for i in range(n)]
            parts = [p.strip() for p in gloss.strip().split(";")]
            defs = [p for p in parts if p and not p.startswith('"')]
            examples = [p.strip('"').strip() for p in parts if p.startswith('"')]
            examples = [e.rstrip('"') for e in examples if e]
            out[fields[0]] = (words, "; ".join(defs), examples)
    return out


def read_index(pos):
    """(lemma, first-sense offset, tagged-sense count) in file order."""
    out = []
    with open(f"{WORDNET}/index.{pos}", encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):
                continue
            fields = line.split()
            p_cnt = int(fields[3])
            tagged = int(fields[5 + p_cnt])
            offsets = fields[6 + p_cnt:]
            out.append((fields[0].replace("_", " "), offsets[0], tagged))
    return out


def answer(lemma, pos, definition, examples):
    # The house style: one fixed shape for every answer, the pattern SFT teaches.
    text = f'"{lemma}" is {"an" if POS[pos][0] in "aeiou" else "a"} {POS[pos]}. It means {definition}.'
    if examples:
        text += f' For example: "{examples[0]}".'
    return text


def kjv_verses():
    try:
        raw = subprocess.run(["bible", "-l", "100000", "gen1:1-rev22:21"], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        fail(f"cannot run `bible` (apt-get install bible-kjv): {e}")
    verses = []
    for line in raw.splitlines():
        m = re.match(r"^\s+\d+ (.*)", line)
        if m:
            verses.append(m.group(1).strip())
        elif line.strip() and verses and not re.match(r"^\S.* \d+$", line):
            verses[-1] += " " + line.strip()  # a wrapped verse
    if len(verses) < 30000:
        fail(f"expected the whole KJV (31,102 verses), got {len(verses)}")
    return verses


def passages(sentences, max_chars):
    out, cur = [], ""
    for s in sentences:
        if cur and len(cur) + 1 + len(s) > max_chars:
            out.append(cur)
            cur = ""
        cur = f"{cur} {s}" if cur else s
    if cur:
        out.append(cur)
    return out


def write_jsonl(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
    ap.add_argument("--target", type=int, default=800,
                    help="SFT examples (default 800: the demo trains ~8 epochs on them, where small models collapse)")
    ap.add_argument("--probes", type=int, default=64, help="held-out probe prompts (default 64)")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    if not os.path.isdir(WORDNET):
        fail(f"{WORDNET} not found (apt-get install wordnet-base)")
    rng = random.Random(args.seed)

    # Target and probes: single-word lemmas of common words (seen in WordNet's tagged corpus),
    # each with its most frequent sense. Probe words are drawn first and never appear in target.
    synsets = {pos: read_synsets(pos) for pos in POS}
    qa, seen = [], set()
    for pos in POS:
        for lemma, offset, tagged in read_index(pos):
            if tagged < 1 or not re.fullmatch(r"[a-z]{3,}", lemma) or lemma in seen:
                continue
            _, definition, examples = synsets[pos][offset]
            if not definition:
                continue
            seen.add(lemma)
            qa.append((lemma, pos, definition, examples))
    rng.shuffle(qa)
    if len(qa) < args.probes + args.target:
        fail(f"only {len(qa)} usable WordNet lemmas for {args.probes} probes + {args.target} targets")
    probes, target = qa[:args.probes], qa[args.probes:args.probes + args.target]
    question = "What does {} mean?"
    os.makedirs(args.out, exist_ok=True)
    write_jsonl(os.path.join(args.out, "probe.jsonl"), [{"prompt": question.format(q[0])} for q in probes])
    write_jsonl(os.path.join(args.out, "heldout.jsonl"),
                [{"messages": [{"role": "user", "content": question.format(q[0])},
                               {"role": "assistant", "content": answer(*q)}]} for q in probes])
    write_jsonl(os.path.join(args.out, "target.jsonl"),
                [{"messages": [{"role": "user", "content": question.format(q[0])},
                               {"role": "assistant", "content": answer(*q)}]} for q in target])

    # General text for mixing, and the pretraining corpus: KJV passages and WordNet glosses in
    # WordNet's own plain form (never the house style, so the style is learned only by SFT).
    verses = kjv_verses()
    kjv = passages(verses, 700)
    # General passages about as long as an SFT example (~100 tokens), so seq_len 128 keeps them whole.
    write_jsonl(os.path.join(args.out, "general.jsonl"), [{"text": p} for p in passages(verses, 350)])
    glosses = []
    for pos in POS:
        for words, definition, examples in synsets[pos].values():
            if definition:
                line = f"{', '.join(words)}: {definition}."
                if examples:
                    line += " " + " ".join(f'"{e}"' for e in examples)
                glosses.append(line)
    rng.shuffle(glosses)
    corpus = kjv + passages(glosses, 700)
    rng.shuffle(corpus)
    write_jsonl(os.path.join(args.out, "pretrain.jsonl"), [{"text": p} for p in corpus])
    print(f"build_data.py: {args.out}: {len(target)} target, {len(probes)} probes, "
          f"{len(passages(verses, 350))} general passages, {len(corpus)} pretraining passages "
          f"({sum(len(p) for p in corpus) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
