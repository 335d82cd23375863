"""Errors of saved models and of the bytes that travel between client and server."""


class ArtifactError(ValueError):
    """A saved model directory that cannot be used: not one of ours, another format version,
    another concrete-python version, or a file changed since it was saved."""


class PayloadError(ValueError):
    """Bytes that are not a valid message for this model: not our format, truncated, for
    another model, or not ciphertexts / keys concrete can read."""
