"""Chat template and loss-mask parity with transformers' apply_chat_template: identical ids, and
identical trained positions (transformers' assistant mask from {% generation %} blocks vs keel's
labels != -100), on generated conversations. The template is detected by keel from the tokenizer's
chat_template (--template auto), which checks detection too.

usage: chat_parity.py KEEL chatml|llama3 WORKDIR SHARED_DIR   (exit 77: skipped)"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
import families  # noqa: E402

CHATML = (r"{%- for message in messages %}{{- '<|im_start|>' + message.role + '\n' }}"
          r"{%- if message.role == 'assistant' %}{% generation %}{{- message.content + '<|im_end|>' }}{% endgeneration %}"
          r"{%- else %}{{- message.content + '<|im_end|>' }}{%- endif %}{{- '\n' }}{%- endfor %}"
          r"{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}")
LLAMA3 = (r"{{- bos_token }}{%- for message in messages %}"
          r"{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
          r"{%- if message['role'] == 'assistant' %}{% generation %}{{- message['content'] | trim + '<|eot_id|>' }}"
          r"{% endgeneration %}{%- else %}{{- message['content'] | trim + '<|eot_id|>' }}{%- endif %}{%- endfor %}"
          r"{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}")


def main():
    keel, which, work, shared = sys.argv[1:5]
    out = os.path.join(work, f"chat_{which}")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    if which == "chatml":  # the real Qwen3 tokenizer with a plain ChatML template
        src = os.path.join(shared, "data", "tokenizers", "qwen3")
        if not os.path.exists(os.path.join(src, "tokenizer.json")):
            print(f"SKIPPED: the Qwen3 tokenizer is not at {src} (../shared is absent)")
            sys.exit(77)
        shutil.copy(os.path.join(src, "tokenizer.json"), out)
        cfg = json.load(open(os.path.join(src, "tokenizer_config.json")))
        cfg["chat_template"] = CHATML
        json.dump(cfg, open(os.path.join(out, "tokenizer_config.json"), "w"), ensure_ascii=False)
    else:  # a locally built Llama-3-style tokenizer
        tok, _ = families.llama3(corpus.corpus(min_bytes=300_000, seed=99), nfkc=False)
        PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                chat_template=LLAMA3).save_pretrained(out)
    hf = AutoTokenizer.from_pretrained(out)

    convs = corpus.conversations(300)
    data = os.path.join(out, "conversations.jsonl")
    with open(data, "w") as f:
        for c in convs:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    p = subprocess.run([keel, "tokenize", "--tokenizer", out, "--dataset", data, "--seq-len", "1000000"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"keel failed: {p.stderr}")
    got = [json.loads(l) for l in p.stdout.split("\n") if l]
    assert len(got) == len(convs), (len(got), len(convs))

    bad_ids = bad_mask = bad_prompt = trained = 0
    for i, (c, g) in enumerate(zip(convs, got)):
        r = hf.apply_chat_template(c["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        ids, mask = list(r["input_ids"]), list(r["assistant_masks"])
        keel_mask = [int(l != -100) for l in g["labels"]]
        trained += sum(mask)
        if g["ids"] != ids:
            bad_ids += 1
            if bad_ids <= 3:
                print(f"IDS DIFFER conversation {i}: {c}")
        elif keel_mask != mask:
            bad_mask += 1
            if bad_mask <= 3:
                k = next(j for j in range(len(mask)) if mask[j] != keel_mask[j])
                print(f"MASK DIFFERS conversation {i} at token {k}: keel {keel_mask[k]} hf {mask[k]} "
                      f"({hf.convert_ids_to_tokens(ids[max(0, k - 2):k + 3])})")
        elif any(l != -100 and l != t for l, t in zip(g["labels"], ids)):
            bad_mask += 1
        last = max(j for j, m in enumerate(c["messages"]) if m["role"] == "assistant")
        want_prompt = hf.apply_chat_template(c["messages"][:last], tokenize=False, add_generation_prompt=True)
        if g["prompt"] != want_prompt:
            bad_prompt += 1
            if bad_prompt <= 3:
                print(f"PROMPT DIFFERS conversation {i}: keel {g['prompt']!r}\n  hf {want_prompt!r}")
    print(f"{which}: {len(convs)} conversations, {sum(len(g['ids']) for g in got)} tokens, {trained} trained; "
          f"ids differ in {bad_ids}, masks in {bad_mask}, generation prompts in {bad_prompt}")
    sys.exit(1 if bad_ids or bad_mask or bad_prompt else 0)


if __name__ == "__main__":
    main()
