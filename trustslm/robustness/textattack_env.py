"""Importing TextAttack offline, without flair and without touching the user's folders.

TextAttack 0.3.11 imports flair at ``import textattack`` (for a part-of-speech tagger trustslm's
recipes never use), and flair needs transformers<5; it also runs NLTK downloads on first import
and needs NLTK's ``stopwords`` corpus at import time. :func:`load_textattack` therefore:

* installs a stand-in ``flair`` module when flair is not installed, whose classes raise a clear
  error if anything ever uses them (trustslm's recipes do not);
* points TextAttack's cache (``TA_CACHE_DIR``) at ``<trustslm cache>/textattack`` with its
  post-install marker present, so nothing is downloaded, and afterwards restores every
  environment variable the import changed (with that variable set, TextAttack rewrites
  ``HF_HOME`` and ``XDG_CACHE_HOME``; it also sets ``TOKENIZERS_PARALLELISM``...);
* appends ``<trustslm cache>/nltk_data`` to ``nltk.data.path`` in this process only, holding an
  English stopword list: NLTK's own when its corpus is installed (it is found first), else the
  project's ``datasets/stopwords_en.txt``. The user's NLTK folder is never written.

Install TextAttack without its dependencies, after trustslm's ``robustness`` extra (which lists
the ones it needs): ``pip install 'trustslm[robustness]' && pip install --no-deps
textattack==0.3.11`` (``.ci/setup`` does this).
"""

from __future__ import annotations

import os
import sys
import types
from importlib.util import find_spec
from typing import Any

from trustslm.core.errors import TrustSLMError

TEXTATTACK_VERSION = "0.3.11"
INSTALL_HINT = (f"pip install 'trustslm[robustness]' && pip install --no-deps textattack=={TEXTATTACK_VERSION} "
                "(textattack's own dependencies pull flair, which needs transformers<5)")
_POST_INSTALL_MARKER = "post_install_check_3"


class TextAttackUnavailable(TrustSLMError):
    """TextAttack (or what it needs) is not installed; the message says how to install it."""


def unavailable() -> str | None:
    """Why TextAttack can't be imported here (None when it can). Cheap: imports nothing."""
    missing = [m for m in ("textattack", "nltk", "lru", "editdistance", "lemminflect", "langdetect")
               if find_spec(m) is None]
    return f"needs {', '.join(missing)}: {INSTALL_HINT}" if missing else None


def load_textattack() -> Any:
    """``import textattack`` as described in the module docstring; raises
    :class:`TextAttackUnavailable` when it can't be imported."""
    if "textattack" in sys.modules:
        return sys.modules["textattack"]
    why = unavailable()
    if why:
        raise TextAttackUnavailable(why)
    from trustslm.core.resources import cache_dir

    saved = dict(os.environ)
    root = cache_dir()
    ta_cache = root / "textattack"
    ta_cache.mkdir(parents=True, exist_ok=True)
    (ta_cache / _POST_INSTALL_MARKER).touch()
    try:
        _provide_stopwords(root / "nltk_data")
    except Exception:
        _restore_environment(saved)
        raise
    if find_spec("flair") is None:
        _install_flair_stand_in()
    os.environ["TA_CACHE_DIR"] = str(ta_cache)
    try:
        import textattack
    except Exception as exc:  # a broken or incompatible install: say which, in one line
        raise TextAttackUnavailable(f"import textattack failed ({type(exc).__name__}: {exc}); {INSTALL_HINT}") from None
    finally:
        _restore_environment(saved)
    return textattack


def _restore_environment(saved: dict[str, str]) -> None:
    """Undo every change the import made to ``os.environ`` (TextAttack and its dependencies set
    ``TOKENIZERS_PARALLELISM``, ``WANDB_SILENT``, cache folders...)."""
    for key in [k for k in os.environ if k not in saved]:
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _provide_stopwords(nltk_root) -> None:
    import nltk

    from trustslm.core.resources import datasets_dir

    target = nltk_root / "corpora" / "stopwords" / "english"
    source = datasets_dir() / "stopwords_en.txt"
    if not target.exists() or target.read_bytes() != source.read_bytes():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    if str(nltk_root) not in nltk.data.path:
        nltk.data.path.append(str(nltk_root))  # after the user's folders: an installed NLTK corpus wins


def _install_flair_stand_in() -> None:
    def unusable(*_: Any, **__: Any) -> None:
        raise TextAttackUnavailable("this TextAttack component needs flair, which trustslm does not install "
                                    "(it needs transformers<5)")

    flair = types.ModuleType("flair")
    data = types.ModuleType("flair.data")
    models = types.ModuleType("flair.models")
    data.Tokenizer = type("Tokenizer", (), {})  # subclassed at import by textattack.shared.utils.strings
    data.Sentence = type("Sentence", (), {"__init__": unusable})
    models.SequenceTagger = type("SequenceTagger", (), {"load": staticmethod(unusable)})
    flair.data, flair.models = data, models
    flair.__trustslm_stand_in__ = True
    sys.modules.update({"flair": flair, "flair.data": data, "flair.models": models})
