"""Proven lower bounds: the GAP LP and Lagrangian (`gap`), the knapsack Lagrangian (`knapsack`), the
fleet's aggregated LP and packing bounds (`fleet`). Each is recomputed from dual prices, so it holds
whatever the LP solver's precision."""
