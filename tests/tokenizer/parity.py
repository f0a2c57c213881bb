"""Token-id parity between `keel tokenize` and Hugging Face `tokenizers` on a generated corpus of
at least 2 MB (English, Russian, Chinese, code, emoji, numbers, whitespace runs, special tokens in
text), plus decode parity and the decode(encode(x)) round trip.

usage: parity.py KEEL FAMILY WORKDIR [SHARED_DIR]   (FAMILY: qwen3 | gpt2 | llama3 | metaspace | metaspace_legacy)
Exit 77 (skipped) when the Qwen3 tokenizer is not in SHARED_DIR."""
import json
import os
import subprocess
import sys
import time
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
import families  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>", "<|fim_prefix|>"]


def keel(args, lines):
    data = "".join(json.dumps(l, ensure_ascii=False) + "\n" for l in lines).encode()
    t = time.time()
    p = subprocess.run(args, input=data, capture_output=True)
    if p.returncode != 0:
        sys.exit(f"keel failed ({p.returncode}): {p.stderr.decode(errors='replace')}")
    return [json.loads(l) for l in p.stdout.decode().split("\n")[:-1]], time.time() - t


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def main():
    keel_bin, family, work = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(work, exist_ok=True)
    if family == "qwen3":
        shared = sys.argv[4]
        tok_dir = os.path.join(shared, "data", "tokenizers", "qwen3")
        if not os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
            print(f"SKIPPED: the Qwen3 tokenizer is not at {tok_dir} (../shared is absent)")
            sys.exit(77)
        tok, specials = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json")), QWEN_SPECIALS
        lines = corpus.corpus(specials=specials)
    else:
        tok_dir = os.path.join(work, family)
        train_text = corpus.corpus(min_bytes=400_000, seed=99)
        tok, specials = families.build(family, train_text, tok_dir)
        lines = corpus.corpus(specials=specials)
    size = sum(len(l.encode()) for l in lines)
    print(f"{family}: corpus {len(lines)} lines, {size / 1e6:.2f} MB")
    assert size >= 2_000_000

    want = [e.ids for e in tok.encode_batch(lines, add_special_tokens=False)]
    got, secs = keel([keel_bin, "tokenize", "--tokenizer", tok_dir, "--json"], lines)
    bad = [i for i in range(len(lines)) if got[i] != want[i]]
    for i in bad[:5]:
        k = first_diff(got[i], want[i])
        print(f"MISMATCH line {i}: {lines[i]!r}\n  keel {got[i][max(0, k - 3):k + 5]}\n  hf   {want[i][max(0, k - 3):k + 5]}")
    print(f"ids: {len(lines) - len(bad)}/{len(lines)} lines identical ({sum(map(len, want))} tokens); keel {secs:.2f} s")

    # With the post-processor's special tokens, on a subset.
    sub = lines[:2000]
    want_sp = [e.ids for e in tok.encode_batch(sub, add_special_tokens=True)]
    got_sp, _ = keel([keel_bin, "tokenize", "--tokenizer", tok_dir, "--json", "--special"], sub)
    bad_sp = sum(1 for a, b in zip(got_sp, want_sp) if a != b)
    print(f"ids with specials: {len(sub) - bad_sp}/{len(sub)} identical")

    # Decoding: the same text as tokenizers' decode, and back to the input (normalized) text.
    dec, _ = keel([keel_bin, "tokenize", "--tokenizer", tok_dir, "--decode", "--json"], want)
    hf_dec = tok.decode_batch(want, skip_special_tokens=False)
    bad_dec = [i for i in range(len(lines)) if dec[i] != hf_dec[i]]
    for i in bad_dec[:3]:
        print(f"DECODE MISMATCH line {i}: keel {dec[i]!r}\n  hf {hf_dec[i]!r}")
    norm = {"qwen3": "NFC", "llama3": "NFKC"}.get(family)
    roundtrip_ok = 0
    check_roundtrip = family in ("qwen3", "gpt2", "llama3")  # Metaspace drops the prefix space it adds
    for i, l in enumerate(lines):
        expect = unicodedata.normalize(norm, l) if norm else l
        roundtrip_ok += dec[i] == expect
    print(f"decode: {len(lines) - len(bad_dec)}/{len(lines)} identical to tokenizers; round trip exact on "
          f"{roundtrip_ok}/{len(lines)}")
    failed = bad or bad_sp or bad_dec or (check_roundtrip and roundtrip_ok != len(lines))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
