"""Shared settings of the training tests (a module name of its own: every test folder has a conftest)."""

FAST = dict(epochs=1, batch_size=8, progress=False, dev_queries=6, encode_batch_size=32, device="cpu")
