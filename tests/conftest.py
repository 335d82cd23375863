"""Shared fixtures: a key-caching concrete configuration, load_digits, small trained models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from concrete import fhe
from sklearn.datasets import load_digits
from torch import nn

from sklearn_fhe.fhe.compile import default_configuration

REPO = Path(__file__).resolve().parents[1]

# What sklearn_fhe measures and caches (the machine profile, concrete's parameter choices) goes
# to a folder of the checkout (gitignored), not the user's cache: tests start from what a
# fresh checkout has, and later runs reuse it
os.environ.setdefault("SKLEARN_FHE_CACHE_DIR", str(REPO / ".sklearn_fhe_cache"))


@pytest.fixture(scope="session")
def fhe_configuration() -> fhe.Configuration:
    """Our default configuration (compressed ciphertexts and keys) with the insecure key cache
    in ``<repo>/.fhe_keys`` (gitignored): the first key generation of a circuit is slow, later
    runs read the cached keys."""
    return default_configuration(
        use_insecure_key_cache=True,
        insecure_key_cache_location=str(REPO / ".fhe_keys"),
        enable_unsafe_features=True,
    )


@pytest.fixture(scope="session")
def digits() -> dict:
    """load_digits scaled to [0, 1], split 1200 / 597; ``images`` are the 1x8x8 views, ``x16``
    the images mean-pooled to 4x4 (16 features)."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x16 = x.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16)
    return {
        "x16_train": x16[:1200],
        "x16_test": x16[1200:],
        "x_train": x[:1200],
        "y_train": y[:1200],
        "x_test": x[1200:],
        "y_test": y[1200:],
        "images_train": x[:1200].reshape(-1, 1, 8, 8),
        "images_test": x[1200:].reshape(-1, 1, 8, 8),
    }


def train_classifier(module: nn.Module, x: np.ndarray, y: np.ndarray, steps: int) -> nn.Module:
    """A few full-batch Adam steps of cross-entropy: enough for a model that is not random."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    inputs, targets = torch.as_tensor(x), torch.as_tensor(y)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(module(inputs), targets).backward()
        optimizer.step()
    return module.eval()


def float_output(module: nn.Module, x: np.ndarray) -> np.ndarray:
    """The float torch output of ``module`` on ``x``."""
    with torch.no_grad():
        return module(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()


@pytest.fixture(scope="session")
def digits_mlp(digits) -> nn.Module:
    """64 → 16 → ReLU → 12 → ReLU → 10, trained on the digits (about 0.9 test accuracy)."""
    torch.manual_seed(0)
    mlp = nn.Sequential(
        nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 10)
    )
    return train_classifier(mlp, digits["x_train"], digits["y_train"], steps=150)


@pytest.fixture(scope="session")
def small_digits_mlp(digits) -> nn.Module:
    """16 → 8 → ReLU → 8 → ReLU → 10 on the digits pooled to 4x4 (``x16_*``): 16 lookups per
    row, small enough for encrypted execution in a test."""
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 10))
    return train_classifier(mlp, digits["x16_train"], digits["y_train"], steps=200)


@pytest.fixture(scope="session")
def digits_cnn(digits) -> nn.Module:
    """Conv2d(1, 2, 3, stride 2) → ReLU → AvgPool2d(2, stride 1) → Flatten → Linear(8, 10) on
    1x8x8 digits: 18 lookups per row."""
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2),  # 2x3x3
        nn.ReLU(),
        nn.AvgPool2d(2, stride=1),  # 2x2x2
        nn.Flatten(),
        nn.Linear(8, 10),
    )
    return train_classifier(cnn, digits["images_train"], digits["y_train"], steps=150)
