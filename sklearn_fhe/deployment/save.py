"""``save``: a fitted estimator (or a compiled QuantizedModule) → a model directory with a
client part and a server part (see ``manifest`` for the layout)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Optional, Union

from sklearn.utils.validation import check_is_fitted

from ..fhe.batched_circuit import function_name
from ..quantization.quantized_module import QuantizedModule
from .client_model import ClientModel
from .manifest import CLIENT_FILES, SERVER_FILES, write_manifest
from .payload import fingerprint


def save(model: Any, path: Union[str, Path], input_shape: Optional[tuple] = None,
         overwrite: bool = False) -> Path:
    """Save a fitted estimator, or a compiled ``QuantizedModule``, for client/server deployment.

    The client part (``path/client``) holds what the data owner needs to encrypt inputs and read
    results; the server part (``path/server``) holds the compiled circuit. Neither holds keys.

    Parameters
    ----------
    model : sklearn_fhe estimator or QuantizedModule
        A fitted estimator (compiled on its training data first if it is not yet), or a
        ``QuantizedModule`` from ``compile_torch_model`` / ``compile_onnx_model``.
    path : str or pathlib.Path
        The directory to write; it must not exist or be empty, unless ``overwrite``.
    input_shape : tuple of int, optional
        Shape of one input row of a ``QuantizedModule`` (default: read from its calibration).
    overwrite : bool, default=False
        Replace an existing model directory.

    Returns
    -------
    pathlib.Path
        The directory written.

    Examples
    --------
    >>> from sklearn_fhe.deployment import save, Client, Server    # doctest: +SKIP
    >>> save(fitted_estimator, "model_dir")                         # doctest: +SKIP
    """
    client_model, module = _client_model(model, input_shape)
    if len(module.output_dequantizations) != 1:
        raise ValueError(f"The model has {len(module.output_dequantizations)} outputs; saving "
                         "for deployment supports models with one output tensor.")
    circuit = module.fhe_circuit
    path = _prepare(Path(path), overwrite)
    try:
        (path / "client").mkdir()
        (path / "server").mkdir()
        specs = circuit.module.client.specs.serialize()
        (path / "client" / "client.specs").write_bytes(specs)
        functions = {function_name(size): size for size in circuit.batch_sizes}
        client_json = {**client_model.to_json(), "functions": functions,
                       "fingerprint": fingerprint(specs)}
        (path / "client" / "model.json").write_text(json.dumps(client_json))
        circuit.module.server.save(path / "server" / "server.zip")
        (path / "server" / "model.json").write_text(json.dumps(
            {"functions": functions, "fingerprint": fingerprint(specs)}))
        write_manifest(path, CLIENT_FILES + SERVER_FILES)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


def _client_model(model: Any, input_shape: Optional[tuple]) -> tuple[ClientModel, QuantizedModule]:
    """The client model and the compiled module of ``model`` (compiling an estimator)."""
    if isinstance(model, QuantizedModule):
        if model.fhe_circuit is None:
            raise ValueError("The QuantizedModule is not compiled: compile it (or use "
                             "compile_torch_model) before saving.")
        if input_shape is None:
            input_shape = getattr(model, "input_shape", None)
        if input_shape is None:
            raise ValueError("Give input_shape, the shape of one input row of the module.")
        return ClientModel.from_quantized_module(model, input_shape), model
    if not hasattr(model, "quantized_module_") and not hasattr(model, "fit"):
        raise TypeError(f"save expects a fitted sklearn_fhe estimator or a QuantizedModule, got "
                        f"{type(model).__name__}.")
    check_is_fitted(model)
    if model.fhe_circuit is None:
        model.compile()
    return ClientModel.from_estimator(model), model.quantized_module_


def _prepare(path: Path, overwrite: bool) -> Path:
    if path.exists():
        if not path.is_dir():
            raise FileExistsError(f"{path} exists and is not a directory.")
        if any(path.iterdir()):
            if not overwrite:
                raise FileExistsError(f"{path} is not empty: pass overwrite=True to replace it.")
            if not (path / "manifest.json").is_file():
                raise FileExistsError(f"{path} is not a saved model: refusing to overwrite it.")
            shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path

