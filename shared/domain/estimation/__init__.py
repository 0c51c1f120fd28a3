"""What a run costs, before and while it runs: tokens counted offline, prices, the estimate, a project's daily
spend, and what a push costs Label Studio."""
