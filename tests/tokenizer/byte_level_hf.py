"""keel's byte-level tokenizer (256 bytes + specials), as written by Tokenizer::save, loads in
`tokenizers` and transformers and encodes/decodes as keel does.

usage: byte_level_hf.py KEEL WORKDIR   (WORKDIR/byte_level is written by the unit-test fixture)"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402


def main():
    keel, work = sys.argv[1], sys.argv[2]
    d = os.path.join(work, "byte_level")
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    hf = AutoTokenizer.from_pretrained(d)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert hf.eos_token == "<|endoftext|>" and hf.convert_tokens_to_ids("<|im_end|>") == 258, (hf.eos_token,)
    lines = corpus.corpus(min_bytes=200_000, specials=specials, seed=5)
    data = "".join(json.dumps(l, ensure_ascii=False) + "\n" for l in lines)
    p = subprocess.run([keel, "tokenize", "--tokenizer", d, "--json"], input=data, capture_output=True, text=True, check=True)
    got = [json.loads(l) for l in p.stdout.split("\n") if l]
    want = [e.ids for e in tok.encode_batch(lines, add_special_tokens=False)]
    want_tf = [hf(l, add_special_tokens=False)["input_ids"] for l in lines[:500]]
    bad = sum(a != b for a, b in zip(got, want)) + sum(a != b for a, b in zip(got, want_tf))
    dec = [hf.decode(ids) for ids in got[:500]]
    bad_dec = sum(a != b for a, b in zip(dec, lines))
    print(f"byte-level: {len(lines)} lines; ids differ in {bad}; transformers decode differs in {bad_dec}/500")
    sys.exit(1 if bad or bad_dec else 0)


if __name__ == "__main__":
    main()
