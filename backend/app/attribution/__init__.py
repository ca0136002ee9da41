"""Attribution models: deterministic last-touch (SQL) and a Bayesian channel model (NumPy)."""
