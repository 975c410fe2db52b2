"""aksml compatibility shim for azureml.core.model.

Only Model.get_model_path is provided: it resolves a registered model inside
the replica, in the AZUREML_MODEL_DIR layout, exactly as the real method does
inside an Azure ML container:

    <root>/azureml-models/NAME/VERSION/<one entry>   (then ./NAME)

AZUREML_MODEL_DIR is <root>/azureml-models/NAME/VERSION for one model and
<root>/azureml-models for several.
"""

import os


class WebserviceException(Exception):
    """Raised when a model cannot be found (same name as azureml's)."""


ModelNotFoundException = WebserviceException


def _models_root():
    model_dir = os.environ.get("AZUREML_MODEL_DIR", "")
    if model_dir:
        d = os.path.abspath(model_dir)
        probe = d
        while True:
            if os.path.basename(probe) == "azureml-models":
                return probe
            parent = os.path.dirname(probe)
            if parent == probe:
                break
            probe = parent
    app_root = os.environ.get("AML_APP_ROOT")
    if app_root:
        return os.path.join(app_root, "azureml-models")
    if model_dir:
        return os.path.abspath(model_dir)
    return os.path.abspath("azureml-models")


class Model(object):
    """Stand-in for azureml.core.Model inside a scoring replica."""

    def __init__(self, *args, **kwargs):
        raise WebserviceException(
            "azureml.core.Model cannot be constructed inside an aksml scoring replica; "
            "use Model.get_model_path(model_name, version)")

    @staticmethod
    def get_model_path(model_name, version=None, _workspace=None):
        """Return the local path of a deployed model.

        :param model_name: the registered model name
        :param version: the model version (int); None means the highest one present
        """
        if version is not None and not isinstance(version, int):
            raise WebserviceException("version must be an int, got %r" % (version,))
        root = _models_root()
        candidate = os.path.join(root, model_name)
        if os.path.isdir(candidate):
            if version is None:
                versions = []
                for v in os.listdir(candidate):
                    try:
                        versions.append(int(v))
                    except ValueError:
                        pass
                chosen = str(max(versions)) if versions else None
            else:
                chosen = str(version)
            if chosen is not None:
                vdir = os.path.join(candidate, chosen)
                if os.path.isdir(vdir):
                    children = os.listdir(vdir)
                    if len(children) != 1:
                        raise WebserviceException(
                            "Expected exactly one child path under {}, found {}".format(vdir, sorted(children)))
                    return os.path.join(vdir, children[0])
        local = os.path.join(os.getcwd(), model_name)
        if os.path.exists(local):
            return local
        raise WebserviceException(
            "Model {} not found in cache at {} or in current working directory {}.".format(
                model_name, root, os.getcwd()))
