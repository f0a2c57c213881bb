"""The forgetting set of the SmolLM2 experiment: the base model's own answers to 32 general requests
(none of them among the probe prompts), as chat lines. Its loss, eval_loss.general, rises as
fine-tuning makes the model forget how it used to answer; eval_loss (the task's held-out set) falls
as it learns. Made once with transformers (sampling seeded, so it is reproducible) and committed:

    /opt/keel-venv/bin/python examples/smollm2/make_general_heldout.py
"""
import json
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPTS = [
    "Explain why the sky looks blue.", "Write a short poem about autumn leaves.",
    "How do I boil an egg?", "What are the planets of the solar system?",
    "Give me a tip for learning a new language.", "What is photosynthesis?",
    "Write two sentences about a cat who likes rain.", "How does a bicycle stay upright?",
    "What is the capital of Japan?", "Suggest a name for a small bakery.",
    "Why do we need sleep?", "Describe a sunset in one sentence.",
    "What is 15 plus 27?", "How can I save money on groceries?",
    "What does a computer's CPU do?", "Write a thank-you note to a teacher.",
    "What causes earthquakes?", "List three healthy breakfast ideas.",
    "How do bees make honey?", "Tell me a fun fact about octopuses.",
    "What is the difference between weather and climate?", "How do I write a good email subject line?",
    "Why is exercise good for you?", "Write a limerick about a dog.",
    "What is the boiling point of water?", "How do plants know which way is up?",
    "Give me a simple recipe for pancakes.", "What is a black hole?",
    "How should I prepare for a job interview?", "What is the tallest mountain on Earth?",
    "Summarize the story of Cinderella in two sentences.", "Why do leaves change colour in autumn?",
]

model_dir = os.path.join(HERE, "model")
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
torch.manual_seed(0)
with open(os.path.join(HERE, "general_heldout.jsonl"), "w") as out:
    for p in PROMPTS:
        msgs = [{"role": "user", "content": p}]
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            gen = model.generate(**ids, max_new_tokens=128, do_sample=True, temperature=0.7, top_p=0.9,
                                 repetition_penalty=1.1, pad_token_id=tok.eos_token_id)
        answer = tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        out.write(json.dumps({"messages": msgs + [{"role": "assistant", "content": answer}]}) + "\n")
        print(p, "->", answer[:80].replace("\n", " "))
