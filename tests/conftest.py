"""Fixtures shared by several test modules."""

import pytest


@pytest.fixture
def offline_hf(tmp_path, monkeypatch):
    """No network, no real token, Hugging Face caches in a temp dir."""
    import datasets
    import huggingface_hub.constants as hf_constants

    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")  # read at import otherwise
    return home
