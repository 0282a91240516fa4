"""Detectors of adversarial inputs built on a conditional generative model; one per file, one
interface (:class:`Detector`: ``fit``, ``score``, ``calibrate``, ``flag``)."""
from ..configs import DETECTION_METHODS
from .base import Detector
from .kl import KLDetector
from .logit import LogitDetector
from .marginal import MarginalDetector
from .reconstruction import ReconstructionDetector

DETECTORS = {"recon": ReconstructionDetector, "logit": LogitDetector,
             "marginal": MarginalDetector, "kl": KLDetector}
if set(DETECTORS) != set(DETECTION_METHODS):  # the command line offers DETECTION_METHODS
    raise ImportError(f"detectors {sorted(DETECTORS)} and DETECTION_METHODS "
                      f"{sorted(DETECTION_METHODS)} differ")


def make_detector(method: str, model, **kwargs) -> Detector:
    if method not in DETECTORS:
        raise ValueError(f"unknown detection method {method!r}; choose from {sorted(DETECTORS)}")
    return DETECTORS[method](model, **kwargs)


__all__ = ["DETECTORS", "Detector", "KLDetector", "LogitDetector", "MarginalDetector",
           "ReconstructionDetector", "make_detector"]
