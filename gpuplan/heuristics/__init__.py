"""Fast plans: the greedy warm starts (GAP and fleet), local search, polish and the fleet's moves."""
