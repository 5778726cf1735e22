"""What the stages draw for people: matplotlib figures."""
