"""What a deployed client checks of its inputs beyond scikit-learn's validation.

The client encrypts its inputs as they are given: it applies no preprocessing. A model fitted
after some preprocessing (the last step of a pipeline) answers wrong, without any error from
concrete, when it is given the raw columns. Two checks catch what they can of that:

- **Columns, by name** (as scikit-learn's own ``predict``, with a message that says what to do):
  a DataFrame whose column names differ from those recorded at fit (other names, other order,
  missing or extra columns) is refused; a DataFrame given to a model fitted without column
  names gets scikit-learn's warning, with the hint.
- **Values, by range**: the client part holds the input quantizers, i.e. the range each input
  was calibrated on. A column whose values lie far outside it in most rows was not transformed
  as the training data were (see :data:`FAR_WIDTHS` for how far, and why): a warning.
"""

from __future__ import annotations

import warnings
from typing import Optional, Sequence

import numpy as np

#: How far outside its calibrated range a value must lie to count as "far", in widths of that
#: range (the range [-2, 6] has width 8: "far" is below -82 or above 86). Measured on the test
#: split (25%, seeds 0-2) of breast cancer, wine, iris, digits, diabetes, make_classification,
#: make_friedman1 and lognormal data (sigma 1-3), under StandardScaler, MinMaxScaler,
#: RobustScaler, QuantileTransformer, PowerTransformer or none, for FHELogisticRegression /
#: FHERidge (per-feature ranges) and the default networks (one range for all inputs, clipped
#: by training): the largest share of a column's test rows beyond 10 widths was 0.4% (digits,
#: network) and 0.1% (lognormal sigma 3, network); none on the other cases. Unscaled columns
#: of amounts, areas or counts lie 30-200 widths out in every row (breast cancer's areas,
#: wine's proline against a StandardScaler-fitted model).
FAR_WIDTHS = 10.0

#: Rows needed before a column's values are judged: a single value can lie far out on ordinary
#: data (a heavy tail reached 124 widths beyond a network's clipped range in one row of 2000),
#: but most of several rows of one column cannot, by chance: with at most 0.5% of rows far out,
#: 3 of 4 rows are far out with probability ~5e-7 per column.
MIN_ROWS = 4

#: Column names shown in a message before they are abbreviated.
_SHOWN_NAMES = 8


class InputRangeWarning(UserWarning):
    """Inputs of a deployed client that lie far outside the range the model was calibrated
    on: most likely not preprocessed as the training data were. Turn it into an error with
    ``warnings.simplefilter("error", InputRangeWarning)``."""


#: What to do, in every message of this module.
_HINT = (
    "The client encrypts X as given and applies no preprocessing: transform X first as the "
    "model's training data were (for the last step of a fitted pipeline pipe, give it "
    "pipe[:-1].transform(X))."
)


def check_columns(names: Optional[np.ndarray], fitted: Optional[np.ndarray],
                  estimator: str) -> None:
    """Refuse DataFrame columns ``names`` that differ from those recorded at fit, ``fitted``;
    warn (scikit-learn's warning, with the hint) when the model recorded none.

    Parameters
    ----------
    names : numpy.ndarray or None
        Column names of the input (None: an array, or non-string column names).
    fitted : numpy.ndarray or None
        Column names seen in fit.
    estimator : str
        The saved estimator's class name, for the messages.

    Raises
    ------
    ValueError
        If both are known and differ (names, order, count).
    """
    if names is None:
        return
    if fitted is None:
        warnings.warn(
            f"X has feature names, but {estimator} was fitted without feature names, so the "
            "client cannot check that these columns are the model's inputs. " + _HINT,
            UserWarning, stacklevel=5,
        )
        return
    names, fitted = list(map(str, names)), list(map(str, fitted))
    if names == fitted:
        return
    missing = [name for name in fitted if name not in set(names)]
    unexpected = [name for name in names if name not in set(fitted)]
    if missing or unexpected:
        difference = "".join([
            f" Missing: {_shown(missing)}." if missing else "",
            f" Not seen at fit: {_shown(unexpected)}." if unexpected else "",
        ])
    else:
        position = next(i for i, (a, b) in enumerate(zip(names, fitted)) if a != b)
        difference = (f" Same columns in another order: column {position} is {names[position]!r}"
                      f", expected {fitted[position]!r}.")
    raise ValueError(
        "The feature names should match those that were passed during fit. "
        f"This {estimator} was fitted on {len(fitted)} columns {_shown(fitted)}; X has "
        f"{len(names)} {_shown(names)}.{difference} Select and order X's columns as at fit "
        f"(X[fitted_columns]). {_HINT}"
    )


def calibrated_range(quantization: object, n_features: int
                     ) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Per feature, the range of inputs the model's input quantizer was calibrated on, or None
    where the client part does not tell it.

    With no client-side step before the quantizer, the range its integer grid spans; after a
    fake quantizer (a network's first ``Clip -> QuantizeLinear -> DequantizeLinear``), the
    ``Clip``'s bounds. Other steps, several inputs or inputs that are not rows: None.

    Parameters
    ----------
    quantization : QuantizedModule
        The client part's quantizers (``input_quantizations``).
    n_features : int
        Features per row.

    Returns
    -------
    (low, high) : tuple of numpy.ndarray of shape (n_features,), or None
    """
    inputs = getattr(quantization, "input_quantizations", ())
    if len(inputs) != 1:
        return None
    steps, quantizer = inputs[0].steps, inputs[0].quantizer
    if quantizer.n_bits is None:
        return None
    # a network's per-feature input map (x - offset) / scale before its grid: undone below
    affine = []
    while (steps and steps[0].op_type in ("Sub", "Div") and steps[0].position == 0
           and len(steps[0].args) == 2):
        affine, steps = affine + [steps[0]], steps[1:]
    if not steps:
        low, high = quantizer.dequant(quantizer.qmin), quantizer.dequant(quantizer.qmax)
    elif steps[0].op_type == "Clip" and len(steps[0].args) == 3 and all(
            arg is not None and np.size(arg) == 1 for arg in steps[0].args[1:]):
        low, high = (float(np.asarray(arg)) for arg in steps[0].args[1:])
    else:
        return None
    for step in reversed(affine):
        arg = np.asarray(step.args[1], dtype=np.float64)
        ends = (low + arg, high + arg) if step.op_type == "Sub" else (low * arg, high * arg)
        low, high = np.minimum(*ends), np.maximum(*ends)
    try:
        low = np.broadcast_to(np.asarray(low, dtype=np.float64), (1, n_features)).reshape(-1)
        high = np.broadcast_to(np.asarray(high, dtype=np.float64), (1, n_features)).reshape(-1)
    except ValueError:  # a quantizer not per feature of a row (e.g. per channel of an image)
        return None
    return low, high


def check_range(X: np.ndarray, calibrated: tuple[np.ndarray, np.ndarray], estimator: str,
                names: Optional[Sequence[str]] = None) -> None:
    """Warn (:class:`InputRangeWarning`) when in some column of ``X`` most values lie more
    than :data:`FAR_WIDTHS` widths outside the calibrated range (judged from
    :data:`MIN_ROWS` rows on).

    Parameters
    ----------
    X : numpy.ndarray of shape (n_samples, n_features)
        Validated inputs.
    calibrated : tuple of numpy.ndarray
        ``(low, high)`` per feature, from :func:`calibrated_range`.
    estimator : str
        The saved estimator's class name, for the message.
    names : sequence of str, optional
        Column names seen in fit, for the message.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < MIN_ROWS:
        return
    low, high = calibrated
    width = high - low
    margin = np.where(width > 0, FAR_WIDTHS * width, np.inf)  # a point range tells no scale
    far = (X < low - margin) | (X > high + margin)
    columns = np.flatnonzero(far.mean(axis=0) > 0.5)
    if not columns.size:
        return
    label = (lambda j: f"{names[j]!r}") if names is not None else (lambda j: f"{j}")
    shown = ", ".join(label(j) for j in columns[:_SHOWN_NAMES])
    more = f" and {columns.size - _SHOWN_NAMES} more" if columns.size > _SHOWN_NAMES else ""
    j = columns[0]
    warnings.warn(
        f"X looks unlike the data this {estimator} was fitted on: in column(s) {shown}{more}, "
        f"most values lie more than {FAR_WIDTHS:g} times the calibrated range's width outside "
        f"it (column {label(j)}: calibrated on [{low[j]:.4g}, {high[j]:.4g}], median of X "
        f"{np.median(X[:, j]):.4g}). Such values are clipped to the range's edge before "
        f"encryption, so the answers mean little. {_HINT}",
        InputRangeWarning, stacklevel=5,
    )


def _shown(names: Sequence[str]) -> str:
    """A list of names for a message, abbreviated past ``_SHOWN_NAMES``."""
    names = list(names)
    if len(names) <= _SHOWN_NAMES:
        return str(names)
    head, tail = names[: _SHOWN_NAMES - 2], names[-2:]
    return "[" + ", ".join(map(repr, head)) + ", ..., " + ", ".join(map(repr, tail)) + "]"
