"""The HTML report: links from scores to per-sample records, reading a report folder back, and the
page as headless Chromium draws it (skipped only where no Chromium binary is installed)."""

from __future__ import annotations

import json
import re
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import chromium, run_chromium

import trustslm
from trustslm.core.errors import BadInputError
from trustslm.core.types import DIMENSIONS, TrustReport
from trustslm.report.files import load_report_dir, write_outputs
from trustslm.report.html import MAX_SAMPLES_SHOWN, render_html

#: One quick probe per dimension that the scripted mock model can run.
PROBES = ["robustness.advglue", "privacy.pii_leakage", "fairness.stereotype_pairs", "toxicity.continuation",
          "truthfulness.calibration"]
BAR = (0x2F, 0x6F, 0xDB)  # the dimension chart's bar colour, drawn at opacity 0.8 over white
BAR_ON_WHITE = tuple(round(0.8 * c + 0.2 * 255) for c in BAR)
CHART_LEFT_WIDTH = 520  # the chart's bar length at score 100, in CSS pixels (trustslm.report.html)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> TrustReport:
    return trustslm.audit("mock", probes=PROBES, progress=False, limit=10, options={"toxicity.continuation": {"k": 2}},
                          cache_dir=tmp_path_factory.mktemp("cache"))


class _Tags(HTMLParser):
    """Every start tag with its attributes, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def _bars(tags) -> list[dict]:
    return [a for t, a in tags if t == "rect" and a.get("class") == "score-bar" and a.get("fill") == "#2f6fdb"]


# -- links and samples (no browser) -------------------------------------------------------------

def test_every_score_links_to_its_probe_samples(report):
    assert all(report.dimensions[d].status == "measured" for d in DIMENSIONS)
    html = render_html(report)
    tags = _tags(html)
    ids = [a["id"] for _, a in tags if a.get("id")]
    hrefs = [a["href"] for t, a in tags if t == "a"]
    for r in report.results:
        assert r.status == "ok", (r.probe_id, r.reason)
        assert ids.count(f"samples-{r.probe_id}") == 1 and ids.count(r.probe_id) == 1
        details = [a for t, a in tags if t == "details" and a.get("id") == f"samples-{r.probe_id}"]
        assert details, r.probe_id
        # the score line (2 links), one per metric row, and the samples count line
        assert hrefs.count(f"#samples-{r.probe_id}") == len(r.metrics) + 3
        assert f"#{r.probe_id}" in hrefs  # the dimension table still links to the probe section
    # every in-page link has a target
    assert {h[1:] for h in hrefs} <= set(ids)


def test_samples_are_capped_and_counted(report):
    html = render_html(report)
    n = sum(1 for s in report.samples if s["probe_id"] == "truthfulness.calibration")
    assert n > MAX_SAMPLES_SHOWN
    block = html[html.index('id="samples-truthfulness.calibration"'):]
    block = block[: block.index("</details>")]
    assert block.count("<tr>") == MAX_SAMPLES_SHOWN + 1  # header + the shown records
    assert f"first {MAX_SAMPLES_SHOWN} of {n} samples" in block
    assert f"{n - MAX_SAMPLES_SHOWN} more in <code>samples.jsonl</code>" in block
    small = html[html.index('id="samples-fairness.stereotype_pairs"'):]
    small = small[: small.index("</details>")]
    assert "more in" not in small and "<th>sent_more</th>" in small and "<th>probe_id</th>" not in small


def test_sample_text_is_escaped_and_truncated(report):
    evil = report.model_copy()
    long_text = "y" * 1000
    evil._samples = [{"probe_id": "fairness.stereotype_pairs", "id": "x", "<b>key</b>": "<script>alert(1)</script>",
                      "long": long_text, "nested": {"a": ["<img src=x onerror=alert(1)>"]}}]
    html = render_html(evil)
    assert "<script" not in html and "<img" not in html and "<b>key" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;key&lt;/b&gt;" in html
    assert long_text not in html and "y" * 200 + "…" in html


def test_the_page_has_no_scripts_and_no_network_references(report):
    html = render_html(report)
    tags = _tags(html)
    assert not [t for t, _ in tags if t in ("script", "iframe", "object", "embed", "link", "img")]
    for tag, attrs in tags:
        assert not any(k.startswith("on") for k in attrs), attrs
        for k in ("href", "src"):
            assert attrs.get(k) is None or attrs[k].startswith("#"), attrs
        for k, v in attrs.items():  # no URL in any attribute but the SVG namespace (data text may hold URLs)
            assert "://" not in (v or "") or (tag == "svg" and k == "xmlns"), (tag, attrs)
    style = html[html.index("<style>"): html.index("</style>")]
    assert not re.search(r"://|url\(|@import", style)


def test_load_report_dir_reads_samples_and_a_report_without_them_says_where_they_are(report, tmp_path):
    write_outputs(report, tmp_path)
    expected = json.loads(json.dumps(report.samples))
    for path in (tmp_path, tmp_path / "report.json"):
        loaded = load_report_dir(path)
        assert loaded.samples == expected
        assert loaded.to_json() == report.to_json()
        assert set(loaded.units) == set(report.units)
    bare = TrustReport.load(tmp_path / "report.json")
    html = render_html(bare)
    assert html.count("<code>samples.jsonl</code> beside <code>report.json</code> holds them") == len(report.results)
    assert 'id="samples-toxicity.continuation"' in html
    full = render_html(load_report_dir(tmp_path))
    assert "beside <code>report.json</code>" not in full and "<th>continuation</th>" in full
    # re-rendering the folder gives the page the audit wrote, byte for byte
    assert full == (tmp_path / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("bad", ['{"probe_id": "a"}\n{not json\n', '{"probe_id": "a"}\n[1, 2]\n'])
def test_load_report_dir_names_a_bad_samples_line(report, tmp_path, bad):
    write_outputs(report, tmp_path)
    (tmp_path / "samples.jsonl").write_text(bad)
    with pytest.raises(BadInputError) as info:
        load_report_dir(tmp_path)
    assert "samples.jsonl, line 2" in str(info.value) and "\n" not in str(info.value)


def test_load_report_dir_without_samples_file(report, tmp_path):
    write_outputs(report, tmp_path)
    (tmp_path / "samples.jsonl").unlink()
    assert load_report_dir(tmp_path).samples == []
    with pytest.raises(BadInputError):
        load_report_dir(tmp_path / "nope")


# -- the page in headless Chromium --------------------------------------------------------------

def _screenshot(browser: str, html: str, tmp_path: Path, name: str) -> np.ndarray:
    page, png = tmp_path / f"{name}.html", tmp_path / f"{name}.png"
    page.write_text(html, encoding="utf-8")
    run_chromium(browser, tmp_path, "--window-size=1200,1600", f"--screenshot={png}", page.as_uri())
    assert png.is_file() and png.stat().st_size > 0
    return _read_png(png)


def _read_png(path: Path) -> np.ndarray:
    """The image as an (height, width, 3) uint8 RGB array: with Pillow when it is installed,
    else decoded here (8-bit RGB/RGBA, not interlaced: what Chromium writes)."""
    try:
        from PIL import Image
    except ImportError:
        return _decode_png(path.read_bytes())
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _decode_png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos: pos + 8])
        chunk = data[pos + 8: pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        pos += 12 + length
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), dtype=np.uint8)
    prev = np.zeros(width * bpp, dtype=np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 0:
            row = line
        elif kind == 1:  # Sub: a running sum per channel
            row = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) % 256
        elif kind == 2:  # Up
            row = (line + prev) % 256
        else:  # Average, Paeth: each byte depends on the one to its left
            row = np.zeros_like(line)
            r, p, ln = row.tolist(), prev.tolist(), line.tolist()
            for i in range(len(ln)):
                a = r[i - bpp] if i >= bpp else 0
                b = p[i]
                if kind == 3:
                    r[i] = (ln[i] + (a + b) // 2) % 256
                else:
                    c = p[i - bpp] if i >= bpp else 0
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    r[i] = (ln[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) % 256
            row = np.asarray(r, dtype=np.int32)
        out[y] = row
        prev = row
    return out.reshape(height, width, bpp)[:, :, :3]


def _bar_pixels(image: np.ndarray, top: int = 700, tolerance: int = 8) -> int:
    """Pixels in the top ``top`` rows within ``tolerance`` of the bar colour on white."""
    part = image[:top].astype(np.int16)
    return int((np.abs(part - np.array(BAR_ON_WHITE, dtype=np.int16)) <= tolerance).all(axis=2).sum())


def _encode_png(pixels: np.ndarray) -> bytes:
    """A PNG of ``pixels`` (RGB or RGBA) whose row y uses filter type y % 5, to test the decoder."""
    height, width, bpp = pixels.shape
    rows, prev = [], [0] * (width * bpp)
    for y in range(height):
        cur, kind, out = pixels[y].reshape(-1).tolist(), y % 5, []
        for i, x in enumerate(cur):
            a, b, c = (cur[i - bpp] if i >= bpp else 0), prev[i], (prev[i - bpp] if i >= bpp else 0)
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            pred = [0, a, b, (a + b) // 2, a if pa <= pb and pa <= pc else b if pb <= pc else c][kind]
            out.append((x - pred) % 256)
        rows.append(bytes([kind] + out))
        prev = cur

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2 if bpp == 3 else 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")


@pytest.mark.parametrize("channels", [3, 4])
def test_png_decoder_reads_every_filter_type(channels):
    """The fallback decoder (used where Pillow is missing) undoes all five PNG row filters."""
    pixels = np.random.default_rng(channels).integers(0, 256, (11, 7, channels), dtype=np.uint8)
    decoded = _decode_png(_encode_png(pixels))
    assert np.array_equal(decoded, pixels[:, :, :3])


def test_chromium_draws_the_dimension_chart_and_the_dom_holds_bars_and_samples(report, tmp_path):
    browser = chromium()
    html = render_html(report)
    image = _screenshot(browser, html, tmp_path, "report")
    assert image.shape[:2] == (1600, 1200)
    scores = [report.dimensions[d].score for d in DIMENSIONS]
    expected = sum(CHART_LEFT_WIDTH * s / 100 * 16 for s in scores)  # bar area in pixels at scale 1
    try:  # where Pillow read it, the fallback decoder must read Chromium's PNG the same
        import PIL  # noqa: F401
    except ImportError:
        pass
    else:
        assert np.array_equal(_decode_png((tmp_path / "report.png").read_bytes()), image)
    drawn = _bar_pixels(image)
    assert drawn >= 0.6 * expected, (drawn, expected)
    assert drawn <= 1.1 * expected, (drawn, expected)

    # the control: the same page without the chart's bars has (almost) none of that colour
    without_bars = re.sub(r'<rect class="score-bar"[^>]*fill="#2f6fdb"[^>]*>.*?</rect>', "", html)
    assert without_bars != html
    assert _bar_pixels(_screenshot(browser, without_bars, tmp_path, "control")) < 0.01 * expected

    page = tmp_path / "report.html"
    dom = run_chromium(browser, tmp_path, "--dump-dom", page.as_uri()).stdout
    tags = _tags(dom)
    svgs = [a for t, a in tags if t == "svg" and a.get("aria-label") == "dimension scores"]
    assert len(svgs) == 1
    assert len(_bars(tags)) == len(DIMENSIONS)
    details = {a.get("id") for t, a in tags if t == "details"}
    assert details >= {f"samples-{r.probe_id}" for r in report.results}
    assert "<script" not in dom


# -- the variants page (trustslm variants) ---------------------------------------------------------

def _variants_run():
    """A variants run written by hand: a reference and three variants, one significantly worse."""
    from trustslm.core.types import Quantisation
    from trustslm.gate.flips import DimensionFlips
    from trustslm.workflows.variants import ScoreChange, Variant, VariantsRun

    def quant(ftype, bpw):
        return Quantisation(file_type=ftype, tensor_types={"attn_q": {ftype: 30}}, parameters=1000,
                            tensor_bytes=int(bpw * 125), size_bytes=int(bpw * 125) + 10, bits_per_weight=bpw)

    def variant(name, ftype, bpw, shift, verdict):
        scores = [ScoreChange(target=t, reference=70.0, variant=70.0 + shift, variant_ci=(60.0 + shift, 80.0 + shift),
                              difference=shift, ci_low=shift - 3, ci_high=shift + 3, verdict=verdict)
                  for t in (*DIMENSIONS, "overall")]
        flips = [DimensionFlips(dimension=d, probes=["p"], units=100, flips=10, harmful=6, flip_rate=0.1,
                                flip_rate_ci=(0.05, 0.18), harmful_rate=0.06, harmful_rate_ci=(0.02, 0.13))
                 for d in DIMENSIONS]
        return Variant(name=name, how="made by hand", path=f"{name}.gguf", quantisation=quant(ftype, bpw),
                       report="r", scores=scores, dimension_flips=flips)

    ref = variant("reference", "F32", 32.0, 0.0, "reference")
    ref = ref.model_copy(update={"dimension_flips": []})
    return VariantsRun(source={"spec": "model"}, reference=ref, backend="llama.cpp", probes=None, seed=0, limit=None,
                       quick=False, suite=None,
                       variants=[variant("Q8_0", "Q8_0", 8.5, -1.0, "no significant change"),
                                 variant("Q4_K_M", "Q4_K_M", 4.9, -4.0, "no significant change"),
                                 variant("Q2_K", "Q2_K", 3.0, -25.0, "worse")])


WORSE = (0xB3, 0x26, 0x1E)  # a significantly worse variant's point (trustslm.report.variants)


def _colour_pixels(image: np.ndarray, colour: tuple[int, int, int], tol: int = 12) -> int:
    return int((np.abs(image.astype(int) - np.array(colour)).max(axis=2) <= tol).sum())


def test_chromium_draws_each_dimension_against_bits_per_weight(tmp_path):
    from trustslm.report.variants import render_variants_html

    browser = chromium()
    run = _variants_run()
    html = render_variants_html(run)
    assert "<script" not in html
    page = tmp_path / "variants.html"
    page.write_text(html, encoding="utf-8")
    tags = _tags(run_chromium(browser, tmp_path, "--dump-dom", page.as_uri()).stdout)
    panels = [a for t, a in tags if t == "svg" and "against bits per weight" in (a.get("aria-label") or "")]
    assert len(panels) == len(DIMENSIONS) + 1
    points = [a for t, a in tags if t == "circle"]
    assert len(points) == (len(DIMENSIONS) + 1) * 4  # the reference and three variants in every panel
    # the reference sits right of every variant (32 bits per weight), the worst variant lowest
    xs = {}
    for t, a in tags:
        if t == "circle":
            xs.setdefault(a.get("fill"), []).append(float(a["cx"]))
    assert min(xs["#2f6fdb"]) > max(x for f, v in xs.items() if f != "#2f6fdb" for x in v)
    # the worse variant's points are drawn in their colour; without them, none of it
    image = _screenshot(browser, html, tmp_path, "variants")
    drawn = _colour_pixels(image, WORSE)
    without = re.sub(r'<circle[^>]*fill="#b3261e"[^>]*>.*?</circle>', "", html)
    without = re.sub(r'<line[^>]*stroke="#b3261e"[^>]*/>', "", without)
    without = re.sub(r'<rect[^>]*fill="#b3261e"[^>]*>.*?</rect>', "", without)
    assert without != html
    assert drawn > 6 * 30  # six points of radius 4 at least
    assert _colour_pixels(_screenshot(browser, without, tmp_path, "variants-control"), WORSE) < 0.05 * drawn
