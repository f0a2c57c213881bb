"""Tokenizers the parity tests build locally with the `tokenizers` library, one per family keel
must read: byte-level BPE with the GPT-2 and Llama-3 split patterns, Metaspace with byte fallback
(Llama-2 style, both the pre-tokenizer and the legacy normalizer serialisations)."""
import json
import os

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def _train(tok, texts, trainer):
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def gpt2(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    _train(tok, texts, trainers.BpeTrainer(vocab_size=4000, special_tokens=["<|endoftext|>"],
                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_tokens([AddedToken("<extra>", normalized=True), AddedToken("[sw]", single_word=True, normalized=False)])
    j = json.loads(tok.to_str())
    # Older files write merges as "a b": exercise that form here.
    j["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    return Tokenizer.from_str(json.dumps(j)), ["<|endoftext|>", "<extra>", "[sw]"]


def llama3(texts, nfkc=True):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    if nfkc:
        tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    _train(tok, texts, trainers.BpeTrainer(vocab_size=4000, special_tokens=LLAMA3_SPECIALS,
                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B",
                                                       special_tokens=[("<|begin_of_text|>", bos)])
    return tok, list(LLAMA3_SPECIALS)


def _with_byte_fallback(tok):
    """Puts <0x00>..<0xFF> after the specials, as Llama 2's vocabulary has them."""
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    n_special = 3
    new = {}
    for t, i in sorted(vocab.items(), key=lambda x: x[1]):
        new[t] = i if i < n_special else i + 256
    for b in range(256):
        new[f"<0x{b:02X}>"] = n_special + b
    j["model"]["vocab"] = new
    j["model"]["byte_fallback"] = True
    j["model"]["fuse_unk"] = True
    return Tokenizer.from_str(json.dumps(j))


def metaspace(texts, legacy=False):
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    _train(tok, texts, trainers.BpeTrainer(vocab_size=4000, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=120))
    tok = _with_byte_fallback(tok)
    if legacy:  # Llama 2 as older converters wrote it: a normalizer instead of the pre-tokenizer
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.pre_tokenizer = None
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="first"),
                                         decoders.ByteFallback(), decoders.Fuse()])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)])
    tok.add_tokens([AddedToken("<mask>", lstrip=True, normalized=False), AddedToken("<r>", rstrip=True, normalized=False)])
    return tok, ["<s>", "</s>", "<mask>", "<r>"]


def build(family, texts, out_dir):
    """Writes out_dir/tokenizer.json for the family; returns (Tokenizer, specials)."""
    if family == "gpt2":
        tok, sp = gpt2(texts)
    elif family == "llama3":
        tok, sp = llama3(texts)
    elif family == "metaspace":
        tok, sp = metaspace(texts)
    elif family == "metaspace_legacy":
        tok, sp = metaspace(texts, legacy=True)
    else:
        raise ValueError(family)
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    return Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json")), sp
