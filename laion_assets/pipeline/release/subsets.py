"""Release subsets as LAION cut them: a rule over the released columns, recorded in the
release manifest (its config) and stated in words on the dataset card.

- language: `en` (LAION-2B-en), `multi` (LAION-2B-multi: a detected language other than
  English), `nolang` (LAION-1B-nolang: no language detected), or `all`;
- `aesthetic ≥ x` (LAION-Aesthetics 5+, 6+, 6.5+);
- `punsafe < x` (Re-LAION's research-safe variant: 0.45), `pwatermark < x`;
- per-language CLIP similarity minimums, each for the CLIP model it was calibrated on
  (LAION: 0.28 for English with ViT-B/32, 0.26 for other languages with its multilingual
  model, `LAION_SIMILARITY`); a threshold for another model than the shards were scored with
  is refused.

A pair is in the subset when every condition holds; a score that was not computed (NaN)
fails the condition on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from laion_assets.pipeline.extract.language import UNDETERMINED

LANGUAGES = ("all", "en", "multi", "nolang")
LANGUAGE_TEXT = {"en": "English captions (as LAION-2B-en)",
                 "multi": "captions in a detected language other than English "
                          "(as LAION-2B-multi)",
                 "nolang": "captions with no detected language (as LAION-1B-nolang)"}
ANY_LANGUAGE = "*"


@dataclass(frozen=True)
class SimilarityThreshold:
    """Minimum CLIP similarity for one language (`*`: every language not listed), and the
    CLIP model it was calibrated on (None: any)."""

    language: str
    minimum: float
    model: str | None = None


# LAION-5B's thresholds (the multilingual one needs the multilingual model's similarity)
LAION_SIMILARITY = (SimilarityThreshold("en", 0.28, "ViT-B-32"),
                    SimilarityThreshold(ANY_LANGUAGE, 0.26, "xlm-roberta-base-ViT-B-32"))


@dataclass(frozen=True)
class SubsetRule:
    name: str = ""  # e.g. "en-aesthetic5-research-safe"; "" with no condition: everything
    language: str = "all"
    min_aesthetic: float | None = None
    max_punsafe: float | None = None
    max_pwatermark: float | None = None
    similarity: tuple[SimilarityThreshold, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise ValueError(f"subset language {self.language!r}: expected one of {LANGUAGES}")
        for bound, what in ((self.max_punsafe, "max_punsafe"),
                            (self.max_pwatermark, "max_pwatermark")):
            if bound is not None and not 0 < bound <= 1:
                raise ValueError(f"subset {what} {bound}: expected (0, 1]")
        languages = [t.language for t in self.similarity]
        if len(set(languages)) != len(languages):
            raise ValueError(f"subset similarity table lists a language twice: {languages}")

    @property
    def active(self) -> bool:
        return bool(self.language != "all" or self.similarity or any(
            v is not None for v in (self.min_aesthetic, self.max_punsafe, self.max_pwatermark)))

    def check_model(self, model: str, shard: str) -> None:
        """Refuse similarity thresholds calibrated on another CLIP model than `model`."""
        for t in self.similarity:
            if t.model is not None and t.model != model:
                raise ValueError(f"subset {self.name or 'rule'}: the similarity minimum for "
                                 f"{t.language!r} is for {t.model}, but shard {shard} was "
                                 f"scored with {model}")

    def select(self, rows: pa.Table) -> np.ndarray:
        """For rows with the safety stage's columns (language, similarity, punsafe,
        pwatermark, aesthetic): None where the row is in the subset, else the first condition
        it fails (object array)."""
        reasons = np.full(rows.num_rows, None, dtype=object)
        for reason, passes in self._conditions(rows):
            reasons[(reasons == None) & ~passes] = reason  # noqa: E711 (elementwise)
        return reasons

    def _conditions(self, rows: pa.Table):
        language = np.asarray(rows.column("language").to_pylist(), dtype=object)
        if self.language != "all":
            yield f"language not {self.language}", _language_mask(language, self.language)
        for column, bound, above in (("aesthetic", self.min_aesthetic, True),
                                     ("punsafe", self.max_punsafe, False),
                                     ("pwatermark", self.max_pwatermark, False)):
            if bound is not None:
                values = _floats(rows, column)
                passes = values >= bound if above else values < bound
                yield f"{column} {'<' if above else '>='} {bound:g}", passes
        if self.similarity:
            yield "similarity below its language's minimum", self._similar(rows, language)

    def _similar(self, rows: pa.Table, language: np.ndarray) -> np.ndarray:
        minimum = {t.language: t.minimum for t in self.similarity}
        fallback = minimum.get(ANY_LANGUAGE, -np.inf)
        bounds = np.array([minimum.get(lang, fallback) for lang in language], np.float64)
        return _floats(rows, "similarity") >= bounds

    def describe(self) -> str:
        """The rule in words, for the dataset card."""
        return describe_subset(self)


def _language_mask(language: np.ndarray, wanted: str) -> np.ndarray:
    undetermined = np.isin(language, [UNDETERMINED, None, ""])
    if wanted == "en":
        return language == "en"
    if wanted == "nolang":
        return undetermined
    return ~undetermined & (language != "en")


def _floats(rows: pa.Table, column: str) -> np.ndarray:
    """A float column as numpy, NaN where missing (shards scored before a head existed)."""
    if column not in rows.column_names:
        return np.full(rows.num_rows, np.nan)
    return rows.column(column).to_numpy(zero_copy_only=False).astype(np.float64)


def subset_from_dict(value: dict | None) -> SubsetRule:
    """A rule from its manifest form (`dataclasses.asdict`)."""
    value = dict(value or {})
    value["similarity"] = tuple(SimilarityThreshold(**t) for t in value.get("similarity", ()))
    return SubsetRule(**value)


def describe_subset(rule: SubsetRule | dict | None) -> str:
    """One sentence stating the rule, or that the release is not a subset."""
    rule = rule if isinstance(rule, SubsetRule) else subset_from_dict(rule)
    if not rule.active:
        return "Not a subset: every pair that passed the safety stage."
    parts = []
    if rule.language != "all":
        parts.append(LANGUAGE_TEXT[rule.language])
    if rule.min_aesthetic is not None:
        parts.append(f"LAION-Aesthetics score (`aesthetic`) of at least {rule.min_aesthetic:g}")
    if rule.max_punsafe is not None:
        parts.append(f"`punsafe` below {rule.max_punsafe:g}"
                     + (" (Re-LAION's research-safe threshold)" if rule.max_punsafe == 0.45
                        else ""))
    if rule.max_pwatermark is not None:
        parts.append(f"`pwatermark` below {rule.max_pwatermark:g}")
    for t in rule.similarity:
        who = "other languages" if t.language == ANY_LANGUAGE else f"language `{t.language}`"
        parts.append(f"CLIP similarity of at least {t.minimum:g} for {who}"
                     + (f" (calibrated on {t.model})" if t.model else ""))
    name = f"Subset `{rule.name}`" if rule.name else "A subset"
    return f"{name}: only pairs with " + "; ".join(parts) + "."
