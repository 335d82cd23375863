"""sklearn_fhe: scikit-learn estimators that predict on encrypted data with TFHE."""

__version__ = "0.1.0"
