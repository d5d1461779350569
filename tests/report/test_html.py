"""The HTML report is one self-contained file that a real browser (headless Chromium) renders with its plots."""

from __future__ import annotations

import base64
import json
import re
import struct
import subprocess
from html import escape
from pathlib import Path

import pytest
from _support import cli

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--hide-scrollbars"]
WIDTH = 1280
PALETTE_BLUE = (0x4E, 0x79, 0xA7)  # the first series / bar colour of every chart

# collects every error (script errors, failed resources, console.error) and measures each plot after load
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => __errors.push(String(e.message || (e.target && (e.target.src || e.target.href)))), true);
const __ce = console.error; console.error = (...a) => { __errors.push(a.join(' ')); __ce(...a); };
window.addEventListener('load', () => {
  const plots = [...document.querySelectorAll('figure.plot')].map(f => {
    const r = f.getBoundingClientRect(), s = f.querySelector('svg').getBoundingClientRect();
    return {kind: f.dataset.plot, w: r.width, h: r.height, svg_w: s.width, svg_h: s.height,
            marks: f.querySelectorAll('svg circle, svg polyline, svg rect').length};
  });
  const p = document.createElement('pre'); p.id = 'probe';
  p.textContent = JSON.stringify({errors: __errors, plots, height: document.documentElement.scrollHeight});
  document.body.appendChild(p);
});
</script>"""

# decodes the screenshot with the browser's own PNG decoder and counts its pixels
PIXELS = """<!doctype html><html><body><img id="shot" src="data:image/png;base64,{b64}"><script>
window.addEventListener('load', () => {{
  const img = document.getElementById('shot'), c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let nonwhite = 0, blue = 0; const colors = new Set();
  for (let i = 0; i < d.length; i += 4) {{
    if (d[i] < 245 || d[i + 1] < 245 || d[i + 2] < 245) nonwhite++;
    if (d[i] === {r} && d[i + 1] === {g} && d[i + 2] === {b}) blue++;
    if (colors.size < 5000) colors.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  }}
  const p = document.createElement('pre'); p.id = 'pixels';
  p.textContent = JSON.stringify({{w: c.width, h: c.height, nonwhite: nonwhite / (c.width * c.height), blue,
                                   colors: colors.size}});
  document.body.appendChild(p);
}});
</script></body></html>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"  # a fresh profile per launch
    return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=90)


def console_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ":CONSOLE" in ln]


def pre_json(dom: str, element_id: str) -> dict:
    m = re.search(rf'<pre id="{element_id}">(.*?)</pre>', dom, re.S)
    assert m, dom[-2000:]
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture(scope="module")
def html_report(tiny_study, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html") / "report.html"
    res = cli("report", "tiny-ablation", "tiny-pareto", "--storage", tiny_study["url"], "--format", "html", "--out", out)
    assert res.exit_code == 0, res.stderr
    return out


def test_html_is_one_self_contained_file(html_report):
    html = html_report.read_text()
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    for needle in ("http://", "https://", "<script", "<link", "src=", "@import", "url("):
        assert needle not in html, f"{needle!r} in the report: it must open without network or extra files"
    kinds = re.findall(r'<figure class="plot" data-plot="(\w+)">', html)
    # per study: 2 effect plots (one per axis), learning curves, an entropy heatmap for each of the 2
    # configurations with an attention map; the Pareto plot for tiny-pareto. No importance plot: 4 trials are
    # too few to show importances as numbers, and the page says so
    assert sorted(kinds) == sorted(["effect"] * 4 + ["curves"] * 2 + ["heatmap"] * 4 + ["pareto"])
    assert "parameter importances are not shown from 4 completed trials" in html
    assert "mixer.kind=attention, layout=uniform|hybrid" in html and "Side by side" in html


def test_html_heatmaps_show_each_heads_entropy_on_hover(html_report, tiny_study):
    html = html_report.read_text()
    data = cli.json("report", "tiny-ablation", "--storage", tiny_study["url"])
    section = html.split("<h3>Attention diagnostics</h3>", 1)[1].split("<h3>", 1)[0]  # the first study's
    figures = re.findall(r'<figure class="plot" data-plot="heatmap">(.*?)</figure>', section, re.S)
    mapped = [c for c in data["studies"][0]["configurations"] if c["diagnostics"]["layers"]]
    assert len(figures) == len(mapped) == 2
    for fig, c in zip(figures, mapped, strict=True):
        assert escape(c["configuration"]) in fig
        for x in c["diagnostics"]["layers"]:
            for h, v in enumerate(x["per_head"]["entropy"]):
                assert f"layer {x['layer']} · attention, head {h}: entropy {v:.4f} nats (mean over 2 seeds)" in fig
        cells = re.findall(r'<rect [^>]*width="30" height="30" fill="(#[0-9a-f]{6})"', fig)
        assert len(cells) == 2 * 2  # 2 layers × 2 heads, every configured layer drawn
        assert "focused" in fig and "uniform" in fig and "entropy (nats)" in fig  # the legend
    # the hybrid layout's first layer is the token-wise mixer: grey cells that say so
    assert "layer 1 · mlp, h0: no attention map (token-wise mixer)" in figures[0]
    assert figures[0].count('fill="#ececec"') == 2
    # the per-layer table follows, with the note naming the configuration without a map
    assert "<th>head diversity</th>" in section and "no attention map (token-wise mixer): mixer.kind=mlp, layout=uniform" in section


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (Debian package `chromium`)")
def test_html_renders_its_plots_in_headless_chromium(html_report, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(html_report.read_text().replace("<head>", "<head>" + PROBE, 1))
    run = chromium(tmp_path, "--dump-dom", probe.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    info = pre_json(run.stdout, "probe")
    assert info["errors"] == [], info["errors"]
    assert console_lines(run.stderr) == []
    assert len(info["plots"]) == 11  # no importance plots: 4 trials are too few to show importances
    for plot in info["plots"]:
        assert plot["w"] > 100 and plot["h"] > 60 and plot["svg_w"] > 100 and plot["svg_h"] > 40, plot
        assert plot["marks"] > 0, plot
    heatmaps = [p for p in info["plots"] if p["kind"] == "heatmap"]
    assert len(heatmaps) == 4 and all(p["marks"] >= 2 * 2 + 40 for p in heatmaps)  # cells + the legend ramp
    curves = [p for p in info["plots"] if p["kind"] == "curves"]
    assert all(p["marks"] >= 3 * (1 + 3) for p in curves)  # 3 configurations: a line and 3 points each
    height = info["height"] + 16  # the screenshot holds the whole page

    # the screenshot of the report itself (no probe), then its pixels through the browser's PNG decoder
    shot = tmp_path / "report.png"
    run = chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{height}", html_report.as_uri())
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    assert console_lines(run.stderr) == []
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (WIDTH, height)
    r, g, b = PALETTE_BLUE
    page = tmp_path / "pixels.html"
    page.write_text(PIXELS.format(b64=base64.b64encode(png).decode(), r=r, g=g, b=b))
    run = chromium(tmp_path, "--dump-dom", page.as_uri())
    pixels = pre_json(run.stdout, "pixels")
    print(f"screenshot: {shot} {pixels}")
    assert (pixels["w"], pixels["h"]) == (WIDTH, height)
    assert pixels["nonwhite"] > 0.03, "the page looks blank"
    assert pixels["colors"] > 50 and pixels["blue"] > 500, "the plots' colours are not on screen"
