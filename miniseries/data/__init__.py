"""Text corpora: where training text comes from, written as parquet shards plus a manifest."""
