"""dbayes: deep Bayes (generative) classifiers and their discriminative counterparts, attacks on
them, and detectors of those attacks. TensorFlow 2 / Keras 3 / TensorFlow Probability."""

__version__ = "0.1.0"
