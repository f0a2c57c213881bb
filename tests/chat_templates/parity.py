"""Chat-template parity: keel's Jinja rendering against transformers' apply_chat_template on real templates.

usage: parity.py KEEL TEMPLATES_DIR TOKENIZER_DIR [--only NAME]... [--keep] [--reference-only]
                 [--no-jinja-file-test]

TEMPLATES_DIR holds the .jinja files (searched recursively; a template is named by its path without
.jinja, e.g. chujiezheng/alpaca); TOKENIZER_DIR is the Qwen3 tokenizer (tokenizer.json,
tokenizer_config.json). For each template a temporary tokenizer folder gets Qwen3's files with
tokenizer_config.json's "chat_template" set to the template's source, byte-exact (CRLF kept), and
"bos_token" set to "<|endoftext|>" so that templates using bos_token render. The conversations come from
cases.py. For each conversation transformers gives the reference:

  text   = apply_chat_template(messages, tools=tools, tokenize=False)
  prompt = apply_chat_template(messages[:last assistant], tools=tools, tokenize=False, add_generation_prompt=True)
  ids    = tokenizer(text, add_special_tokens=False).input_ids   (checked against apply_chat_template's ids)
  mask   = apply_chat_template(..., return_assistant_tokens_mask=True)["assistant_masks"]   ({% generation %} only)

A conversation on which transformers raises (text or prompt) is an expected error. keel runs once per
template on the conversations transformers renders (`keel tokenize --tokenizer DIR --dataset F --render`
for text and prompt, then without --render for ids, labels and prompt: labels != -100 must equal the mask
for {% generation %} templates, and every label is -100 or its id), and once per expected error on a
one-line dataset (`--render`), which must exit 2.

The jinja-file test repeats a few templates with the template in chat_template.jinja beside
tokenizer_config.json (no chat_template field), named NAME@chat_template.jinja.

One line per template: name, conversations (expected errors), OK or FAIL and the first difference. Exit 0
when all pass, 1 on any failure, 77 when the data is missing (skipped). --only NAME (repeatable) runs the
templates whose name or base name is NAME; --keep keeps the temporary folders; --reference-only runs
transformers alone and prints what each template renders or raises (KEEL is not run)."""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cases as case_lib  # noqa: E402

BOS = "<|endoftext|>"
# Templates also tested from chat_template.jinja (one with LF, one with CRLF line endings).
JINJA_FILE_TEMPLATES = ["qwen3", "chujiezheng/qwen2.5-instruct", "llamacpp/LFM2.5-8B-A1B"]
KEEL_TIMEOUT = 300


def read_source(path):
    """The template's text, byte-exact: decoded as UTF-8 without newline translation."""
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def has_generation(source):
    import re
    return re.search(r"\{%-?\s*generation\s*-?%\}", source) is not None


def list_templates(root):
    out = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".jinja"):
                path = os.path.join(dirpath, f)
                out.append((os.path.relpath(path, root)[: -len(".jinja")].replace(os.sep, "/"), path))
    return sorted(out)


def make_tokenizer_dir(dest, tokenizer_dir, source, as_file):
    """Qwen3's tokenizer with `source` as its chat template: in tokenizer_config.json's chat_template, or
    (as_file) in chat_template.jinja, byte-exact, with no chat_template in the config."""
    os.makedirs(dest, exist_ok=True)
    shutil.copy(os.path.join(tokenizer_dir, "tokenizer.json"), dest)
    with open(os.path.join(tokenizer_dir, "tokenizer_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    cfg["bos_token"] = BOS
    if as_file:
        cfg.pop("chat_template", None)
        with open(os.path.join(dest, "chat_template.jinja"), "wb") as f:
            f.write(source.encode("utf-8"))
    else:
        cfg["chat_template"] = source
    with open(os.path.join(dest, "tokenizer_config.json"), "w", encoding="utf-8", newline="") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)


def error_text(e):
    msg = str(e).strip().split("\n")[0]
    return f"{type(e).__name__}: {msg[:160]}"


def reference(hf, case, generation):
    """transformers' rendering of one case: {"text", "prompt", "ids"[, "mask"]} or {"error"}."""
    msgs, tools = case["messages"], case.get("tools")
    last = case_lib.last_assistant_index(msgs)
    try:
        text = hf.apply_chat_template(msgs, tools=tools, tokenize=False, add_generation_prompt=False)
    except Exception as e:  # noqa: BLE001 - any exception is the template's (expected) error
        return {"error": "text: " + error_text(e)}
    try:
        prompt = hf.apply_chat_template(msgs[:last], tools=tools, tokenize=False, add_generation_prompt=True)
    except Exception as e:  # noqa: BLE001
        return {"error": "prompt: " + error_text(e)}
    ids = hf(text, add_special_tokens=False)["input_ids"]
    direct = hf.apply_chat_template(msgs, tools=tools, tokenize=True, return_dict=True)["input_ids"]
    if list(direct) != list(ids):
        raise RuntimeError(f"{case['id']}: apply_chat_template(tokenize=True) ids differ from tokenizer(text)")
    ref = {"text": text, "prompt": prompt, "ids": list(ids)}
    if generation:
        out = hf.apply_chat_template(msgs, tools=tools, tokenize=True, return_dict=True,
                                     return_assistant_tokens_mask=True)
        if list(out["input_ids"]) != ref["ids"]:
            raise RuntimeError(f"{case['id']}: ids with return_assistant_tokens_mask differ")
        ref["mask"] = list(out["assistant_masks"])
    return ref


def show_diff(a, b, what, label_a="keel", label_b="hf"):
    """The first difference of two strings, compactly: the repr of each around the first differing char."""
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    lo = max(0, i - 25)
    return (f"{what} differs at char {i} (len {label_a} {len(a)}, {label_b} {len(b)}): "
            f"{label_a} {a[lo:i + 35]!r} | {label_b} {b[lo:i + 35]!r}")


def tokens_around(hf, ids, k):
    """The tokens around position k, k's marked with >>: 'ĠParis', '.', >>'<|im_end|>', 'Ċ'."""
    lo = max(0, k - 3)
    toks = hf.convert_ids_to_tokens(ids[lo:k + 4])
    return ", ".join((">>" if lo + j == k else "") + repr(t) for j, t in enumerate(toks))


def show_ids_diff(hf, a, b, what):
    k = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))
    return (f"{what} differ at token {k} (len keel {len(a)}, hf {len(b)}): "
            f"keel [{tokens_around(hf, a, k)}] | hf [{tokens_around(hf, b, k)}]")


def dataset_line(case):
    row = {"messages": case["messages"]}
    if case.get("tools") is not None:
        row["tools"] = case["tools"]
    return json.dumps(row, ensure_ascii=False) + "\n"


def run_keel(keel, tok_dir, data, render):
    cmd = [keel, "tokenize", "--tokenizer", tok_dir, "--dataset", data] + (["--render"] if render else [])
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=KEEL_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, [], f"timed out after {KEEL_TIMEOUT} s"
    stderr = p.stderr.decode("utf-8", "replace").strip()
    rows = []
    if p.returncode == 0:
        try:
            rows = [json.loads(l) for l in p.stdout.decode("utf-8").split("\n") if l.strip()]
        except (ValueError, UnicodeDecodeError) as e:
            return p.returncode, [], f"unreadable output ({e})"
    return p.returncode, rows, stderr


def compare(hf, keel, tok_dir, work, ok_cases, refs, err_cases, generation):
    """keel against the reference; returns the first failure (a string) or None."""
    if ok_cases:
        data = os.path.join(work, "cases.jsonl")
        with open(data, "w", encoding="utf-8", newline="") as f:
            f.writelines(dataset_line(c) for c in ok_cases)
        rc, rows, err = run_keel(keel, tok_dir, data, render=True)
        if rc != 0:
            return f"keel --render exit {rc}: {err.splitlines()[-1] if err else ''}"
        if len(rows) != len(ok_cases):
            return f"keel --render printed {len(rows)} lines for {len(ok_cases)} conversations"
        for c, r, row in zip(ok_cases, refs, rows):
            for key in ("text", "prompt"):
                if row.get(key) != r[key]:
                    if not isinstance(row.get(key), str):
                        return f"{c['id']}: keel --render gave no string '{key}': {str(row)[:200]}"
                    return f"{c['id']}: " + show_diff(row[key], r[key], key)
        rc, rows, err = run_keel(keel, tok_dir, data, render=False)
        if rc != 0:
            return f"keel tokenize exit {rc}: {err.splitlines()[-1] if err else ''}"
        if len(rows) != len(ok_cases):
            return f"keel tokenize printed {len(rows)} lines for {len(ok_cases)} conversations"
        for c, r, row in zip(ok_cases, refs, rows):
            ids, labels = row.get("ids"), row.get("labels")
            if ids != r["ids"]:
                return f"{c['id']}: " + show_ids_diff(hf, ids or [], r["ids"], "ids")
            if row.get("prompt") != r["prompt"]:
                return f"{c['id']}: " + show_diff(row.get("prompt") or "", r["prompt"], "prompt (no --render)")
            if labels is None or len(labels) != len(ids):
                return f"{c['id']}: labels missing or of another length than ids"
            bad = next((i for i, (l, t) in enumerate(zip(labels, ids)) if l != -100 and l != t), None)
            if bad is not None:
                return f"{c['id']}: labels[{bad}] = {labels[bad]}, neither -100 nor the id {ids[bad]}"
            if not generation:
                # No reference mask (transformers has none without {% generation %}): what keel trains
                # must hold each assistant message's text and no user or system message's text.
                # (whitespace runs compared as one space: some templates rewrite blank lines)
                squash = lambda x: " ".join(x.split())
                trained = squash(hf.decode([t for t, l in zip(ids, labels) if l != -100]))
                for m in c["messages"]:
                    text = m.get("content")
                    if not isinstance(text, str) or not text.strip():
                        continue
                    text = squash(text.split("</think>")[-1])
                    in_assistant = any(text in (a.get("content") or "") for a in c["messages"] if a["role"] == "assistant")
                    if m["role"] == "assistant" and text and text not in trained:
                        return f"{c['id']}: assistant text {text[:40]!r} is not among the trained tokens {trained[:120]!r}"
                    if m["role"] in ("user", "system") and len(text) >= 4 and not in_assistant and text in trained:
                        return f"{c['id']}: {m['role']} text {text[:40]!r} is among the trained tokens"
            if generation:
                got = [int(l != -100) for l in labels]
                if got != r["mask"]:
                    k = next(i for i in range(len(got)) if got[i] != r["mask"][i])
                    return (f"{c['id']}: trained tokens differ from the assistant mask at token {k} "
                            f"(keel {got[k]}, hf {r['mask'][k]}): [{tokens_around(hf, ids, k)}]")
    for c, r in err_cases:
        data = os.path.join(work, f"error_{c['id']}.jsonl")
        with open(data, "w", encoding="utf-8", newline="") as f:
            f.write(dataset_line(c))
        rc, rows, err = run_keel(keel, tok_dir, data, render=True)
        if rc != 2:
            return (f"{c['id']}: transformers raises ({r['error']}) but keel --render exited {rc}"
                    + (f": {err.splitlines()[-1]}" if err and rc not in (0, None) else ""))
    return None


def run_template(args, name, path, as_file, root_work):
    from transformers import AutoTokenizer
    source = read_source(path)
    generation = has_generation(source)
    work = os.path.join(root_work, name.replace("/", "__") + ("@file" if as_file else ""))
    tok_dir = os.path.join(work, "tokenizer")
    make_tokenizer_dir(tok_dir, args.tokenizer_dir, source, as_file)
    hf = AutoTokenizer.from_pretrained(tok_dir)
    convs = case_lib.cases(source)
    label = name + ("@chat_template.jinja" if as_file else "")
    for _ in range(3):  # strftime_now: rerun when the date changed while the two sides ran
        day = datetime.date.today()
        refs = [reference(hf, c, generation) for c in convs]
        ok = [(c, r) for c, r in zip(convs, refs) if "error" not in r]
        errs = [(c, r) for c, r in zip(convs, refs) if "error" in r]
        failure = None
        if not args.reference_only:
            failure = compare(hf, args.keel, tok_dir, work, [c for c, _ in ok], [r for _, r in ok], errs, generation)
        if datetime.date.today() == day:
            break
    head = f"{label}: {len(convs)} conversations ({len(errs)} raise in transformers)" + (" [generation]" if generation else "")
    if args.reference_only:
        print(head)
        for c, r in zip(convs, refs):
            if "error" in r:
                print(f"    {c['id']}: RAISES {r['error']}")
        if args.verbose:
            for c, r in ok:
                print(f"    {c['id']}: {len(r['ids'])} tokens" + (f", {sum(r['mask'])} in the mask" if generation else ""))
        return True
    print(f"{head}: " + ("OK" if failure is None else f"FAIL\n    {failure}"), flush=True)
    return failure is None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("keel")
    ap.add_argument("templates_dir")
    ap.add_argument("tokenizer_dir")
    ap.add_argument("--only", action="append", default=[], help="a template's name (e.g. chujiezheng/alpaca) or base name")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    ap.add_argument("--reference-only", action="store_true", help="run transformers alone: what renders, what raises")
    ap.add_argument("--no-jinja-file-test", action="store_true", help="skip the chat_template.jinja variants")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if not os.path.isdir(args.templates_dir) or not os.path.exists(os.path.join(args.tokenizer_dir, "tokenizer.json")):
        print(f"SKIPPED: no templates at {args.templates_dir} or no tokenizer at {args.tokenizer_dir} (../shared is absent)")
        sys.exit(77)
    if not args.reference_only and not os.access(args.keel, os.X_OK):
        sys.exit(f"{args.keel}: not an executable")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()

    templates = list_templates(args.templates_dir)
    if args.only:
        templates = [(n, p) for n, p in templates if n in args.only or n.split("/")[-1] in args.only]
        if not templates:
            sys.exit(f"no template named {', '.join(args.only)} in {args.templates_dir}")
    runs = [(n, p, False) for n, p in templates]
    if not args.no_jinja_file_test:
        runs += [(n, p, True) for n, p in templates if n in JINJA_FILE_TEMPLATES]

    work = tempfile.mkdtemp(prefix="keel_chat_parity_")
    failed = []
    try:
        for name, path, as_file in runs:
            try:
                ok = run_template(args, name, path, as_file, work)
            except Exception as e:  # noqa: BLE001 - a harness or reference problem fails this template only
                print(f"{name}{'@chat_template.jinja' if as_file else ''}: FAIL\n    harness: {error_text(e)}")
                ok = False
            if not ok:
                failed.append(name + ("@chat_template.jinja" if as_file else ""))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.reference_only:
        print(f"{len(runs)} templates rendered by transformers")
        return 0
    print(f"{len(runs) - len(failed)}/{len(runs)} templates pass" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
