"""How `auto` spends one time budget: the GAP portfolio (`portfolio`, driven by `gap`) and the fleet
search (`fleet`, with the tier-by-tier solve for priorities too wide to weigh)."""
