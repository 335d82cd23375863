"""Client/server deployment: save a fitted model, encrypt on a client, compute on a server.

>>> from sklearn_fhe.deployment import save, Client, Server      # doctest: +SKIP
>>> save(estimator, "model_dir")                                  # doctest: +SKIP
>>> client = Client("model_dir"); client.keygen()                 # doctest: +SKIP
>>> keys, payload = client.evaluation_keys(), client.encrypt(X)   # doctest: +SKIP
>>> result = Server("model_dir").run(payload, keys)               # doctest: +SKIP
>>> client.predict(result)                                        # doctest: +SKIP

Over HTTP (``sklearn-fhe serve model_dir``, the ``serve`` extra):

>>> RemoteClient("http://127.0.0.1:8000").predict(X)              # doctest: +SKIP
"""

from .client import Client, client_archive
from .errors import ArtifactError, PayloadError
from .input_checks import InputRangeWarning
from .remote_client import RemoteClient, ServiceError
from .save import save
from .server import Server

__all__ = ["save", "Client", "Server", "client_archive", "RemoteClient", "ArtifactError",
           "PayloadError", "ServiceError", "InputRangeWarning"]
