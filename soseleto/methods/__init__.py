"""The methods besides Algorithm 1: plain SGD and the peers, each its step, its state and the
function that trains it (the ``run`` of its entry in :mod:`soseleto.config.methods`)."""
