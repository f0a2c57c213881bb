"""Converts a GGUF model file to a Hugging Face folder with transformers' GGUF loader: the weights
dequantized to float32 (model.safetensors), the config, the tokenizer and its chat template.

The folder is written beside OUT_DIR under a temporary name and renamed into place, its stamp
(keel-convert.json: the source, the packages, the files) written last, so a folder with a stamp is
complete. setup.sh calls this; it does not check whether OUT_DIR is already complete.

usage: convert.py FILE.gguf OUT_DIR [PACKAGES]   (PACKAGES: recorded in the stamp, e.g. "gguf==0.19.0")
"""
import json
import os
import shutil
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig


def main():
    gguf, out = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    packages = sys.argv[3] if len(sys.argv) > 3 else ""
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    folder, name = os.path.split(gguf)
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # dequantize=True: a plain dense model. Without it, an architecture on transformers' legacy GGUF
    # path (llama among them) is dequantized all the same but keeps its GGUF quantizer, and
    # save_pretrained refuses it as "quantized with gguf and not serializable".
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32,
                                                 quantization_config=GgufConfig(dequantize=True))
    dense = all(p.dtype == torch.float32 for p in model.parameters())
    if getattr(model, "hf_quantizer", None) is not None or not dense:
        sys.exit(f"convert.py: transformers did not give a plain float32 model for {name}")
    loaded = time.time() - t0

    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    files = sorted(os.listdir(tmp))
    seconds = time.time() - t0
    stamp = {"source": name, "packages": packages, "transformers": transformers.__version__,
             "dtype": "float32", "files": files, "seconds": round(seconds, 1)}
    with open(os.path.join(tmp, "keel-convert.json"), "w") as f:
        json.dump(stamp, f, indent=1)
        f.write("\n")
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)

    c = model.config
    params = sum(p.numel() for p in model.parameters())
    print(f"smollm2: wrote {out} in {seconds:.1f} s (GGUF load and dequantization {loaded:.1f} s)")
    print(f"  {c.architectures[0]}: {params / 1e6:.1f}M parameters, hidden {c.hidden_size}, "
          f"{c.num_hidden_layers} layers, {c.num_attention_heads} heads / {c.num_key_value_heads} KV heads, "
          f"vocab {c.vocab_size}, tie_word_embeddings {c.tie_word_embeddings}")
    for f in files + ["keel-convert.json"]:
        print(f"  {os.path.getsize(os.path.join(out, f)):>12,d}  {f}")


if __name__ == "__main__":
    main()
