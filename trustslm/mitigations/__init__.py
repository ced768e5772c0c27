"""Mitigations: plugins that change a model (new weights) or how it decodes (a wrapper), each
declaring the trust dimension it targets and the probes that measure it, so ``trustslm mitigate``
can audit before and after with the same probes, options and seed."""
