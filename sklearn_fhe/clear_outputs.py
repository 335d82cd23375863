"""What the client computes in the clear from the decrypted model outputs.

Every estimator family describes its clear-side work (affine map, probabilities, link, class
labels) as one ``ClearOutputs`` value; the estimator's ``predict`` / ``predict_proba`` /
``decision_function`` and the deployed ``Client`` both call it, so a deployed model answers
exactly as the estimator does. It is plain data (arrays, strings), saved without pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
from scipy.special import expit, log_softmax, softmax

#: How decision scores become class probabilities.
PROBABILITIES = {
    # one score column (binary): [1 - sigmoid, sigmoid]; several: softmax (LogisticRegression)
    "logistic",
    # softmax over the score columns (networks, multi-class boosting)
    "softmax",
    # one-vs-rest sigmoid per column, normalized (SGDClassifier's log_loss, binary boosting)
    "ovr_logistic",
    # one-vs-rest (clip(score, -1, 1) + 1) / 2, normalized (SGDClassifier's modified_huber)
    "ovr_modified_huber",
    # the scores are mean leaf probabilities: clipped at 0 and normalized (random forests)
    "normalized",
}
#: Inverse links of regressors.
INVERSE_LINKS = {"identity", "exp", "sigmoid"}


@dataclass(frozen=True)
class ClearOutputs:
    """The clear-side end of a model: decrypted circuit output → predictions.

    Parameters
    ----------
    classes : numpy.ndarray or None
        Class labels of a classifier, in the order of its score columns (None: a regressor).
    scale, offset : numpy.ndarray or float
        Scores are ``raw * scale + offset`` (e.g. a target's standardization, a base score).
    squeeze : bool
        A single score column is returned 1-D by ``decision_function`` and regressors' ``predict``.
    probabilities : str or None
        How scores become probabilities (see ``PROBABILITIES``); None: no ``predict_proba``.
    inverse_link : {"identity", "exp", "sigmoid"}
        Regressors: the prediction is ``inverse_link(score)``.
    has_decision_function : bool
        Whether the model offers ``decision_function``.
    """

    classes: Optional[np.ndarray] = None
    scale: Union[np.ndarray, float] = 1.0
    offset: Union[np.ndarray, float] = 0.0
    squeeze: bool = True
    probabilities: Optional[str] = None
    inverse_link: str = "identity"
    has_decision_function: bool = False

    def __post_init__(self) -> None:
        if self.probabilities is not None and self.probabilities not in PROBABILITIES:
            raise ValueError(f"Unknown probabilities {self.probabilities!r}: {sorted(PROBABILITIES)}.")
        if self.inverse_link not in INVERSE_LINKS:
            raise ValueError(f"Unknown inverse_link {self.inverse_link!r}: {sorted(INVERSE_LINKS)}.")

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None

    # -- the outputs -------------------------------------------------------------------------
    def scores(self, raw: np.ndarray) -> np.ndarray:
        """``raw * scale + offset``, 2-D float64."""
        raw = np.asarray(raw, dtype=np.float64)
        raw = raw.reshape(len(raw), -1)
        return raw * self.scale + self.offset

    def _squeezed(self, values: np.ndarray) -> np.ndarray:
        return values[:, 0] if self.squeeze and values.shape[1] == 1 else values

    def decision_function(self, raw: np.ndarray) -> np.ndarray:
        """Confidence scores (1-D for a single column)."""
        if not self.has_decision_function:
            raise AttributeError("This model has no decision_function.")
        return self._squeezed(self.scores(raw))

    def predict_proba(self, raw: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes)."""
        if self.probabilities is None:
            raise AttributeError("This model has no predict_proba.")
        z = self.scores(raw)
        kind = self.probabilities
        if kind == "softmax" or (kind == "logistic" and z.shape[1] > 1):
            return softmax(z, axis=1)
        if kind == "normalized":
            return _normalized(np.clip(z, 0.0, None))
        p = expit(z) if kind in ("logistic", "ovr_logistic") else (np.clip(z, -1, 1) + 1) / 2
        return np.hstack([1 - p, p]) if p.shape[1] == 1 else _normalized(p)

    def predict_log_proba(self, raw: np.ndarray) -> np.ndarray:
        """Logarithm of ``predict_proba`` (computed stably for softmax probabilities)."""
        z = self.scores(raw)
        if self.probabilities == "softmax" or (self.probabilities == "logistic"
                                               and z.shape[1] > 1):
            return log_softmax(z, axis=1)
        return np.log(self.predict_proba(raw))

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """Class labels (classifiers) or targets (regressors)."""
        z = self.scores(raw)
        if not self.is_classifier:
            inverse = {"identity": lambda v: v, "exp": np.exp, "sigmoid": expit}
            return self._squeezed(inverse[self.inverse_link](z))
        if z.shape[1] == 1 and len(self.classes) == 2:  # one margin column: binary
            index = (z[:, 0] > 0).astype(int)
        elif self.probabilities == "normalized":
            index = np.argmax(self.predict_proba(raw), axis=1)
        else:
            index = np.argmax(z, axis=1)
        return self.classes[index]


def _normalized(p: np.ndarray) -> np.ndarray:
    """Rows divided by their sum (uniform where the sum is 0)."""
    total = p.sum(axis=1, keepdims=True)
    uniform = np.full_like(p, 1.0 / p.shape[1])
    return np.where(total > 0, p / np.where(total > 0, total, 1.0), uniform)
