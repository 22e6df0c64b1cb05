"""The cumulative determinant subspace: growth by samples and HF (grow), PT2-ranked string
expansion (expansion), the caps (cap) and the step's one call (build). Knows nothing of the
engine (:mod:`hinqs.sqd`) or the model (:mod:`hinqs.nqs`)."""
