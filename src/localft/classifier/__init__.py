"""Pooled classifiers: texts to features (an encoder's mean-pooled sentence embeddings, or TF-IDF), a linear head per
feature source, and the members' class probabilities averaged.

A frozen encoder with a logistic-regression head is the strongest simple few-shot method (MTEB's classification
protocol), and the same shape, with the encoder's weights tuned from that head (LP-FT), is localft's encoder recipe.
The training engine fits and tunes these (`localft.training.pooled_encoder`, `localft.training.selection`); the
inference engine serves them. The folder format is in `localft.classifier.model`.
"""

from localft.classifier.features import EncoderFeatures, TfidfFeatures
from localft.classifier.head import LinearHead, fit_head
from localft.classifier.model import Member, PooledClassifier

__all__ = ["EncoderFeatures", "LinearHead", "Member", "PooledClassifier", "TfidfFeatures", "fit_head"]
