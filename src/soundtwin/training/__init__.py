"""Training: labelled clips -> a calibrated model directory.

``loop`` runs it (one device setting for every model, tensor and batch), ``dataset`` reads the
labelled features, ``batches`` makes the batches and samplers, ``optim`` the optimiser and
learning-rate schedule, ``checkpoint`` what ``--resume`` reads back, ``losses`` the objectives (a
registry), ``augment`` the feature-domain augmentation. Importing this package loads no torch;
:func:`train` does.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={"loop": ["EpochStats", "TrainResult", "finetune_config", "train"]})
