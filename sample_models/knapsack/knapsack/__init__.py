"""0/1 knapsack by dynamic programming over (integer) weights."""
