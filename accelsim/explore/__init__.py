"""Exploration: design-space sweeps (Dask), their result store, Pareto fronts, architecture comparison."""
