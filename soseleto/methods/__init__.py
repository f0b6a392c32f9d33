"""The methods besides SOSELETO, each only its step and its state: plain SGD and the peers."""
