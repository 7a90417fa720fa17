"""The safety stage: every rule that decides whether a scored pair may be published.

`policy` holds the configuration, `lists` the hash, URL and opt-out lists read from the
dataset store, `concepts` the zero-shot CLIP concept scores, `nsfw_head` and `watermark`
the model-based scores, `text_rules` the caption rules, `rules` the evaluation that turns a
shard's candidates into decisions and exclusions, and `stage` the shard runner.
"""
