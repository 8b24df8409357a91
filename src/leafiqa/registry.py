"""Named models (``create_metric("leaf-agiqa3k")``, ``leaf models``): the registry lives with the
model files in ``leafiqa.deploy.registry``; this module keeps the short import path."""

from leafiqa.deploy.registry import *  # noqa: F403
from leafiqa.deploy.registry import __all__  # noqa: F401
