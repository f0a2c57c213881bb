"""A deliberately collapsing SFT set: varied prompts, every answer the same sentence. A tiny model
trained on it at a high LR starts answering every probe alike, which raises the collapse alarms.
Used by the remedies and third-party-plugin end-to-end tests.

usage: collapse_data.py OUT.jsonl
"""
import json
import random
import sys

WORDS = "apple river stone cloud music garden window pencil ocean mountain candle forest".split()


def write(path, n=400, seed=1):
    r = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            q = f"Tell me about the {r.choice(WORDS)} and the {r.choice(WORDS)}."
            f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                             {"role": "assistant", "content": "I am sorry, I cannot help with that."}]}) + "\n")


if __name__ == "__main__":
    write(sys.argv[1])
