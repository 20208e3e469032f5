"""The embedded default: a synthetic multilingual image-caption corpus and a tiny Gemma-3 VLM built from it.

`ensure_demo()` builds both on first use and caches them under a folder keyed by the generator's source
and seed, so a change to the generator rebuilds them and an unchanged one is reused.
"""
