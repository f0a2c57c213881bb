"""What the end-to-end tests share: a fresh work directory, a tiny random Llama made by keel (byte
tokenizer), and check() with its tally, which ends the test with `N passed, N failed`."""
import json
import os
import shutil
import subprocess
import sys

TINY_LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 288, "hidden_size": 64,
              "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "max_position_embeddings": 256, "tie_word_embeddings": True}


def fresh_workdir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    os.chdir(path)


def tiny_model(keel, out="model", seed=0):
    json.dump(TINY_LLAMA, open("config.json", "w"))
    subprocess.run([keel, "init-model", "--config", "config.json", "--out", out, "--tokenizer", "byte",
                    "--seed", str(seed)], check=True, capture_output=True)


class Checks:
    def __init__(self):
        self.passed = self.failures = 0

    def __call__(self, ok, what):
        self.passed += bool(ok)
        self.failures += not ok
        print(f"{'ok' if ok else 'FAIL'}: {what}", flush=True)

    def finish(self):
        print(f"{self.passed} passed, {self.failures} failed")
        sys.exit(1 if self.failures else 0)
