"""The paper's variants as modules and losses: variational (:mod:`.variational`), classifier
(:mod:`.classifier`), modality conversion (:mod:`.modality`) and the autoencoder baselines
(:mod:`.autoencoder`). Pure tensor code over :mod:`inr_gon.core`, :mod:`inr_gon.nn` and
:mod:`inr_gon.geometry`; training them is :mod:`inr_gon.training`'s."""
