"""keel ablate and keel report end to end (issue 9): a grid of variants x seeds runs as separate
processes (a broken variant fails alone), finished runs are skipped and an interrupted one resumes
on a second call, and the report is one self-contained HTML page whose charts, alarm bands, remedy
markers, mean ± sd table and side-by-side samples match the runs' metrics.jsonl. Headless Chromium
(Debian's chromium) renders it: the page loads without errors and the screenshot is not blank.

usage: report_e2e.py KEEL WORKDIR
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import collapse_data  # noqa: E402
from e2e import Checks, fresh_workdir, tiny_model  # noqa: E402

KEEL, WORK = sys.argv[1], sys.argv[2]
fresh_workdir(WORK)
tiny_model(KEEL)
collapse_data.write("collapse.jsonl")
open("base.toml", "w").write("""
[run]
name = "base"
steps = 24
batch_size = 8
seq_len = 128
checkpoint_every = 8
eval_every = 4
log_every = 2
[optim]
lr = 3e-3
[model]
path = "model"
chat_template = "chatml"
[data.target]
path = "collapse.jsonl"
[eval]
num_prompts = 8
max_new_tokens = 12
[[pipeline]]
plugin = "mode_share"
[[pipeline]]
plugin = "distinct_ngrams"
[[pipeline]]
plugin = "lr_cut"
duration = 4
""")
open("grid.toml", "w").write("""
[grid]
base = "base.toml"
output_dir = "abl"
seeds = [1, 2]

[[variant]]
name = "hot"

[[variant]]
name = "calm"
remove = ["lr_cut"]
set = ["optim.lr=1e-5"]

[[variant]]
name = "broken"
add = [{ plugin = "mode_share", alarm_above = 7.0 }]   # out of range: this variant's runs fail
""")
check = Checks()


def ablate(*extra):
    p = subprocess.run([KEEL, "ablate", "grid.toml", "--no-progress", *extra], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


# ---- first call: 6 runs, the broken variant's two fail, the other four finish
rc, out = ablate()
check(rc == 1, f"ablate exits 1 when some runs fail (got {rc})")
check("2 of 6 runs failed: broken-s1, broken-s2" in out, "the failed runs are named")
runs = ["hot-s1", "hot-s2", "calm-s1", "calm-s2"]
for r in runs:
    check(os.path.exists(f"abl/{r}/final/config.json"), f"{r} finished despite the broken variant")
check(not os.path.exists("abl/calm.toml") or "lr_cut" not in open("abl/calm.toml").read(), "'remove' drops the plugin")
cfg = open("abl/calm-s1/config.toml").read()
check(re.search(r"^lr = 1(\.0*1)?e-05$", cfg, re.M) and re.search(r"^seed = 1$", cfg, re.M),
      "variant and seed settings reach the run")
check(os.path.exists("abl/report.html"), "the ablation writes abl/report.html")
check(all(os.path.exists(f"abl/{r}/report.html") for r in runs), "each run writes its own report.html at the end")

# ---- second call: finished runs are skipped; an interrupted one resumes from its checkpoint
shutil.rmtree("abl/hot-s2/final")
lines = open("abl/hot-s2/metrics.jsonl").read().splitlines()
open("abl/hot-s2/metrics.jsonl", "w").write("\n".join(lines[:-1]) + "\n")  # no summary row: unfinished
rc, out = ablate()
check(out.count("finished before, skipped") == 3, "three finished runs skipped on the second call")
check(re.search(r"hot-s2: keel train .* --resume", out), "the unfinished run resumes from its checkpoint")
check(os.path.exists("abl/hot-s2/final/config.json"), "the resumed run finishes")

# ---- the report against the metrics it was drawn from
html = open("abl/report.html").read()
rows = {r: [json.loads(l) for l in open(f"abl/{r}/metrics.jsonl")] for r in runs}
metrics = ["mode_share", "distinct_ngrams"]
check(html.count('class="chart"') == 2 + len(metrics), "one chart each for loss, lr and every metric")
for name in ["training loss", "learning rate"] + metrics:
    check(f'aria-label="{name}"' in html, f"chart '{name}' drawn")
check(html.count('class="ln"') == len(runs) * (2 + len(metrics)), "a line per run in every chart")
alarms = sum(1 for r in runs for row in rows[r] if row.get("eval") and row.get("alarms"))
check((alarms > 0) == ('class="alarm"' in html), f"alarm bands drawn exactly when alarms were on ({alarms} evals)")
fired = sum(len(row["remedies"]) for r in runs for row in rows[r] if "remedies" in row and "summary" not in row)
check((fired > 0) == ('class="mark"' in html), f"remedy markers drawn exactly when remedies fired ({fired})")
check('class="thr"' in html, "alarm thresholds drawn from the runs' configs")
# table: mean ± sd over the two seeds of 'calm', from the last evaluation of each
vals = [[row for row in rows[r] if row.get("eval")][-1]["mode_share"] for r in ("calm-s1", "calm-s2")]
m = sum(vals) / 2
sd = (sum((v - m) ** 2 for v in vals)) ** 0.5
row = re.search(r"<tr><td><span[^>]*></span>calm</td>(.*?)</tr>", html)
check(row is not None, "a table row for variant 'calm'")
cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1)) if row else []
check(len(cells) >= 4 and cells[0] == "2", "the row counts its 2 runs")
order = re.findall(r'aria-label="([^"]+)"', html)[2:]  # the metric columns follow the charts' order
got = cells[2 + order.index("mode_share")] if len(cells) > 3 and "mode_share" in order else ""
check(got.startswith(f"{m:.4g} ± {sd:.4g}"), f"mode_share cell is mean ± sd over seeds ({got!r} vs {m:.4g} ± {sd:.4g})")
check("<h3>step 0</h3>" in html and "<h3>step 24</h3>" in html, "samples at the first and last evaluation")
check(re.search(r"<th>hot-s1</th><th>calm-s1</th>", html), "samples side by side, one column per variant")
check("http://" not in html.replace("http://www.w3.org", "") and "<script" not in html, "self-contained: no network, no script")

# ---- keel report directly, and its errors
p = subprocess.run([KEEL, "report", "abl/hot-s1", "abl/calm-s1", "--out", "two.html", "--steps", "8,16", "--prompts", "3"],
                   capture_output=True, text=True)
check(p.returncode == 0 and "two.html (2 runs, 4 charts)" in p.stdout, f"keel report writes two.html: {p.stdout.strip()}")
two = open("two.html").read()
check("<h3>step 8</h3>" in two and "<h3>step 16</h3>" in two and "<h3>step 24</h3>" not in two, "--steps chooses the steps")
check(two.count('<tr><td class="gen">') == 6, "--prompts 3: three prompts per step")
p = subprocess.run([KEEL, "report", *[f"abl/{r}" for r in runs], "--out", "all.html", "--markdown", "-"],
                   capture_output=True, text=True)
md = [l for l in p.stdout.splitlines() if l.startswith("|")]
check(p.returncode == 0 and md and md[0].startswith("| variant | runs | final loss |") and md[0].endswith("| steps |"),
      "--markdown -: the table's header")
calm_md = next((l for l in md if l.startswith("| calm |")), "")
check(calm_md.startswith("| calm | 2 | ") and f"{m:.4g} ± {sd:.4g}" in calm_md, f"and the calm row with the same values: {calm_md}")
os.makedirs("empty", exist_ok=True)
p = subprocess.run([KEEL, "report", "empty"], capture_output=True, text=True)
check(p.returncode == 2 and "empty: no metrics.jsonl" in p.stderr, f"a directory that is not a run: exit 2 ({p.stderr.strip()})")
open("bad.toml", "w").write('[grid]\nbase = "base.toml"\n[[variant]]\nname = "x"\nremove = ["dropout"]\n')
p = subprocess.run([KEEL, "ablate", "bad.toml"], capture_output=True, text=True)
check(p.returncode == 2 and "bad.toml:5:" in p.stderr and "'dropout'" in p.stderr,
      f"removing a plugin the base does not use: exit 2 with file:line ({p.stderr.strip()})")


# ---- headless Chromium renders the page
def png_pixels(path):
    """(width, height, rows of RGB(A) bytes) of an 8-bit PNG, unfiltered (stdlib only)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            bpp = {2: 3, 6: 4}[ctype]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, out, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1: line[i] = (line[i] + a) & 255
            elif f == 2: line[i] = (line[i] + b) & 255
            elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out.append(bytes(line))
        prev = line
    return w, h, bpp, out


chromium = shutil.which("chromium") or shutil.which("chromium-browser")
if not chromium:
    check(False, "chromium is installed (scripts/deps.sh installs Debian's chromium)")
else:
    url = "file://" + os.path.abspath("abl/report.html")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
    p = subprocess.run([chromium, *flags, "--window-size=1280,1400", "--screenshot=" + os.path.abspath("shot.png"), url],
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 0 and os.path.exists("shot.png"), f"chromium takes a screenshot (exit {p.returncode})")
    check("Uncaught" not in p.stderr and "ERR_FILE_NOT_FOUND" not in p.stderr, "the page loads without errors")
    if os.path.exists("shot.png"):
        w, h, bpp, px = png_pixels("shot.png")
        colours = set()
        dark = 0
        for line in px[::4]:
            for i in range(0, len(line), bpp * 3):
                rgb = line[i:i + 3]
                colours.add(rgb)
                dark += sum(rgb) < 600
        check(w == 1280 and len(colours) > 20 and dark > 500,
              f"the screenshot is not blank ({w}x{h}, {len(colours)} colours, {dark} non-white samples)")
    p = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    dom = p.stdout
    check(p.returncode == 0 and dom.count("<svg") >= 4 and re.search(r'<path d="M[0-9.]+,[0-9.]+ L', dom),
          f"the rendered DOM holds the charts' SVG paths ({dom.count('<svg')} svg elements)")

check.finish()
